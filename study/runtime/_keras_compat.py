"""Every use of a private Keras internal, gathered in one place (Optuna's: study.storage's optuna compat).

Each function below reaches into Keras where no public API does the job; each says why. The version
these were checked against is pinned as an upper bound in pyproject.toml and named in
`tests/test_compat.py`, which fails with a clear message when an internal moves.
`tests/test_architecture.py` allows Keras's and TensorFlow's private names in this module only.

Example:
    >>> CHECKED_AGAINST["keras"]
    '3.15'
"""

from __future__ import annotations

from study.runtime._backend import replicas_in_sync

# Major.minor version whose internals the functions below were checked against.
CHECKED_AGAINST = {"keras": "3.15"}


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



# Flattening a user's nested or Sequential model (study.inputs) must visit a functional graph node
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



def variable_index(optimizer, variable) -> int:
    """The position of `variable` among the variables `optimizer` was built on (Keras's own index).

    Example:
        >>> import keras
        >>> a, b = keras.Variable([1.0]), keras.Variable([2.0]); adam = keras.optimizers.Adam(); adam.build([a, b])
        >>> variable_index(adam, b)
        1
    """
    return optimizer._get_variable_index(variable)


def built_variables(optimizer) -> list:
    """The trainable variables `optimizer` was built on, in its order."""
    return list(optimizer._trainable_variables)


class SkipOneReplicaAllReduce:
    """Optimizer mixin: with one replica, no gradient all-reduce.

    Keras's TensorFlow optimizer sums gradients across replicas even when there is one, and TF
    wraps that sum in `tf.custom_gradient`, which registers a gradient function for good on every
    trace: every trial's training graph would stay in memory and slow down every garbage
    collection. The hook is the private `_all_reduce_sum_gradients`; with several replicas
    Keras's own method runs.
    """

    def _all_reduce_sum_gradients(self, grads_and_vars):
        if replicas_in_sync() == 1:
            return list(grads_and_vars)
        return super()._all_reduce_sum_gradients(grads_and_vars)
