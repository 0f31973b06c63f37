"""Every use of a private Keras or Optuna internal, gathered in one place.

Each function below reaches into a library where no public API does the job; each says why. The
versions these were checked against are pinned as upper bounds in pyproject.toml and named in
`tests/test_compat.py`, which fails with a clear message when an internal moves.

Example:
    >>> CHECKED_AGAINST["keras"], CHECKED_AGAINST["optuna"]
    ('3.15', '5.0')
"""

from __future__ import annotations

import functools
import types

import optuna

from study.process import interrupts_deferred

# Major.minor versions whose internals the functions below were checked against.
CHECKED_AGAINST = {"keras": "3.15", "optuna": "5.0"}


# --- Keras: the functional graph -------------------------------------------------------------
# The frozen-prefix cache must know which tensors cross a cut between frozen and tuned layers.
# Keras exposes a model's layers but not, publicly, which call of a shared layer belongs to
# which model, nor which layer produced a symbolic tensor.


def layer_node_in(model, layer):
    """The node through which `layer` takes part in `model`'s graph (None for input layers).

    A layer object can be called in several models (a backbone view per trial, the prefix model);
    only the node registered in `model` describes its inputs there.

    Example:
        >>> import keras
        >>> inputs = keras.Input((4,)); dense = keras.layers.Dense(2)
        >>> model = keras.Model(inputs, dense(inputs))
        >>> layer_node_in(model, dense) is not None
        True
    """
    from keras.src.ops.function import make_node_key

    if not layer._inbound_nodes:
        return None
    for index, node in enumerate(layer._inbound_nodes):
        if make_node_key(layer, index) in model._nodes:
            return node if node.input_tensors else None
    return None


def producer_of(tensor):
    """The layer whose call made the symbolic tensor `tensor`.

    Example:
        >>> import keras
        >>> inputs = keras.Input((4,)); dense = keras.layers.Dense(2, name="d")
        >>> producer_of(dense(inputs)).name
        'd'
    """
    return tensor._keras_history[0]


# Flattening a user's nested or Sequential model (study.models) must visit a functional graph node
# by node with each call's arguments; Keras has no public way to do that.


def is_graph_model(layer) -> bool:
    """A model whose graph can be opened up: Sequential or functional (subclassed models stay one layer).

    A functional model has no public marker; `_nodes_by_depth` is what `run_graph` walks, so its
    presence is exactly the condition needed.

    Example:
        >>> import keras
        >>> is_graph_model(keras.Sequential([keras.layers.Dense(2)])), is_graph_model(keras.layers.Dense(2))
        (True, False)
    """
    import keras

    return isinstance(layer, keras.Sequential) or (isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth"))


def run_graph(model, inputs, call):
    """Run a functional model's graph node by node, each layer call made by `call(layer, args, kwargs)`.

    Uses `keras.src.ops.function.Function._run_through_graph`. Returns the outputs in the model's
    output structure (list, dict or tensor).
    """
    return model._run_through_graph(
        inputs, operation_fn=lambda operation: operation, call_fn=lambda op, *args, **kwargs: call(op, args, kwargs)
    )


# --- Keras: the optimizer ---------------------------------------------------------------------
# FusedAdam (study.training) updates Keras's own Adam slots in TensorFlow's fused kernel, so it
# needs the slot variables of a weight; Keras keeps them in private lists.


def adam_slots(optimizer, variable) -> tuple:
    """Adam's first and second moment variables of `variable` (built by Keras's Adam.build).

    Example:
        >>> import keras
        >>> weight = keras.Variable([1.0, 2.0]); adam = keras.optimizers.Adam(); adam.build([weight])
        >>> [tuple(s.shape) for s in adam_slots(adam, weight)]
        [(2,), (2,)]
    """
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


class SkipOneReplicaAllReduce:
    """Optimizer mixin: with one replica, no gradient all-reduce.

    Keras's TensorFlow optimizer sums gradients across replicas even when there is one, and TF
    wraps that sum in `tf.custom_gradient`, which registers a gradient function for good on every
    trace: every trial's training graph would stay in memory and slow down every garbage
    collection. The hook is the private `_all_reduce_sum_gradients`; with several replicas
    Keras's own method runs.
    """

    def _all_reduce_sum_gradients(self, grads_and_vars):
        import tensorflow as tf

        if tf.distribute.get_strategy().num_replicas_in_sync == 1:
            return list(grads_and_vars)
        return super()._all_reduce_sum_gradients(grads_and_vars)


# --- Optuna: storage calls that Ctrl-C cannot cut in half ----------------------------------------
# A KeyboardInterrupt raised inside a database call can leave a half-read SELECT open on a pooled
# SQLite connection, and every later BEGIN IMMEDIATE on it fails at once with "database is locked",
# so the interrupted trial could not be marked FAIL. Every RDBStorage method is therefore run with
# Ctrl-C deferred to its end. The private methods are included because Optuna's cached storage
# calls them (`_get_trials`, `_create_new_trial`, ...) on the RDBStorage it wraps. `__init__` and
# `__setstate__` are left as they are: they run only while a storage is opened.


def _whole_calls(storage_class):
    """Run each plain (non-dunder) method that `RDBStorage` defines, as `storage_class` has it, with
    Ctrl-C deferred to the method's end (`study.process.interrupts_deferred`)."""

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
# Study does not expose its storage. study.records keeps its large records there.


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a Study reads and writes.

    Example:
        >>> study = optuna.create_study(study_name="s")
        >>> storage_of(study).get_study_id_from_name("s") >= 0
        True
    """
    return study._storage
