"""Crash-proof resume: who runs each trial, which RUNNING trials are dead, and what is left.

A trial killed with `kill -9` (or by a reboot) stays RUNNING in the storage. Optuna's heartbeat
fails it once it is `grace_period` seconds old (`optuna.storages.fail_stale_trials`), which is
the only signal for trials of other machines. For trials of this machine we know better at once:
each trial records its owner process, and a RUNNING trial whose process is gone is failed on the
next start, so its candidate is trained again right away.
"""

from __future__ import annotations

import datetime
import os
import shlex
import socket
import warnings
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from study.compat import fail_trial, set_trial_system_attr
from study.records import CANDIDATES, FAIL_REASON, FINAL, OWNER, finished_candidates, study_records

ABANDONED_SECONDS = 60  # a trial without owner this old was killed while it was being created


def this_process() -> dict:
    """The owner record of the current process.

    Example:
        >>> this_process()["pid"] == os.getpid()
        True
    """
    return {"host": socket.gethostname(), "pid": os.getpid(), "boot": _boot_id(), "started": _start_ticks(os.getpid())}


def stamp_owner(study: optuna.Study, trial) -> None:
    """Record the current process as the owner of a trial (before it claims any work)."""
    set_trial_system_attr(study, trial, OWNER, this_process())


def with_owner(objective: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
    """`objective`, recording first the process that runs the trial (for samplers other than
    the grid, which records it before claiming a candidate).

    Example:
        >>> study = optuna.create_study()
        >>> study.optimize(with_owner(lambda trial: 1.0), n_trials=1)
        >>> study.trials[0].system_attrs[OWNER]["pid"] == os.getpid()
        True
    """

    def run(trial: optuna.Trial) -> float:
        stamp_owner(trial.study, trial)
        return objective(trial)

    return run


def owner_is_dead(owner: dict | None) -> bool:
    """True if `owner` is a process of this machine that no longer runs (killed, or rebooted).

    Owners on other machines are never declared dead here: the heartbeat decides for them.
    """
    if not owner or owner.get("host") != socket.gethostname():
        return False
    boot = _boot_id()
    if boot and owner.get("boot") and owner["boot"] != boot:
        return True  # the machine rebooted since
    pid = int(owner["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    started = _start_ticks(pid)
    if started is None:
        return False
    # A zombie (killed, not yet reaped) or a new process that reuses the pid is not the owner.
    return started == "zombie" or (owner.get("started") is not None and started != owner["started"])


def is_abandoned(trial: FrozenTrial) -> bool:
    """A RUNNING trial nobody will finish: its owner died, or it was killed before it had one."""
    if OWNER in trial.system_attrs:
        return owner_is_dead(trial.system_attrs[OWNER])
    age = datetime.datetime.now() - (trial.datetime_start or datetime.datetime.now())
    return age.total_seconds() > ABANDONED_SECONDS


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials whose process is gone; return their numbers.

    Trials of this machine are failed at once (owner check); those of other machines when
    their heartbeat is older than the storage's grace period (Optuna's own stale-trial check).

    Example:
        >>> fail_dead_trials(optuna.load_study(study_name="flowers-vgg16-block", storage=url))  # doctest: +SKIP
        [3]
    """
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_abandoned(trial):
            continue
        try:
            set_trial_system_attr(study, trial, FAIL_REASON, "its process died (killed, crashed or rebooted)")
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process failed or finished it meanwhile
        if fail_trial(study, trial):
            failed.append(trial.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return failed


def interruption_note(config, argv: list[str] | None) -> str:
    """What a Ctrl-C left behind and the command that resumes it (reads the storage).

    Example:
        >>> print(interruption_note(None, ["--epochs", "3"]))
        interrupted: finished trials are saved (an interrupted trial is marked FAIL and runs again)
        resume with: python -m study.run --epochs 3
    """
    command = "python -m study.run " + shlex.join(argv)
    status = "finished trials are saved"
    if config is not None:
        try:
            study = optuna.load_study(study_name=config.name, storage=config.storage)
            records = study_records(study)
            total = len(records.get(CANDIDATES, []))
            done = len(finished_candidates(study))
            status = f"{done} of {total} candidates done, {total - done} left"
            if total and done == total:
                status += "; the final stage is unfinished" if FINAL not in records else ""
        except Exception:  # no study yet, or the storage is unreachable: say what we know
            pass
    return (
        f"interrupted: {status} (an interrupted trial is marked FAIL and runs again)\n"
        f"resume with: {command.strip()}"
    )


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            return file.read().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), 'zombie', or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return "zombie" if fields[0] in ("Z", "X") else fields[19]
