"""A disk that fills during a run: one `error:` line that says what the storage keeps and how to
resume, exit 74, no traceback; the same command afterwards finishes exactly what is left.

The disk fills at the lowest write this process makes: the model file's own writes (Keras's zip
archive) and SQLite's statements (the error SQLite gives on a full disk, "database or disk is full").
"""

import builtins
import errno
import os
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from study.run import main
from study.runtime import EXIT_WRITE_FAILED
from study.storage import CANDIDATES, FINAL, PARAM, study_records

REPO = str(Path(__file__).resolve().parents[1])
NAME = "synthetic-tiny-block"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class _FillingFile:
    """A file on a disk with `room` bytes left: writes past it raise ENOSPC, as the kernel does."""

    def __init__(self, file, room: int):
        self._file, self._room = file, room

    def write(self, data):
        if len(data) > self._room:
            self._file.write(data[: self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._file.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()

    def __getattr__(self, name):
        return getattr(self._file, name)


def _trials(tmp_path):
    return optuna.load_study(study_name=NAME, storage=f"sqlite:///{tmp_path}/studies.db").get_trials()


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_a_full_disk_at_the_model_save_keeps_the_search_and_the_same_command_resumes(
        tmp_path, tiny_args, tiny_model, monkeypatch, capsys):
    args = tiny_args("--epochs", "1", "--model", tiny_model)
    model = tmp_path / "models" / f"{NAME}.keras"
    real_open = builtins.open

    def full_disk_open(file, mode="r", *rest, **kwargs):
        opened = real_open(file, mode, *rest, **kwargs)
        # The model is written under a name of this process beside its final path, then renamed.
        writes_model = os.path.dirname(str(file)) == str(model.parent) and str(file).endswith(".keras")
        return _FillingFile(opened, room=2048) if writes_model and "w" in mode else opened

    monkeypatch.setattr(builtins, "open", full_disk_open)
    assert main(args) == EXIT_WRITE_FAILED
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    trials = _trials(tmp_path)
    done = [t for t in trials if t.state in FINISHED]
    assert _error_lines(captured.err) == [
        f"error: cannot write {model} (No space left on device); finished trials are kept in the storage "
        f"sqlite:///{tmp_path}/studies.db ({len(done)} of {len(done)} candidates done, 0 left; the final stage is "
        "unfinished); free some space and run the same command again to resume"
    ], captured.err
    assert not model.exists() and not model.with_suffix(".json").exists()  # no half-written model left behind
    assert not list(model.parent.iterdir())  # nor a file under a temporary name

    monkeypatch.setattr(builtins, "open", real_open)  # space freed: the same command
    assert main(args) == 0
    assert f"{len(done)} done, 0 to run now" in capsys.readouterr().out  # the search is not trained again
    again = _trials(tmp_path)
    assert [t.number for t in again] == [t.number for t in trials]
    assert study_records(optuna.load_study(study_name=NAME, storage=f"sqlite:///{tmp_path}/studies.db"))[FINAL]["runs"]
    assert model.exists() and model.with_suffix(".json").exists()


# The command, with the disk filling while the second candidate trains: from then on SQLite refuses
# every write, as it does on a full disk (the trial's first report after an epoch is the first).
FULL_DURING_SECOND_TRIAL = """
import sqlite3, sys
import study.search._objective as objective
import study.storage._open as opening

full = False

class Cursor(sqlite3.Cursor):
    def execute(self, sql, *args):
        if full and sql.split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)

    def executemany(self, sql, *args):
        self.execute(sql) if full else None
        return super().executemany(sql, *args)

class Connection(sqlite3.Connection):
    def cursor(self, factory=Cursor):
        return super().cursor(factory)

kwargs = opening.engine_kwargs
opening.engine_kwargs = lambda url: {"connect_args": {**kwargs(url)["connect_args"], "factory": Connection}}
trainings, fine_tune = 0, objective.fine_tune

def filling(*args, **kwargs):
    global full, trainings
    trainings += 1
    full = full or trainings == 2
    return fine_tune(*args, **kwargs)

objective.fine_tune = filling
from study.run import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_during_a_trial_keeps_the_finished_trials_and_the_same_command_resumes(
        tmp_path, tiny_args, tiny_model):
    args = tiny_args("--epochs", "1", "--model", tiny_model)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
    full = subprocess.run([sys.executable, "-c", FULL_DURING_SECOND_TRIAL, *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert full.returncode == EXIT_WRITE_FAILED, full.stderr
    assert "Traceback" not in full.stdout + full.stderr, full.stderr
    trials = _trials(tmp_path)
    (kept,) = [t for t in trials if t.state in FINISHED]  # the first candidate, trained before the disk filled
    assert kept.number == 0
    total = len(study_records(optuna.load_study(study_name=NAME, storage=f"sqlite:///{tmp_path}/studies.db"))[CANDIDATES])
    assert total > 1
    assert _error_lines(full.stderr) == [
        f"error: cannot write the storage (database or disk is full); finished trials are kept in the storage "
        f"sqlite:///{tmp_path}/studies.db (1 of {total} candidates done, {total - 1} left); free some space and "
        "run the same command again to resume"
    ], full.stderr

    again = subprocess.run([sys.executable, "-m", "study.run", *args], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"1 done, {total - 1} to run now" in again.stdout
    trials = _trials(tmp_path)
    finished = [t.params[PARAM] for t in trials if t.state in FINISHED]
    assert len(finished) == total == len(set(finished))  # every candidate once: the kept one not retrained
    assert trials[0].state == TrialState.COMPLETE and trials[0].datetime_complete == kept.datetime_complete


def test_a_thread_a_full_disk_ends_prints_no_traceback():
    """Optuna's heartbeat thread writes every 10 s: on a full disk it fails before the trial does.
    (In a Python of its own: pytest replaces threading.excepthook during a test.)"""
    script = """
import sqlite3, threading
from study.runtime import quiet_libraries

quiet_libraries()

def heartbeat(error):
    raise error

for error in (sqlite3.OperationalError("database or disk is full"), ValueError("a real bug")):
    thread = threading.Thread(target=heartbeat, args=(error,))
    thread.start()
    thread.join()
"""
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": REPO},
                            capture_output=True, text=True, timeout=120)
    assert "ValueError: a real bug" in result.stderr and "database or disk is full" not in result.stderr
