"""Trial pruning: the Optuna pruner of `--pruner`, and the Keras callback that feeds it every epoch."""

from __future__ import annotations

import keras
import optuna

from study.config import StudyConfig


def make_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    """The Optuna pruner for `--pruner`, never pruning before `--pruner-warmup` epochs.

    Example:
        >>> make_pruner(StudyConfig(pruner="median").validate())  # doctest: +ELLIPSIS
        <optuna.pruners._median.MedianPruner object at ...>
    """
    warmup = min(config.pruner_warmup, config.epochs - 1)
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup)
    if config.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup))
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup), max_resource=config.epochs)
    return optuna.pruners.NopPruner()


class ReportToTrial(keras.callbacks.Callback):
    """Reports a metric to the Optuna trial after every epoch and stops hopeless trials.

    Example:
        >>> model.fit(x, y, validation_data=(xv, yv), callbacks=[ReportToTrial(trial)])
    """

    def __init__(self, trial: optuna.Trial, monitor: str = "val_accuracy"):
        super().__init__()
        self.trial = trial
        self.monitor = monitor

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        self.trial.report(float(value), step=epoch + 1)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}: {self.monitor}={value:.4f}")
