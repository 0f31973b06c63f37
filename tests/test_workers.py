"""Parallel workers on one study: real processes, SQLite and a real PostgreSQL server."""

import os
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from browser import ci_requires_everything, postgres_url
from optuna.trial import TrialState

from study.run import main
from study.search import split_trials
from study.storage import OWNER, PARAM

# One claiming worker: the project's storage set-up and grid sampler, a trivial objective.
WORKER = """
import os, sys, time, optuna
from study.storage import PARAM
from study.search import OrderedGridSampler
from study.storage import engine_kwargs, share_between_processes
url, name, n, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
optuna.logging.set_verbosity(optuna.logging.ERROR)
storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url), heartbeat_interval=10, grace_period=30)
share_between_processes(storage)
order = [f"c{i:02d}" for i in range(n)]
study = optuna.load_study(study_name=name, storage=storage, sampler=OrderedGridSampler(order))
time.sleep(max(0.0, start - time.time()))  # all workers ask for their first trial at once
def objective(trial):
    trial.suggest_categorical(PARAM, order)
    time.sleep(0.05)
    return 1.0
study.optimize(objective, n_trials=n)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    return f"sqlite:///{tmp_path}/studies.db" if request.param == "sqlite" else postgres_url()


def test_workers_never_train_the_same_grid_candidate(storage_url):
    name, candidates, workers = f"claims-{uuid.uuid4().hex[:8]}", 12, 3
    optuna.create_study(study_name=name, storage=storage_url, direction="maximize")
    start = time.time() + 4  # after every worker has imported Optuna
    processes = [
        subprocess.Popen([sys.executable, "-c", WORKER, storage_url, name, str(candidates), str(start)],
                         stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * workers, errors
    assert not any("database is locked" in e for e in errors)
    trials = optuna.load_study(study_name=name, storage=storage_url).get_trials()
    claimed = [t.params[PARAM] for t in trials if PARAM in t.params]
    assert sorted(claimed) == [f"c{i:02d}" for i in range(candidates)]  # each exactly once, no duplicate
    assert all(t.state == TrialState.COMPLETE for t in trials if PARAM in t.params)
    # A worker that finds nothing left ends its trial PRUNED with the reason, never FAIL.
    spare = [t for t in trials if PARAM not in t.params]
    assert len(spare) < workers and all(t.state == TrialState.PRUNED for t in spare)
    assert len({t.system_attrs[OWNER]["pid"] for t in trials if PARAM in t.params}) > 1  # shared work
    optuna.delete_study(study_name=name, storage=storage_url)  # a server keeps studies between runs


def test_two_worker_processes_run_one_study_end_to_end(tmp_path, tiny_args, capsys):
    # The shared server of many machines when there is one (always in CI), else local SQLite; the
    # claiming test above covers both storages with real processes. One run: it costs a minute.
    has_server = os.environ.get("STUDY_TEST_POSTGRES_URL") or ci_requires_everything()
    storage_url = postgres_url() if has_server else f"sqlite:///{tmp_path}/studies.db"
    name = f"workers-{uuid.uuid4().hex[:8]}"
    args = tiny_args("--workers", "2", "--epochs", "1", "--strategy", "random", "--random-draws", "4",
                     "--random-k", "1", "--storage", storage_url, "--study-name", name)
    assert main(args) == 0
    study = optuna.load_study(study_name=name, storage=storage_url)
    trials = study.get_trials()
    finished = [t.params[PARAM] for t in trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 4 == len(set(finished))
    assert not [t for t in trials if t.state in (TrialState.FAIL, TrialState.RUNNING)]
    pids = {t.system_attrs[OWNER]["pid"] for t in trials}
    assert os.getpid() not in pids  # trained in the worker processes, not here
    assert study.user_attrs["final"]["candidate"] == study.best_trial.params[PARAM]  # one final stage
    out = capsys.readouterr().out
    assert "starting 2 worker processes" in out and out.count("final:") == 1
    optuna.delete_study(study_name=name, storage=storage_url)


def test_trials_are_shared_evenly():
    assert split_trials(7, 3) == [3, 2, 2]
    assert split_trials(2, 4) == [1, 1, 0, 0]
    assert sum(split_trials(50, 7)) == 50


def test_zero_workers_is_a_one_line_error(tiny_args, capsys):
    assert main(tiny_args("--workers", "0")) == 2
    assert capsys.readouterr().err.strip() == "error: --workers must be at least 1 (got 0)"
