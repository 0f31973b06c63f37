"""Auto-RGN (Lee et al., "Surgical Fine-Tuning Improves Adaptation to Distribution Shifts", ICLR 2023):
every layer is trained, each with its own learning rate, the base rate times its relative gradient norm.

Keras has one learning rate per optimizer; this is the one place where a layer gets its own. The rule:
for each layer, RGN = ||g|| / ||θ|| (L2 norms over all of the layer's trainable tensors, kernel and bias
together), the weights w = RGN / max(RGN) over the layers, and each variable's Adam step is taken with
learning rate w x lr. Per layer, not per tensor as the authors' code (`torch.norm(grad) / torch.norm(param)`
per parameter tensor): Keras initialises biases to zero, so a bias's own RGN divides by zero at the first
step; for the bias-free convolutions of their ResNets the two are the same. It is recomputed at every step
from that step's gradients (the issue's rule); their code recomputes it once per epoch from the mean of
5 batches and restarts Adam each epoch (a side effect of building a new PyTorch optimizer).
"""

from __future__ import annotations

import keras

from study.runtime import built_variables, variable_index
from study.training._optimizer import FusedAdam

TINY = 1e-12  # a layer whose weights are all zero has no relative norm: its RGN is its gradient's norm / TINY


def layer_of(variable) -> str:
    """The layer a variable belongs to, from its path (`head_dense_64/kernel` -> `head_dense_64`).

    Example:
        >>> layer_of(keras.Variable([1.0], name="kernel"))  # doctest: +SKIP
        'dense'
    """
    return variable.path.rsplit("/", 1)[0]


@keras.saving.register_keras_serializable(package="study")
class AutoRGNAdam(FusedAdam):
    """The fused Adam with each layer's step scaled by its normalised relative gradient norm (Auto-RGN).

    `layer_weights` holds the last step's weight per layer (`layer_names` order), for tests and logs.

    Example:
        >>> model.compile(optimizer=AutoRGNAdam(learning_rate=5e-5), loss="sparse_categorical_crossentropy")  # doctest: +SKIP
        >>> dict(zip(optimizer.layer_names, optimizer.layer_weights.numpy()))  # doctest: +SKIP
        {'conv1': 0.02, ..., 'head_classes': 1.0}
    """

    def build(self, variables):
        super().build(variables)
        paths = [layer_of(v) for v in variables]
        self.layer_names = list(dict.fromkeys(paths))
        self._layer_of_variable = [self.layer_names.index(path) for path in paths]
        self.layer_weights = self.add_variable((len(self.layer_names),), initializer="ones", name="rgn_layer_weights")

    def apply(self, grads, trainable_variables=None):
        if not self.built:
            self.build(list(trainable_variables))
        variables = built_variables(self) if trainable_variables is None else list(trainable_variables)
        gradient_squares = [keras.ops.zeros(())] * len(self.layer_names)
        weight_squares = [keras.ops.zeros(())] * len(self.layer_names)
        for gradient, variable in zip(grads, variables):
            if gradient is None:
                continue
            layer = self._layer_of_variable[variable_index(self, variable)]
            gradient_squares[layer] += keras.ops.sum(keras.ops.square(keras.ops.cast(gradient, "float32")))
            weight_squares[layer] += keras.ops.sum(keras.ops.square(keras.ops.cast(variable, "float32")))
        rgn = keras.ops.sqrt(keras.ops.stack(gradient_squares)) / keras.ops.maximum(
            keras.ops.sqrt(keras.ops.stack(weight_squares)), TINY)
        self.layer_weights.assign(rgn / keras.ops.maximum(keras.ops.max(rgn), TINY))
        return super().apply(grads, trainable_variables)

    def update_step(self, gradient, variable, learning_rate):
        weight = self.layer_weights[self._layer_of_variable[variable_index(self, variable)]]
        return super().update_step(gradient, variable, learning_rate * keras.ops.cast(weight, variable.dtype))
