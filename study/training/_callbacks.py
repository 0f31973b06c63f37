"""The callbacks every fit gets: Ctrl-C at a batch end, and the live progress line."""

from __future__ import annotations

import keras

from study.runtime import epoch_end, raise_held_interrupt, train_begin, train_end


class CtrlCAtBatchEnd(keras.callbacks.Callback):
    """Inside `interrupts_deferred`, a Ctrl-C stops the fit at the end of the current batch.

    Raised from a callback, the KeyboardInterrupt leaves Keras the way a pruned trial does; raised
    wherever Python happened to be, it could break a TensorFlow device scope or be swallowed.
    `async_safe`: Keras keeps running batch-end callbacks in its thread pool, without waiting
    for each batch's metrics; the interrupt comes back to the fit from there a batch later.

    Example:
        >>> with interrupts_deferred():  # doctest: +SKIP
        ...     model.fit(x, y, callbacks=[CtrlCAtBatchEnd()])
    """

    async_safe = True

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        raise_held_interrupt()

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        raise_held_interrupt()



class EpochProgress(keras.callbacks.Callback):
    """Tells the live progress line (study.runtime) where a fit is: its live line (trial k/N or seed s/S, epoch, accuracy)."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        train_begin()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        epoch_end(epoch + 1, self.params["epochs"], logs or {})

    def on_train_end(self, logs: dict | None = None) -> None:
        train_end()
