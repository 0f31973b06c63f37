"""Every use of a private Optuna internal, gathered in one place (Keras's: study.runtime's keras compat).

Each function below reaches into Optuna where no public API does the job; each says why. The version
these were checked against is pinned as an upper bound in pyproject.toml and named in
`tests/test_compat.py`, which fails with a clear message when an internal moves.
`tests/test_architecture.py` allows Optuna's private names, and the keys Optuna keeps in a trial's
system attrs, in this module only.

Example:
    >>> CHECKED_AGAINST["optuna"]
    '5.0'
"""

from __future__ import annotations

import functools
import types

import optuna

from study.runtime import interrupts_deferred

# Major.minor version whose internals the functions below were checked against.
CHECKED_AGAINST = {"optuna": "5.0"}

# Optuna's own system attr of an enqueued trial (`Study.enqueue_trial`): its fixed parameters.
_FIXED_PARAMS = "fixed_params"


def enqueued_params(trial) -> dict:
    """The parameters an enqueued trial was given (`Study.enqueue_trial`), {} for any other trial.

    Example:
        >>> study = optuna.create_study(); study.enqueue_trial({"x": 1})
        >>> enqueued_params(study.trials[0]), enqueued_params(optuna.trial.create_trial(value=1.0))
        ({'x': 1}, {})
    """
    return trial.system_attrs.get(_FIXED_PARAMS, {})


def is_enqueued(trial) -> bool:
    """Whether a trial was enqueued with fixed parameters (`Study.enqueue_trial`)."""
    return _FIXED_PARAMS in trial.system_attrs


# --- Optuna: storage calls that Ctrl-C cannot cut in half ----------------------------------------
# A KeyboardInterrupt raised inside a database call can leave a half-read SELECT open on a pooled
# SQLite connection, and every later BEGIN IMMEDIATE on it fails at once with "database is locked",
# so the interrupted trial could not be marked FAIL. Every RDBStorage method is therefore run with
# Ctrl-C deferred to its end. The private methods are included because Optuna's cached storage
# calls them (`_get_trials`, `_create_new_trial`, ...) on the RDBStorage it wraps. `__init__` and
# `__setstate__` are left as they are: they run only while a storage is opened.


def _whole_calls(storage_class):
    """Run each plain (non-dunder) method that `RDBStorage` defines, as `storage_class` has it, with
    Ctrl-C deferred to the method's end (`study.runtime.interrupts_deferred`)."""

    def deferred(method):
        @functools.wraps(method)
        def call(*args, **kwargs):
            with interrupts_deferred():
                return method(*args, **kwargs)

        return call

    for name, member in vars(optuna.storages.RDBStorage).items():
        if isinstance(member, types.FunctionType) and not name.startswith("__"):
            setattr(storage_class, name, deferred(getattr(storage_class, name)))
    return storage_class


# --- Optuna: a trial born with its records ------------------------------------------------------
# `Study.ask` creates a trial row with nothing in it; whatever the tool writes next (the process
# that owns it) is a second transaction, and a process killed between the two leaves a RUNNING
# trial nobody can tell apart from one being created right now. RDBStorage can create a trial from
# a template in one transaction (`create_new_trial(study_id, template_trial)`), but `Study.ask`
# passes no template and Optuna's cached storage calls the private `_create_new_trial`.


@_whole_calls
class TemplateTrialStorage(optuna.storages.RDBStorage):
    """An RDBStorage whose new trials (`Study.ask`) are created from `new_trial()`, a RUNNING
    FrozenTrial template, in the transaction that creates the row; `created(trial)` runs after it.
    Ctrl-C never cuts one of its calls in half (`_whole_calls`).

    Example:
        >>> import datetime
        >>> template = lambda: optuna.trial.FrozenTrial(0, optuna.trial.TrialState.RUNNING, None,
        ...     datetime.datetime.now(), None, {}, {}, {}, {"note": "me"}, {}, 0)
        >>> storage = TemplateTrialStorage("sqlite:///:memory:", new_trial=template)
        >>> optuna.create_study(storage=storage).ask().study.trials[0].system_attrs
        {'note': 'me'}
    """

    def __init__(self, url: str, *, new_trial=None, created=None, **kwargs):
        self._new_trial = new_trial
        self._created = created
        super().__init__(url, **kwargs)

    def _create_new_trial(self, study_id: int, template_trial=None):
        if template_trial is None and self._new_trial is not None:
            template_trial = self._new_trial()
        frozen = super()._create_new_trial(study_id, template_trial)
        if self._created is not None:
            self._created(frozen)
        return frozen


# --- Optuna: writing to a trial from a sampler -------------------------------------------------
# A sampler's `before_trial` and `sample_independent` receive a FrozenTrial, which has no public
# setter; the grid sampler must record its claim and owner there, before the objective runs.


def set_trial_system_attr(study: optuna.Study, trial, key: str, value) -> None:
    """Write a system attr of `trial` (a FrozenTrial or a Trial) of `study` to the storage.

    Example:
        >>> study = optuna.create_study(); trial = study.ask()
        >>> set_trial_system_attr(study, trial, "note", "me")
        >>> study.trials[0].system_attrs["note"]
        'me'
    """
    study._storage.set_trial_system_attr(trial_id(trial), key, value)


def trial_system_attrs(study: optuna.Study, trial) -> dict:
    """The system attrs of `trial` (a FrozenTrial or a Trial, which has no public reader of them).

    Example:
        >>> study = optuna.create_study(); trial = study.ask()
        >>> set_trial_system_attr(study, trial, "note", "me"); trial_system_attrs(study, trial)
        {'note': 'me'}
    """
    return study._storage.get_trial_system_attrs(trial_id(trial))


def set_trial_user_attr(study: optuna.Study, trial, key: str, value) -> None:
    """Write a user attr of `trial` (a FrozenTrial or a Trial) of `study` to the storage.

    Example:
        >>> study = optuna.create_study(); trial = study.ask()
        >>> set_trial_user_attr(study, trial, "note", ["conv1"])
        >>> study.trials[0].user_attrs["note"]
        ['conv1']
    """
    study._storage.set_trial_user_attr(trial_id(trial), key, value)


def fail_trial(study: optuna.Study, trial) -> bool:
    """Mark a RUNNING trial of another (dead) process FAIL; False if it finished meanwhile.

    `study.tell` only accepts trials this process asked for; a trial whose process died is
    failed through the storage, as Optuna's own `fail_stale_trials` does.
    """
    try:
        return study._storage.set_trial_state_values(trial_id(trial), state=optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def trial_id(trial) -> int:
    """The storage id of a trial (FrozenTrial or Trial); Optuna's public API gives only `number`."""
    return trial._trial_id


# --- Optuna: a study's storage ------------------------------------------------------------------
# Optuna 4 removed `Study.system_attrs` and `Study.set_system_attr`; the storage's own methods
# (`get_study_system_attrs`, `set_study_system_attr`, public for custom storages) remain, but a
# Study does not expose its storage. study.storage keeps its large records there.


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a Study reads and writes.

    Example:
        >>> study = optuna.create_study(study_name="s")
        >>> storage_of(study).get_study_id_from_name("s") >= 0
        True
    """
    return study._storage
