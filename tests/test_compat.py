"""The private Keras and Optuna internals the two compat modules reach (study.runtime's keras compat,
study.storage's optuna compat), checked against the installed versions.

When an upgrade moves one of them, this file fails first and names it; pyproject.toml bounds both
libraries to the versions in `CHECKED_AGAINST` until the module is checked again.
"""

import importlib.metadata

import keras
import numpy as np
import optuna
import pytest

from study.runtime import _keras_compat as keras_compat
from study.storage import _optuna_compat as optuna_compat

COMPAT = {"keras": keras_compat, "optuna": optuna_compat}


def _major_minor(package: str) -> tuple[int, int]:
    major, minor = importlib.metadata.version(package).split(".")[:2]
    return int(major), int(minor)


@pytest.mark.parametrize("package", ["keras", "optuna"])
def test_installed_version_is_within_what_was_checked(package):
    compat = COMPAT[package]
    checked = tuple(int(part) for part in compat.CHECKED_AGAINST[package].split("."))
    assert _major_minor(package) <= checked, (
        f"{package} {importlib.metadata.version(package)} is newer than {compat.CHECKED_AGAINST[package]}, "
        f"the version {compat.__name__} was checked against: check its functions, then raise the bound"
    )


def test_keras_graph_internals():
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(2, name="d")
    outputs = dense(inputs)
    model = keras.Model(inputs, outputs)
    assert keras_compat.producer_of(outputs) is dense
    node = keras_compat.layer_node_in(model, dense)
    assert node is not None and keras_compat.producer_of(node.input_tensors[0]).name == model.layers[0].name
    other = keras.Model(inputs, dense(inputs))  # the same layer called again: another node
    assert keras_compat.layer_node_in(other, dense) is not node
    assert keras_compat.is_graph_model(model) and keras_compat.is_graph_model(keras.Sequential([dense]))
    assert not keras_compat.is_graph_model(dense)
    calls = []
    result = keras_compat.run_graph(model, [np.ones((1, 4), np.float32)], lambda layer, args, kwargs: calls.append(layer.name)
                              or layer(*args, **kwargs))
    assert calls == ["d"] and tuple(result.shape) == (1, 2)


def test_keras_adam_slots_and_all_reduce_hook():
    weight = keras.Variable(np.ones(3, np.float32))
    adam = keras.optimizers.Adam()
    adam.build([weight])
    momentum, velocity = keras_compat.adam_slots(adam, weight)
    assert tuple(momentum.shape) == tuple(velocity.shape) == (3,)
    assert hasattr(keras.optimizers.Adam, "_all_reduce_sum_gradients")  # what SkipOneReplicaAllReduce overrides


def test_optuna_storage_internals():
    study = optuna.create_study()
    trial = study.ask()
    optuna_compat.set_trial_system_attr(study, trial, "x", 1)
    optuna_compat.set_trial_user_attr(study, trial, "y", 2)
    frozen = study.trials[0]
    assert frozen.system_attrs["x"] == 1 and frozen.user_attrs["y"] == 2
    assert optuna_compat.trial_id(frozen) == optuna_compat.trial_id(trial)
    assert optuna_compat.fail_trial(study, frozen) and study.trials[0].state == optuna.trial.TrialState.FAIL
    assert optuna_compat.fail_trial(study, frozen) is False  # already finished
