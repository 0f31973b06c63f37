"""Resume after any interruption: kill -9 in the middle of a trial, Ctrl-C, dead owners, stale heartbeats."""

import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

import study.search._samplers as samplers
from study.run import main
from study.runtime import TEST_POINT, interrupts_deferred, start_ticks
from study.storage import FAIL_REASON, OWNER, PARAM, fail_dead_trials, interruption_note, is_abandoned, open_storage, this_process

REPO = str(Path(__file__).resolve().parents[1])
NAME = "synthetic-vgg16-random"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Three candidates of one random layer each: the cheapest study that still has a before and after.
SMALL = ("--strategy", "random", "--random-draws", "3", "--random-k", "1", "--skip-final")
# One candidate (the head alone) of conftest's 5-layer model: the cheapest study a subprocess can run.
TINY = ("--strategy", "head", "--skip-final")
TINY_NAME = "synthetic-tiny-head"


def _trials(tmp_path, name=NAME):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/studies.db").get_trials()


def _assert_exactly_once(trials, candidates=3):
    finished = [t.params[PARAM] for t in trials if t.state in FINISHED]
    assert len(finished) == candidates == len(set(finished)), finished
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_kill_9_in_the_middle_of_a_trial_then_the_same_command_finishes_exactly_what_is_left(tmp_path, tiny_args):
    # Enough epochs that trial 1 stays in training for seconds, not one poll interval (a 3-epoch trial of
    # a cached top layer can start and finish between two polls). The per-epoch median pruner (tiny_args')
    # reports every epoch, which is how the test sees training; it waits for 3 finished trials, so it
    # cannot end trial 1 early either.
    args = tiny_args("--epochs", "40", *SMALL)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, "-m", "study.run", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not _epochs_reported(tmp_path / "studies.db", trial_number=1):  # trial 1 is into training
            assert process.poll() is None, "the study ended before trial 1 was seen training"
            assert time.monotonic() < deadline, "trial 1 never started training"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    before = _trials(tmp_path)
    assert before[0].state == TrialState.COMPLETE and before[1].state == TrialState.RUNNING
    done_before = {t.params[PARAM]: t.datetime_complete for t in before if t.state in FINISHED}
    killed = before[1].params[PARAM]

    assert main(args) == 0  # the same command
    after = _trials(tmp_path)
    _assert_exactly_once(after)
    assert after[1].state == TrialState.FAIL and "died" in after[1].system_attrs[FAIL_REASON]
    names = [t.params[PARAM] for t in after]
    for name, completed in done_before.items():  # finished before the kill: not trained again
        assert names.count(name) == 1
        assert next(t for t in after if t.params[PARAM] == name).datetime_complete == completed
    retried = [t for t in after[2:] if t.params[PARAM] == killed]
    assert len(retried) == 1 and retried[0].state in FINISHED  # the killed candidate ran again


def _epochs_reported(db, trial_number: int) -> int:
    """Epochs a RUNNING trial has reported, read without touching the storage's schema (opening it
    with Optuna while the run creates its tables would race with it)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute(
                "SELECT COUNT(*) FROM trials t JOIN trial_intermediate_values v ON v.trial_id = t.trial_id "
                "WHERE t.number = ? AND t.state = 'RUNNING'", (trial_number,)
            ).fetchone()[0]
    except sqlite3.Error:  # no file or no tables yet
        return 0


def test_ctrl_c_says_what_is_left_and_how_to_resume(tmp_path, tiny_args, monkeypatch, capsys):
    import study.search._objective as search

    real, calls = search.fine_tune, []

    def interrupted_on_second_trial(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(search, "fine_tune", interrupted_on_second_trial)
    args = tiny_args("--epochs", "1", *SMALL)
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted: 1 of 3 candidates done, 2 left" in err
    assert f"resume with: python -m study.run {shlex.join(args)}" in err
    assert [t.state for t in _trials(tmp_path)] == [TrialState.COMPLETE, TrialState.FAIL]

    assert main(args) == 0
    trials = _trials(tmp_path)
    _assert_exactly_once(trials)
    assert len(trials) == 4 and trials[1].params[PARAM] in [t.params[PARAM] for t in trials[2:]]


def _owner(**changes):
    return {**this_process(), **changes}


def test_running_trials_of_dead_processes_on_this_host_are_failed_and_others_kept(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(storage=storage)
    finished = subprocess.Popen(["true"])
    finished.wait()
    zombie = subprocess.Popen(["sleep", "60"])
    zombie_owner = _owner(pid=zombie.pid, started=start_ticks(zombie.pid))
    zombie.kill()  # not reaped yet: its pid still answers kill(pid, 0)
    time.sleep(0.3)
    owners = {
        "dead pid": _owner(pid=finished.pid, started=None),
        "zombie": zombie_owner,
        "pid reused": _owner(started="1"),
        "before a reboot": _owner(boot="another-boot-id"),
        "alive (this process)": _owner(),
        "other host": _owner(host=socket.gethostname() + "-elsewhere", pid=finished.pid),
    }
    trials = {}
    for label, owner in owners.items():
        trial = study.ask()
        storage.set_trial_system_attr(trial._trial_id, OWNER, owner)
        trials[label] = trial.number
    fresh_without_owner = study.ask().number
    try:
        failed = fail_dead_trials(study)
    finally:
        zombie.wait()
    dead = ["dead pid", "zombie", "pid reused", "before a reboot"]
    assert sorted(failed) == sorted(trials[label] for label in dead)
    states = {t.number: t.state for t in study.get_trials()}
    assert all(states[trials[label]] == TrialState.FAIL for label in dead)
    assert states[trials["alive (this process)"]] == TrialState.RUNNING
    assert states[trials["other host"]] == TrialState.RUNNING  # the heartbeat decides for it
    assert states[fresh_without_owner] == TrialState.RUNNING


def test_other_hosts_trials_fail_when_their_heartbeat_is_stale(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    storage.set_trial_system_attr(trial._trial_id, OWNER, _owner(host="elsewhere"))
    storage.record_heartbeat(trial._trial_id)
    assert fail_dead_trials(study) == [] and study.trials[0].state == TrialState.RUNNING
    time.sleep(2.5)
    fail_dead_trials(study)
    assert study.trials[0].state == TrialState.FAIL


def _env(**extra):
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO, **extra}


class _NoWaiting:
    """study.search's sampler clock: a claim that would wait for an undecided lower trial fails the test."""

    monotonic = staticmethod(time.monotonic)

    @staticmethod
    def sleep(seconds):
        raise AssertionError("the grid sampler waited for an undecided trial")


def test_a_run_killed_right_after_creating_a_trial_leaves_an_orphan_recognised_at_once(tmp_path, tiny_args, tiny_model,
                                                                                      monkeypatch):
    args = tiny_args("--epochs", "1", "--model", tiny_model, *TINY)
    killed = subprocess.run([sys.executable, "-m", "study.run", *args], env=_env(**{TEST_POINT: "trial-created:kill"}),
                            cwd=REPO, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (orphan,) = _trials(tmp_path, TINY_NAME)  # killed after the trial's commit, before the sampler gave it a candidate
    assert orphan.state == TrialState.RUNNING and not orphan.params
    assert orphan.system_attrs[OWNER]["host"] == socket.gethostname()
    assert is_abandoned(orphan)  # at once: it was born with its owner, and that process is dead

    monkeypatch.setattr(samplers, "time", _NoWaiting)  # the old stall: a 56 s wait for the orphan
    assert main(args) == 0
    trials = _trials(tmp_path, TINY_NAME)
    assert trials[0].state == TrialState.FAIL and "died" in trials[0].system_attrs[FAIL_REASON]  # not RUNNING
    _assert_exactly_once(trials, candidates=1)


def test_ctrl_c_in_a_trial_prints_only_the_clean_message(tmp_path, tiny_args, tiny_model):
    # The per-epoch median pruner (tiny_args') reports every epoch, which is how the test sees training.
    args = tiny_args("--epochs", "200", "--model", tiny_model, *TINY)
    process = subprocess.Popen([sys.executable, "-m", "study.run", *args], env=_env(), cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not _epochs_reported(tmp_path / "studies.db", trial_number=0):  # trial 0 is training
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "trial 0 never started training"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err, err
    lines = [line for line in err.splitlines() if line.strip() and not _tensorflow_start_up(line)]
    assert lines == [
        "interrupted: 0 of 1 candidates done, 1 left (an interrupted trial is marked FAIL and runs again)",
        f"resume with: python -m study.run {shlex.join(args)}",
    ], err


def _tensorflow_start_up(line: str) -> bool:
    """TensorFlow's C++ log lines at import (absl), which TF_CPP_MIN_LOG_LEVEL does not silence."""
    return line.startswith("WARNING: All log messages before absl::InitializeLog()") or (
        len(line) > 5 and line[0] in "IWEF" and line[1:5].isdigit() and line[5] == " ")


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
@pytest.mark.parametrize("statement", ["SELECT", "INSERT INTO trial_intermediate_values"])
def test_ctrl_c_inside_a_storage_call_takes_effect_when_the_call_ends(tmp_path, statement):
    # Ctrl-C in the middle of a read used to leave its SELECT half-read on the pooled connection:
    # once another process wrote, marking the trial FAIL failed with "database is locked".
    url = f"sqlite:///{tmp_path}/studies.db"
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    armed = [True]

    def ctrl_c_in_the_middle(connection, cursor, sql, *rest):
        if armed[0] and sql.lstrip().startswith(statement) and "trial" in sql:
            armed[0] = False
            os.kill(os.getpid(), signal.SIGINT)

    sqlalchemy.event.listen(storage.engine, "after_cursor_execute", ctrl_c_in_the_middle)
    with pytest.raises(KeyboardInterrupt) as interrupted:  # kept alive, as Optuna keeps it while it tells
        study.trials if statement == "SELECT" else trial.report(0.5, step=0)
    assert not armed[0]
    raised_in = traceback.extract_tb(interrupted.tb)[-1].filename
    assert raised_in.endswith(os.path.join("study", "runtime", "_interrupts.py")), f"raised inside the call, in {raised_in}"
    optuna.load_study(study_name="s", storage=open_storage(url)).set_user_attr("other", "process")
    study.tell(trial, state=TrialState.FAIL)
    stored = _trials(tmp_path, "s")[0]
    assert stored.state == TrialState.FAIL
    assert stored.intermediate_values == ({} if statement == "SELECT" else {0: 0.5})  # the report was whole


def test_a_deferred_ctrl_c_reaches_the_handler_in_place_once_after_the_outer_block():
    received, thread_errors = [], []

    def handler(signum, frame):
        received.append(signum)

    def block_in_another_thread():  # signals are the main thread's: nothing to defer, nothing to fail
        try:
            with interrupts_deferred():
                pass
        except Exception as error:
            thread_errors.append(error)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        with interrupts_deferred():
            with interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
            assert received == []
            thread = threading.Thread(target=block_in_another_thread)
            thread.start()
            thread.join()
            assert received == [] and thread_errors == []
        assert received == [signal.SIGINT] and signal.getsignal(signal.SIGINT) is handler
        with interrupts_deferred():
            pass
        assert received == [signal.SIGINT]  # nothing pending is left behind

        with pytest.raises(ValueError):  # the block's own error goes on; the Ctrl-C is still delivered
            with interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                raise ValueError("the call failed")
        assert received == [signal.SIGINT] * 2 and signal.getsignal(signal.SIGINT) is handler

        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # pressed again: at once, inside the block
            assert received == [signal.SIGINT] * 3
        assert received == [signal.SIGINT] * 3 and signal.getsignal(signal.SIGINT) is handler

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_deferred_ctrl_c_with_the_default_action_ends_the_process_after_the_block():
    code = ("import os, signal; from study.runtime import interrupts_deferred\n"
            "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
            "with interrupts_deferred():\n"
            "    os.kill(os.getpid(), signal.SIGINT); print('the block goes on', flush=True)\n"
            "print('not reached')")
    done = subprocess.run([sys.executable, "-c", code], env=_env(), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGINT and done.stdout == "the block goes on\n", done


def test_ctrl_c_in_a_fit_stops_it_at_a_batch_end_from_the_callback():
    import keras
    import numpy as np

    from study.training import CtrlCAtBatchEnd

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    batches_seen = []

    class CtrlCAtBatch3(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            batches_seen.append(batch)
            if batch == 3:
                os.kill(os.getpid(), signal.SIGINT)

    data = np.zeros((64, 4), "float32"), np.zeros(64, "int64")
    with pytest.raises(KeyboardInterrupt) as interrupted:
        with interrupts_deferred():
            model.fit(*data, batch_size=4, epochs=3, verbose=0, callbacks=[CtrlCAtBatch3(), CtrlCAtBatchEnd()])
    assert batches_seen[:4] == [0, 1, 2, 3] and len(batches_seen) <= 6  # stopped a batch or two later
    frames = [frame.name for frame in traceback.extract_tb(interrupted.tb)]
    assert "raise_held_interrupt" in frames, frames  # raised at the batch end, not where Python was


def test_the_resume_line_does_not_show_the_storage_password():
    note = interruption_note(None, ["--storage", "postgresql+psycopg://study:s3cret@db-host/studies", "--epochs", "3"])
    assert "s3cret" not in note
    shown = shlex.quote("postgresql+psycopg://study:***@db-host/studies")  # quoted: a shell would glob ***
    assert note.endswith(f"resume with: python -m study.run --storage {shown} --epochs 3")
