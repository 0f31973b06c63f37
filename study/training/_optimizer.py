"""The optimizer: Keras's Adam, each update in one fused kernel, and how a model is compiled."""

from __future__ import annotations

import keras

from study.runtime import SkipOneReplicaAllReduce, adam_slots, fused_adam_step, is_sparse_gradient

STEPS_PER_EXECUTION = 16



@keras.saving.register_keras_serializable(package="study")
class FusedAdam(SkipOneReplicaAllReduce, keras.optimizers.Adam):
    """Keras's Adam, each variable updated by TensorFlow's fused Adam kernel (`ResourceApplyAdam`).

    The same update rule in one kernel per variable instead of about ten element-wise ops (whose launch
    overhead and memory traffic dominate a head-only step at the paper's batch of 4; README:
    performance). Sparse gradients and AMSGrad take Keras's own path. Models saved for users carry no
    optimizer, so they load without this package.

    Example:
        >>> model.compile(optimizer=FusedAdam(learning_rate=5e-5), loss="sparse_categorical_crossentropy")  # doctest: +SKIP
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or is_sparse_gradient(gradient):  # no fused kernel for these
            return super().update_step(gradient, variable, learning_rate)
        momentum, velocity = adam_slots(self, variable)
        dtype = variable.dtype
        step = keras.ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = keras.ops.cast(self.beta_1, dtype), keras.ops.cast(self.beta_2, dtype)
        fused_adam_step(
            variable, momentum, velocity,
            beta_1_power=keras.ops.power(beta_1, step),
            beta_2_power=keras.ops.power(beta_2, step),
            learning_rate=keras.ops.cast(learning_rate, dtype),
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=keras.ops.cast(self.epsilon, dtype),
            gradient=keras.ops.cast(gradient, dtype),
        )



def compile_model(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
    """Compile with the paper's loss and accuracy metric.

    Example:
        >>> compile_model(model, keras.optimizers.Adam(learning_rate=5e-5))  # doctest: +SKIP
    """
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # Several batches per graph call: the same updates in the same order, less Python
        # overhead per step, which dominates with the paper's batch of 4 on a cached prefix.
        steps_per_execution=STEPS_PER_EXECUTION,
    )
