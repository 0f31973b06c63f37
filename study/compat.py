"""Every use of a private Keras or Optuna internal, gathered in one place.

Each function below reaches into a library where no public API does the job; each says why. The
versions these were checked against are pinned as upper bounds in pyproject.toml and named in
`tests/test_compat.py`, which fails with a clear message when an internal moves.

Example:
    >>> CHECKED_AGAINST["keras"], CHECKED_AGAINST["optuna"]
    ('3.15', '5.0')
"""

from __future__ import annotations

import optuna

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
