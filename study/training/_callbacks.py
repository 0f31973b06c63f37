"""The callbacks of a fit: Ctrl-C at a batch end, the live progress line, and the search's stopping rule."""

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


def stop_when_settled(patience: int, min_delta: float) -> keras.callbacks.EarlyStopping:
    """Keras's EarlyStopping on validation accuracy: the fit ends once `patience` epochs have passed
    without an accuracy more than `min_delta` above the best so far. The weights stay those of the
    last epoch (no restoring the best epoch), so the repeat's value is its last epoch's accuracy, as
    with fixed epochs; `epochs` stays the cap.

    Why 10 and 0.01 by default: on 50-epoch curves of the real ImageNet MobileNet (alpha 0.25) on
    real digit images (5 blocks x 3 repeats, 64 and 96 px, docs/statistics.md, "Early stopping"), 10 is the
    smallest patience that never changed the ranking of the candidates, and it equals
    ReduceLROnPlateau's patience; 0.01 is under one binomial standard error of an accuracy on a few
    hundred images.

    Example:
        >>> stop = stop_when_settled(patience=2, min_delta=0.01)
        >>> stop.set_model(keras.Sequential()); stop.on_train_begin()
        >>> for epoch, accuracy in enumerate([0.50, 0.60, 0.605, 0.60]):
        ...     stop.on_epoch_end(epoch, {"val_accuracy": accuracy})
        >>> stop.model.stop_training, stop.stopped_epoch
        (True, 3)
    """
    return keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience,
                                         min_delta=min_delta, restore_best_weights=False)
