"""The objective: one trial trains its candidate `--search-repeats` times, on paired draws, and races."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import optuna

from study.candidates import Candidate
from study.config import PER_EPOCH_PRUNERS, StudyConfig
from study.inputs import Splits, build_backbone, preprocessor
from study.runtime import current_device
from study.search._pruners import ReportToTrial, fit_or_prune
from study.stats import TEST_WORDS, summarize
from study.storage import (
    DEVICE,
    DUPLICATE_OF,
    EPOCH_VALUES,
    INTERVAL_95,
    LAYERS,
    PARAM,
    PEAK_MEMORY,
    PREFIX_CACHE,
    PRUNE_REASON,
    REPEAT_EPOCHS,
    REPEAT_VALUES,
    SECONDS,
    STANDARD_ERROR,
    TAKEN_OVER,
    TRAIN_ACCURACY,
    TRAINABLE_PARAMS,
)
from study.training import SplitRows, count_trainable, fine_tune, prefix_cache, stop_when_settled

KEPT_IN_ROUNDS = 16  # traced models kept in rounds: a block grid's candidates (MobileNetV2 has 11)


def repeat_splits(config: StudyConfig, splits: Splits) -> list[tuple[SplitRows, SplitRows]]:
    """The (search-train, selection) split of every repeat (`--search-repeats`), as rows of one source.

    Decoded and preprocessed once per run, not once per trial: every image any repeat uses is in
    one source array the repeats index, so the prefix cache computes it once per cut.

    Example:
        >>> [(train.size, val.size) for train, val in repeat_splits(config, load_splits(config))]  # doctest: +SKIP
        [(100, 200), (100, 200), (100, 200)]
    """
    draws = [splits.search_draw(r) for r in range(config.search_repeats)]
    if config.select_on == "test":  # the paper's choice: every repeat is scored on the test split
        draws = [(train, splits.indices["test"]) for train, _ in draws]
    rows = np.unique(np.concatenate([index for draw in draws for index in draw]))
    position = np.zeros(len(splits.labels), np.int64)
    position[rows] = np.arange(len(rows))
    images = preprocessor(config)(splits.images[rows])
    labels = splits.labels[rows]
    return [(SplitRows("search", images, labels, position[train]), SplitRows("search", images, labels, position[val]))
            for train, val in draws]



class Objective:
    """Fine-tunes the trial's candidate `--search-repeats` times, each repeat on its own paired draw
    of search-train and search-val (study.inputs.Splits.search_draw) with its own seed; returns the
    mean validation accuracy, each repeat's being that of its last epoch. A repeat stops once its
    validation accuracy has settled (`StudyConfig.stops_early`), `--epochs` being the cap; the
    epochs each ran are its user attr `repeat_epochs`.

    Each repeat's value is written as it finishes (user attr `repeat_values`), so a trial that is
    interrupted leaves its finished repeats behind and the next trial of the candidate does not
    train them again. With the race pruner every repeat is reported (step = repeat) and the trial
    stops once it is shown worse than the best; a per-epoch pruner (one repeat) gets every epoch.
    """

    def __init__(self, config: StudyConfig, splits: Splits, by_name: dict[str, Candidate],
                 planned: list[Candidate] = ()):
        self.config = config
        self.by_name = by_name
        self.num_classes = splits.num_classes
        self.repeats = repeat_splits(config, splits)
        # The next candidates' prefixes share one pass. The rounds train every candidate once per
        # round: each keeps its traced graph (a new trace costs 3-9 s, 13-14 epochs' worth, docs/performance.md).
        self.cache = prefix_cache(config, planned, KEPT_IN_ROUNDS if config.in_rounds else 1)
        self.device = current_device()
        self.per_epoch = config.pruner in PER_EPOCH_PRUNERS

    def __call__(self, trial: optuna.Trial) -> float:
        name = trial.suggest_categorical(PARAM, list(self.by_name))
        earlier = _finished_value(trial.study, name, trial.number)
        if earlier is not None:  # TPE and random may draw a candidate again: do not retrain it
            trial.set_user_attr(DUPLICATE_OF, earlier[0])
            return earlier[1]
        candidate = self.by_name[name]
        self.start(trial, candidate)
        started = time.perf_counter()
        held = interrupted_repeats(trial.study, name)
        try:
            for repeat in range(len(self.repeats)):
                if repeat >= len(held.values):
                    self.train_next(trial, candidate, held)
                store_repeats(trial, held)
                if not self.per_epoch:
                    self._race(trial, held.values[repeat], repeat)
        finally:
            trial.set_user_attr(SECONDS, round(time.perf_counter() - started, 3))
            trial.set_user_attr(PEAK_MEMORY, self.device.peak_memory_bytes())
        return self.summarize(trial, held)

    def start(self, trial: optuna.Trial, candidate: Candidate) -> None:
        """Record what the trial trains and where, before its first repeat."""
        trial.set_user_attr(LAYERS, list(candidate.layers))
        trial.set_user_attr(DEVICE, self.device.name)
        self.device.reset_peak_memory()

    def train_next(self, trial: optuna.Trial, candidate: Candidate, held: "Repeats") -> None:
        """Train the candidate's next repeat (its draw and seed) and add what it measured to `held`."""
        repeat = len(held.values)
        result = self._train(trial, candidate, repeat, *self.repeats[repeat])
        held.values.append(result.history["val_accuracy"][-1])
        held.curves.append([round(v, 6) for v in result.history["val_accuracy"]])
        held.train_accuracies.append(result.history["accuracy"][-1])
        trial.set_user_attr(PREFIX_CACHE, result.cache)

    def summarize(self, trial: optuna.Trial, held: "Repeats") -> float:
        """The trial's value, the mean of its repeats, with its standard error and interval stored."""
        summary = summarize(held.values, n_images=self.repeats[0][1].size)
        trial.set_user_attr(STANDARD_ERROR, summary.standard_error)
        trial.set_user_attr(INTERVAL_95, summary.interval_95)
        return float(np.mean(held.values))

    def _train(self, trial: optuna.Trial, candidate: Candidate, repeat: int, train: SplitRows, validation: SplitRows):
        """One repeat: its own draw and seed; the backbone (and so the cache) is the same in every repeat."""
        # Out of GPU memory: retried once at half the batch, then pruned (`fit_or_prune`).
        return fit_or_prune(trial, lambda batch_size: fine_tune(
            self.config,
            lambda: build_backbone(self.config),
            candidate,
            train,
            self.num_classes,
            validation=validation,
            callbacks=self._callbacks(trial),
            seed=self.config.seed + repeat,
            backbone_seed=self.config.seed,
            batch_size=batch_size,
            before_fit=lambda model: _record_trainable(trial, model),
            cache=self.cache,
        ), self.config.batch_size, self.device)

    def _callbacks(self, trial: optuna.Trial) -> list:
        """A per-epoch pruner's report of every epoch (one repeat), or the stopping rule (`stops_early`)."""
        if self.per_epoch:
            return [ReportToTrial(trial, "val_accuracy")]
        if self.config.stops_early:
            return [stop_when_settled(self.config.patience, self.config.min_delta)]
        return []

    def _race(self, trial: optuna.Trial, value: float, repeat: int) -> None:
        """Report a repeat's value; stop the trial once the race shows it worse than the best."""
        trial.report(value, step=repeat)
        if repeat + 1 < len(self.repeats) and trial.should_prune():
            reason = f"stopped after {repeat + 1} of {len(self.repeats)} repeats: " + _race_reason(trial)
            trial.set_user_attr(PRUNE_REASON, reason)
            raise optuna.TrialPruned(reason)



def _race_reason(trial: optuna.Trial) -> str:
    """Why the race pruner stopped a trial, in words, from the same comparison it made."""
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    compared = trial.study.pruner.compare_with_best(trial.study, frozen)
    if compared is None:  # the pruner said so for another reason (out of device memory)
        return "the pruner stopped it"
    best, p = compared
    return (f"worse than trial {best.number} ({best.params.get(PARAM)}) on the repeats both have, "
            f"p={p:.3g} < {trial.study.pruner.level(trial.study):.3g} ({TEST_WORDS})")



@dataclasses.dataclass
class Repeats:
    """A candidate's finished repeats: validation accuracy (last epoch), curve and training accuracy of each."""

    values: list[float] = dataclasses.field(default_factory=list)
    curves: list[list[float]] = dataclasses.field(default_factory=list)
    train_accuracies: list[float] = dataclasses.field(default_factory=list)
    taken_over: int = 0  # how many of them an interrupted trial had trained (not trained again here)
    trainable_params: int | None = None  # the interrupted trial's count: a trial that trains nothing has none


def interrupted_repeats(study: optuna.Study, name: str) -> Repeats:
    """The finished repeats of the candidate's interrupted (FAIL) trials, to take over.

    Repeats are deterministic (their draw and seed), so a finished one is not trained again.
    """
    failed = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
              if t.params.get(PARAM) == name and t.user_attrs.get(REPEAT_VALUES)]
    if not failed:
        return Repeats()
    longest = max(failed, key=lambda t: len(t.user_attrs[REPEAT_VALUES]))
    values = list(longest.user_attrs[REPEAT_VALUES])
    curves = list(longest.user_attrs.get(EPOCH_VALUES, [[] for _ in values]))
    train_accuracy = longest.user_attrs.get(TRAIN_ACCURACY, 0.0)
    return Repeats(values, curves, [train_accuracy] * len(values), taken_over=len(values),
                   trainable_params=longest.user_attrs.get(TRAINABLE_PARAMS))


def store_repeats(trial: optuna.Trial, held: Repeats) -> None:
    """Write a trial's repeats so far (values, curves, epochs, how many were taken over) as its user attrs."""
    trial.set_user_attr(REPEAT_VALUES, held.values)
    trial.set_user_attr(EPOCH_VALUES, held.curves)
    trial.set_user_attr(REPEAT_EPOCHS, [len(curve) for curve in held.curves])
    trial.set_user_attr(TAKEN_OVER, held.taken_over)
    trial.set_user_attr(TRAIN_ACCURACY, float(np.mean(held.train_accuracies)))
    if held.trainable_params is not None:  # --select simplest needs it when every repeat was taken over
        trial.set_user_attr(TRAINABLE_PARAMS, held.trainable_params)



def _record_trainable(trial: optuna.Trial, model) -> None:
    trial.set_user_attr(TRAINABLE_PARAMS, count_trainable(model))



def _finished_value(study: optuna.Study, name: str, number: int) -> tuple[int, float] | None:
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.params.get(PARAM) == name and t.number != number:
            return t.number, float(t.value)
    return None
