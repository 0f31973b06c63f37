"""The report's view of the storage: one record per study made by `python -m study.run`.

A `StudyRecord` reads everything the report, the dashboard and the decision sentence need from the
stored attrs and trials, and computes what a trial or study did not store (a trial stopped by a
pruner before its repeats were summarized, a search not complete yet):

- a candidate's repeat values (`repeat_values`, else its one score),
- its mean, standard error and 95% interval (`standard_error`/`interval_95`, else
  `study.stats.summarize`: Student's t over the repeats, or the binomial interval of one repeat on
  the selection split's images),
- the candidates tied with the winner (`tied_with_winner`, else computed the same way over the
  COMPLETE trials with `study.stats.tied_with_winner`),
- learning curves (`epoch_values`, else the per-epoch intermediate values).

No plotly here: the command line's summary imports it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from study.candidates import column_label, column_position, study_key
from study.config import StudyConfig
from study.runtime import StudyError
from study.stats import summarize, tied_with_winner, without_float32_noise
from study.storage import (
    CANDIDATES,
    CONFIG,
    COUNTS,
    EPOCH_VALUES,
    FINAL,
    INTERVAL_95,
    PARAM,
    REPEAT_VALUES,
    SPLITS,
    STANDARD_ERROR,
    TIED_WITH_WINNER,
    best_candidate,
    finished_trials,
    made_by_tool,
    open_existing_storage,
    score,
    study_records,
)


class CandidateSummary(NamedTuple):
    """A candidate's selection accuracy: mean, standard error and 95% interval (None when unknown), repeats."""

    mean: float
    standard_error: float | None
    interval_95: list[float] | None
    repeats: int


@dataclasses.dataclass
class StudyRecord:
    """One study made by `python -m study.run`, as the report needs it."""

    name: str
    config: StudyConfig
    attrs: dict
    trials: list[FrozenTrial]

    @property
    def key(self) -> str:
        """`head`, `layer`, ..., `top3`: the strategy as a Table I column key."""
        return study_key(self.config.strategy, self.config.top_k)

    @property
    def label(self) -> str:
        return column_label(self.key, self.config.random_k)

    @property
    def model(self) -> str:
        return self.config.model_label

    @property
    def dataset(self) -> str:
        return self.config.dataset_label

    @property
    def final(self) -> dict | None:
        return self.attrs.get(FINAL)

    @property
    def candidates(self) -> list[dict]:
        return self.attrs.get(CANDIDATES, [])

    def finished(self) -> dict[str, FrozenTrial]:
        """The finished (COMPLETE, else PRUNED) trial of each candidate, duplicates of TPE left out."""
        return dict(self._finished)

    @functools.cached_property
    def _finished(self) -> dict[str, FrozenTrial]:
        return finished_trials(self.trials)

    def best_candidate(self) -> str | None:
        return best_candidate(self.trials)

    # --- what the search measured --------------------------------------------------------------

    @property
    def selection_split(self) -> str:
        """The split the search scored candidates on: `search_val`, or `test` (`--select-on test`)."""
        return "search_val" if self.config.select_on == "val" else "test"

    def split_size(self, split: str) -> int | None:
        """Images in a split (all classes), from the stored split counts; None if not stored."""
        per_class = self.attrs.get(SPLITS, {}).get(COUNTS, {}).get(split)
        return int(sum(per_class.values())) if per_class else None

    @property
    def selection_images(self) -> int | None:
        """Images each candidate was scored on (per repeat)."""
        return self.split_size(self.selection_split)

    @property
    def alpha(self) -> float:
        """The study's significance level (`--race-alpha`): the race, the tied set, and every comparison shown."""
        return self.config.race_alpha

    def repeat_values(self, name: str) -> list[float]:
        """A candidate's validation accuracy per repeat (repeat order); its one score if it stopped in its first."""
        trial = self.finished().get(name)
        if trial is None:
            return []
        stored = trial.user_attrs.get(REPEAT_VALUES)
        if stored:
            return [float(value) for value in stored]
        value = score(trial)
        return [] if value is None else [value]

    @property
    def repeats(self) -> int:
        """Repeats per candidate (`--search-repeats`)."""
        return self.config.search_repeats

    def summary(self, name: str) -> CandidateSummary | None:
        """Mean, standard error, 95% interval and repeats of a candidate's selection accuracy.

        The stored `standard_error` and `interval_95` when the trial has them; else Student's t
        over its repeats, or for one repeat the binomial interval on the selection split's images
        (no interval when the split size is not stored either).

        Example:
            >>> summary = record.summary("block-03:conv5")  # doctest: +SKIP
            >>> summary.mean, summary.standard_error, summary.interval_95, summary.repeats  # doctest: +SKIP
            (0.683, 0.012, [0.631, 0.735], 3)
        """
        trial = self.finished().get(name)
        values = self.repeat_values(name)
        if trial is None or not values:
            return None
        mean = float(np.mean(values))
        stored_error, stored_interval = trial.user_attrs.get(STANDARD_ERROR), trial.user_attrs.get(INTERVAL_95)
        if stored_error is not None and stored_interval:
            error, interval = float(stored_error), [float(v) for v in stored_interval]
        elif len(values) > 1:
            error, interval = summarize(values)[1:]
        elif self.selection_images and 0 <= mean <= 1:
            error, interval = summarize(values, n_images=self.selection_images)[1:]
        else:
            error, interval = None, None
        return CandidateSummary(mean, error, interval, len(values))

    def tied(self) -> list[str]:
        """The winner, then the candidates not significantly worse than it ([] before any is complete).

        The stored `tied_with_winner` when the search wrote it. Otherwise it is computed as the race
        does (`study.stats.tied_with_winner` at `alpha`) over the COMPLETE trials: a trial stopped
        by a per-epoch pruner was scored at an earlier epoch, so it is not compared.
        """
        stored = self.attrs.get(TIED_WITH_WINNER)
        if stored:
            return [str(name) for name in stored]
        complete = sorted((t for t in self.finished().values() if t.state == TrialState.COMPLETE),
                          key=lambda t: t.number)
        results = {}
        for trial in complete:
            name = trial.params[PARAM]
            values = self.repeat_values(name)
            if values and all(math.isfinite(v) for v in values):
                results[name] = without_float32_noise(values)  # float32 noise would fake significance
        if not results:
            return []
        if min(map(len, results.values())) == 1 and not self.selection_images:
            return [self.best_candidate() or next(iter(results))]  # no split size: nothing to test with
        return tied_with_winner(results, self.selection_images, self.alpha)

    def winner(self) -> str | None:
        """The search's winner: the first of the tied set (the best COMPLETE candidate)."""
        tied = self.tied()
        return tied[0] if tied else self.best_candidate()

    def curves(self, name: str) -> list[list[float]]:
        """Validation accuracy after every epoch, one list per repeat (the learning curves).

        `epoch_values` when stored; else the trial's intermediate values when they are epochs
        (one repeat stopped by a per-epoch pruner); [] when they are the race's
        repeat values and no epochs were stored.
        """
        trial = self.finished().get(name)
        if trial is None:
            return []
        stored = trial.user_attrs.get(EPOCH_VALUES)
        if stored:
            return [[float(v) for v in curve] for curve in stored if curve]
        if len(trial.user_attrs.get(REPEAT_VALUES) or []) > 1:
            return []  # the intermediate values are repeats, not epochs
        steps = sorted(trial.intermediate_values)
        return [[float(trial.intermediate_values[s]) for s in steps]] if steps else []


def record_of(study: optuna.Study) -> StudyRecord:
    """The report's view of one study (its user attrs and trials)."""
    attrs = study_records(study)
    known = {f.name for f in dataclasses.fields(StudyConfig)}
    stored = {k: v for k, v in attrs[CONFIG].items() if k in known}
    if stored.get("delimiters") is not None:
        stored["delimiters"] = tuple(stored["delimiters"])
    config = StudyConfig(**stored, study_name=study.study_name)
    return StudyRecord(study.study_name, config, attrs, study.get_trials(deepcopy=False))


def load_records(storage: str | optuna.storages.BaseStorage, names: list[str] | None = None) -> list[StudyRecord]:
    """Every study of `study.run` in the storage (or the named ones), in Table I order per model.

    Example:
        >>> [r.label for r in load_records("sqlite:///storage/studies.db")]  # doctest: +SKIP
        ['Baseline I', 'Baseline II', 'LW', 'BW', 'BWT3', 'BWT5', 'BWSW', 'Random-3']
    """
    if isinstance(storage, str):
        opened = open_existing_storage(storage)  # read-only: the storage's bytes never change
        try:
            return load_records(opened, names)
        finally:
            opened.engine.dispose()  # the records hold copies; no connection is left open on the file
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    studies = {n: optuna.load_study(study_name=n, storage=storage) for n in summaries}
    made = {n for n, study in studies.items() if made_by_tool(study_records(study))}
    for name in names or []:
        if name not in summaries:
            raise StudyError(f"--study {name!r} is not in the storage; it holds {', '.join(sorted(summaries)) or 'no study'}")
        if name not in made:
            raise StudyError(f"--study {name!r} was not made by `python -m study.run` (it has no config)")
    chosen = names or [n for n in summaries if n in made]
    records = [record_of(studies[n]) for n in chosen]
    return sorted(records, key=lambda r: (r.dataset, r.model, column_position(r.key), r.name))
