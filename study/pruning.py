"""Trial pruning: the GPU-aware pruner of `--pruner`, the out-of-memory policy, and the Keras
callback that reports every epoch to it."""

from __future__ import annotations

from typing import Callable, TypeVar

import keras
import optuna

from study.config import StudyConfig
from study.devices import Device, current_device

OUT_OF_MEMORY = "out_of_memory"  # trial system attr: the batch sizes that did not fit the device
Result = TypeVar("Result")


def make_pruner(config: StudyConfig, device: Device | None = None) -> "GpuAwarePruner":
    """The pruner for `--pruner`, never pruning before `--pruner-warmup` epochs, on `device`.

    Example:
        >>> make_pruner(StudyConfig(pruner="median").validate()).pruner  # doctest: +ELLIPSIS
        <optuna.pruners._median.MedianPruner object at ...>
    """
    warmup = min(config.pruner_warmup, config.epochs - 1)
    if config.pruner == "median":
        inner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup)
    elif config.pruner == "halving":
        inner = optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup))
    elif config.pruner == "hyperband":
        inner = optuna.pruners.HyperbandPruner(min_resource=max(1, warmup), max_resource=config.epochs)
    else:
        inner = optuna.pruners.NopPruner()
    return GpuAwarePruner(inner, device or current_device())


class GpuAwarePruner(optuna.pruners.BasePruner):
    """The chosen pruner, plus the device this worker trains on.

    Curves are judged by the wrapped pruner; a trial that does not fit the device (marked by
    `fit_or_prune`) is always pruned, whatever its curve says. Each worker process has its own
    instance, so `device` is that worker's GPU.

    Example:
        >>> pruner = GpuAwarePruner(optuna.pruners.MedianPruner(), current_device())
        >>> study = optuna.create_study(pruner=pruner, direction="maximize")
    """

    def __init__(self, pruner: optuna.pruners.BasePruner, device: Device):
        self.pruner = pruner
        self.device = device

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if OUT_OF_MEMORY in trial.system_attrs:
            return True
        return self.pruner.prune(study, trial)


def fit_or_prune(
    trial: optuna.Trial, train: Callable[[int], Result], batch_size: int, device: Device
) -> Result:
    """`train(batch_size)`; on device out-of-memory retry once at half the batch, then prune.

    The batch size used is the trial's user attr `batch_size`; a trial that does not fit even at
    half the batch ends PRUNED (not FAIL) with user attr `prune_reason`, and the study goes on.

    Example:
        >>> result = fit_or_prune(trial, lambda size: fine_tune(..., batch_size=size), 4, device)
    """
    sizes = [batch_size] if batch_size == 1 else [batch_size, max(1, batch_size // 2)]
    for size in sizes:
        trial.set_user_attr("batch_size", size)
        try:
            return train(size)
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise
        except Exception as error:
            if not device.is_out_of_memory(error):
                raise
            device.release()  # the failed attempt's tensors, before the smaller retry
            detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    reason = (
        f"out of memory on {device.name} at batch size {' and '.join(map(str, sizes))} ({detail})"
    )
    trial.set_user_attr("prune_reason", reason)
    trial.storage.set_trial_system_attr(trial._trial_id, OUT_OF_MEMORY, sizes)
    raise optuna.TrialPruned(reason)


class ReportToTrial(keras.callbacks.Callback):
    """Reports a metric to the Optuna trial after every epoch and stops hopeless trials.

    The epochs reported before pruning stay in the trial (its curve).

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
            reason = f"pruned after epoch {epoch + 1}: {self.monitor}={value:.4f}"
            self.trial.set_user_attr("prune_reason", reason)
            raise optuna.TrialPruned(reason)
