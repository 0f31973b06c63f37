"""The report's view of the storage: one record per study made by `python -m study.run`."""

from __future__ import annotations

import dataclasses

import optuna
from optuna.trial import FrozenTrial

from study.config import StudyConfig
from study.errors import StudyError
from study.records import CANDIDATES, CONFIG, FINAL, best_candidate, finished_trials, made_by_tool, study_records
from study.storage import open_existing_storage
from study.strategies import column_label, column_position, study_key


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
        return finished_trials(self.trials)

    def best_candidate(self) -> str | None:
        return best_candidate(self.trials)


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
        storage = open_existing_storage(storage)
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
