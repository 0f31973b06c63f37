"""Trial pruning: the pruner of `--pruner` (which also prunes a trial that ran out of device memory), the Keras
callback that reports every epoch to it."""

from __future__ import annotations

from typing import Callable, TypeVar

import keras
import optuna

from study.config import StudyConfig
from study.runtime import Device
from study.search._race import RacePruner
from study.storage import (
    BATCH_SIZE,
    OUT_OF_MEMORY,
    PRUNE_REASON,
    rounded,
    set_trial_system_attr,
)

Result = TypeVar("Result")
PRUNERS = {
    "race": RacePruner,
    "median": optuna.pruners.MedianPruner,
    "halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "none": optuna.pruners.NopPruner,
}


def make_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    """The pruner for `--pruner`, out-of-memory aware: the race across repeats, or a per-epoch pruner that
    never prunes before `--pruner-warmup` epochs.

    Example:
        >>> type(make_pruner(StudyConfig(pruner="hyperband", search_repeats=1).validate())).__mro__[1].__name__
        'HyperbandPruner'
    """
    warmup = min(config.pruner_warmup, config.epochs - 1)
    arguments = {
        "race": dict(alpha=config.race_alpha, repeats=config.search_repeats),
        "median": dict(n_startup_trials=3, n_warmup_steps=warmup),
        "halving": dict(min_resource=max(1, warmup)),
        "hyperband": dict(min_resource=max(1, warmup), max_resource=config.epochs),
        "none": {},
    }[config.pruner]
    return out_of_memory_aware(PRUNERS[config.pruner])(**arguments)


def out_of_memory_aware(pruner_class: type[optuna.pruners.BasePruner]) -> type[optuna.pruners.BasePruner]:
    """A subclass of `pruner_class` that also prunes every trial that does not fit the device.

    Curves are judged by the chosen pruner; a trial marked by `fit_or_prune` as out of device
    memory is always pruned. A subclass, not a wrapper, so that Optuna still recognises the pruner
    (its samplers read a HyperbandPruner's brackets by type).

    Example:
        >>> pruner = out_of_memory_aware(optuna.pruners.MedianPruner)()
        >>> isinstance(pruner, optuna.pruners.MedianPruner)
        True
    """

    class OutOfMemoryAware(pruner_class):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            return OUT_OF_MEMORY in trial.system_attrs or super().prune(study, trial)

    OutOfMemoryAware.__name__ = OutOfMemoryAware.__qualname__ = f"OutOfMemoryAware{pruner_class.__name__}"
    return OutOfMemoryAware


def fit_or_prune(
    trial: optuna.Trial, train: Callable[[int], Result], batch_size: int, device: Device
) -> Result:
    """`train(batch_size)`; on device out-of-memory retry once at half the batch, then prune.

    The batch size used is the trial's user attr `batch_size`; a trial that does not fit even at
    half the batch ends PRUNED (not FAIL) with user attr `prune_reason`, and the study goes on.

    Example:
        >>> result = fit_or_prune(trial, lambda size: fine_tune(..., batch_size=size), 4, device)  # doctest: +SKIP
    """
    sizes = [batch_size] if batch_size == 1 else [batch_size, max(1, batch_size // 2)]
    for size in sizes:
        trial.set_user_attr(BATCH_SIZE, size)
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
    trial.set_user_attr(PRUNE_REASON, reason)
    set_trial_system_attr(trial.study, trial, OUT_OF_MEMORY, sizes)
    raise optuna.TrialPruned(reason)


class ReportToTrial(keras.callbacks.Callback):
    """Reports a metric to the Optuna trial after every epoch and stops hopeless trials.

    The epochs reported before pruning stay in the trial (its curve).

    Example:
        >>> model.fit(x, y, validation_data=(xv, yv), callbacks=[ReportToTrial(trial)])  # doctest: +SKIP
    """

    def __init__(self, trial: optuna.Trial, monitor: str = "val_accuracy"):
        super().__init__()
        self.trial = trial
        self.monitor = monitor

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        self.trial.report(rounded(value), step=epoch + 1)
        if self.trial.should_prune():
            reason = f"pruned after epoch {epoch + 1}: {self.monitor}={value:.4f}"
            self.trial.set_user_attr(PRUNE_REASON, reason)
            raise optuna.TrialPruned(reason)
