"""The README's "same command on every machine": independent commands started at once on a fresh
storage (SQLite, and a fresh PostgreSQL schema) all succeed and share one study."""

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from browser import postgres_url
from optuna.trial import TrialState

from study.runtime import TEST_POINT
from study.storage import CANDIDATES, CONFIG, CREATOR, PARAM, claim_new_study, study_records, this_process, wait_for_records

REPO = str(Path(__file__).resolve().parents[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_storage(request, tmp_path):
    """A storage URL nothing has touched: a new SQLite path, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/studies.db"
        return
    base = postgres_url()
    schema = f"first_start_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(base)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:  # every connection of the commands works in the new, empty schema
        yield base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


def test_three_commands_started_at_once_on_a_fresh_storage_share_one_study(fresh_storage, tmp_path, tiny_model):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    args = [
        "--dataset", "synthetic", "--synthetic-size", "60", "--synthetic-classes", "3", "--weights", "none",
        "--image-size", "32", "--model", tiny_model, "--strategy", "block", "--epochs", "1", "--skip-final",
        "--storage", fresh_storage, "--artifact-dir", str(tmp_path / "artifacts"), "--study-name", "shared",
    ]
    # All three open the storage at the same moment: the race of the README's many-machines set-up.
    env = {**os.environ, "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3",
           TEST_POINT: f"open-storage:barrier={barrier},3"}
    processes = [
        subprocess.Popen([sys.executable, "-m", "study.run", *args], env=env, cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], "\n---\n".join(outputs)
    assert not any("Traceback" in out for out in outputs), outputs

    assert [s.study_name for s in optuna.get_all_study_summaries(fresh_storage)] == ["shared"]
    study = optuna.load_study(study_name="shared", storage=fresh_storage)
    records = study_records(study)
    candidates = [c["name"] for c in records[CANDIDATES]]
    assert len(candidates) == 3 and CONFIG in records
    storage = optuna.storages.RDBStorage(fresh_storage)
    creator = storage.get_study_system_attrs(storage.get_study_id_from_name("shared"))[CREATOR]
    assert creator["pid"] in {p.pid for p in processes}  # one of them made it and wrote its records
    trials = study.get_trials()
    finished = [t.params[PARAM] for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and PARAM in t.params]
    assert sorted(finished) == sorted(candidates)  # every candidate exactly once
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.FAIL)]


def test_a_second_command_waits_for_the_records_of_the_study_the_first_is_creating(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db")
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    claim_new_study(storage, study_id)  # the creator is alive (this process) and writes them soon
    writer = threading.Timer(0.5, lambda: storage.set_study_user_attr(study_id, CONFIG, {"epochs": 1}))
    writer.start()
    started = time.monotonic()
    assert wait_for_records(storage, "s", CONFIG) == {CONFIG: {"epochs": 1}}  # the creator's, not its own
    assert 0.4 < time.monotonic() - started < 5
    writer.join()


def test_a_study_whose_creator_died_before_writing_its_records_is_taken_over_at_once(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db")
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    dead = subprocess.Popen(["true"])
    dead.wait()
    storage.set_study_system_attr(study_id, CREATOR, {**this_process(), "pid": dead.pid, "started": None})
    started = time.monotonic()
    assert wait_for_records(storage, "s", CONFIG) is None  # nobody will write them: the caller does
    assert time.monotonic() - started < 1
