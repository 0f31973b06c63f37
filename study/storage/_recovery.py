"""Crash-proof resume: who runs each trial, which RUNNING trials are dead, and what is left.

Every trial this tool creates carries its owner (host, pid, boot, process start time) from the
transaction that creates it (`owned_trial`), so there is no moment in which a trial
exists without an owner: a process killed at any point leaves a trial whose owner is dead.

A trial killed with `kill -9` (or by a reboot) stays RUNNING in the storage. For trials of this
machine we know at once: a RUNNING trial whose owner process is gone is failed on the next start
(and by the grid sampler before it waits on it), so its candidate is trained again right away.
For trials of other machines the only signal is Optuna's heartbeat: such a trial fails once it is
`grace_period` seconds old (`optuna.storages.fail_stale_trials`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shlex
import socket
import time
import warnings
from typing import Callable, Iterator

import optuna
from optuna.trial import FrozenTrial, TrialState

from study.runtime import StudyError, WriteError, boot_id, start_ticks, write_problem
from study.storage._open import masked, masked_args, reading
from study.storage._optuna_compat import fail_trial, set_trial_system_attr, trial_system_attrs
from study.storage._owner import this_process
from study.storage._records import stored_records, study_records
from study.storage._schema import BOOT, CANDIDATES, CREATOR, FAIL_REASON, FINAL, HOST, OWNER, PID, STARTED
from study.storage._trials import finished_candidates

# A RUNNING trial without an owner was not created by this tool's storage (an enqueued trial being
# popped, a study of an older version, another program): it counts as abandoned this old.
ABANDONED_SECONDS = 60
# A new study's records are written by its creator milliseconds after it made the study row. Others
# wait for them as long as the creator lives; at most this long for a creator on another machine,
# and this short for a study without a creator record (its creator is about to write it, or the
# study comes from an older version).
RECORDS_WAIT_SECONDS = 60
NO_CREATOR_WAIT_SECONDS = 5


def stamp_owner(study: optuna.Study, trial) -> None:
    """Record the current process as the owner of a trial (before it claims any work); trials of
    the tool's storage are born owned, so this writes only for trials made otherwise (enqueued)."""
    me = this_process()
    if trial_system_attrs(study, trial).get(OWNER) != me:
        set_trial_system_attr(study, trial, OWNER, me)


def with_owner(objective: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
    """`objective`, recording first the process that runs the trial (for samplers other than
    the grid, which records it before claiming a candidate).

    Example:
        >>> study = optuna.create_study()
        >>> study.optimize(with_owner(lambda trial: 1.0), n_trials=1)
        >>> study.trials[0].system_attrs[OWNER][PID] == os.getpid()
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
    if not owner or owner.get(HOST) != socket.gethostname():
        return False
    boot = boot_id()
    if boot and owner.get(BOOT) and owner[BOOT] != boot:
        return True  # the machine rebooted since
    pid = int(owner[PID])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    started = start_ticks(pid)
    if started is None:
        return False
    # A zombie (killed, not yet reaped) or a new process that reuses the pid is not the owner.
    return started == "zombie" or (owner.get(STARTED) is not None and started != owner[STARTED])


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


def claim_new_study(storage: optuna.storages.BaseStorage, study_id: int) -> None:
    """Record this process as the creator of a study it just created (it alone writes its records)."""
    storage.set_study_system_attr(study_id, CREATOR, this_process())


def wait_for_records(storage: optuna.storages.BaseStorage, name: str, last_key: str) -> dict | None:
    """The records of the existing study `name` once they are complete (`last_key`, written last,
    is among them), or None if nobody will complete them: the creator died first (or, on another
    machine or without a creator record, did not finish in time), so the caller writes them.

    Commands started at once on a fresh storage all try to create the study; the one that did
    writes its records, the others wait here instead of writing them a second time.

    Example:
        >>> storage = optuna.storages.RDBStorage("sqlite:///:memory:")
        >>> study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
        >>> claim_new_study(storage, study_id); storage.set_study_user_attr(study_id, "done", True)
        >>> wait_for_records(storage, "s", "done")
        {'done': True}
    """
    started = time.monotonic()
    study_id = storage.get_study_id_from_name(name)
    while True:
        attrs = stored_records(storage, study_id)
        if last_key in attrs:
            return attrs
        creator = storage.get_study_system_attrs(study_id).get(CREATOR)
        waited = time.monotonic() - started
        if creator is None:
            if waited > NO_CREATOR_WAIT_SECONDS:
                return None
        elif owner_is_dead(creator) or waited > RECORDS_WAIT_SECONDS:
            return None
        time.sleep(0.05)


def interruption_note(config, argv: list[str] | None) -> str:
    """What a Ctrl-C left behind and the command that resumes it (reads the storage).

    Example:
        >>> print(interruption_note(None, ["--epochs", "3"]))
        interrupted: finished trials are saved (an interrupted trial is marked FAIL and runs again)
        resume with: python -m study.run --epochs 3
    """
    command = "python -m study.run " + shlex.join(masked_args(argv))  # no password on the screen
    return (
        f"interrupted: {progress_status(config) or 'finished trials are saved'} "
        "(an interrupted trial is marked FAIL and runs again)\n"
        f"resume with: {command.strip()}"
    )


def progress_status(config) -> str | None:
    """How far the study of `config` is, read from its storage (read-only): "3 of 11 candidates
    done, 8 left"; None when there is no such study yet or the storage cannot be read.

    Example:
        >>> progress_status(None) is None
        True
    """
    if config is None:
        return None
    try:
        with reading(config.storage) as storage:  # creates nothing: a run stopped before the storage existed
            study = optuna.load_study(study_name=config.name, storage=storage)
            records = study_records(study)
            total = len(records.get(CANDIDATES, []))
            done = len(finished_candidates(study))
    except Exception:  # no study yet, or the storage is unreachable: say what we know
        return None
    status = f"{done} of {total} candidates done, {total - done} left"
    if total and done == total and FINAL not in records:
        status += "; the final stage is unfinished"
    return status


@contextlib.contextmanager
def write_failures_reported(config) -> Iterator[None]:
    """A write that fails inside the block (the disk is full: the storage, the saved model, the
    artifacts) ends it as one WriteError: what could not be written, what the storage keeps, and
    that the same command resumes. Other errors pass unchanged.

    Example:
        >>> import errno
        >>> with write_failures_reported(None):  # doctest: +ELLIPSIS
        ...     raise OSError(errno.ENOSPC, "No space left on device", "storage/models/a.keras")
        Traceback (most recent call last):
        study.runtime.WriteError: cannot write storage/models/a.keras (No space left on device); finished trials are kept ...
    """
    try:
        yield
    except StudyError:
        raise  # said in its own words (nothing was written)
    except Exception as error:
        problem = write_problem(error)
        if problem is None:
            raise
        status = progress_status(config)
        where = f"the storage {masked(config.storage)}" if config is not None else "the storage"
        raise WriteError(f"{problem}; finished trials are kept in {where}" + (f" ({status})" if status else "")
                         + "; free some space and run the same command again to resume") from error
