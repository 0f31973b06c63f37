"""Samplers for the categorical `candidate` parameter: an ordered grid, TPE, random."""

from __future__ import annotations

from typing import Any, Sequence

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from study.config import StudyConfig

PARAM = "candidate"
CLAIM = "grid_candidate"  # trial system attr: the candidate this trial was given


class OrderedGridSampler(optuna.samplers.BaseSampler):
    """Visits every candidate once, in the given order, and stops the study when none is left.

    Unlike `optuna.samplers.GridSampler` it keeps a fixed order (the paper searches from the
    output end) and it gives a candidate whose only trials FAILed out again, so an interrupted or
    crashed trial is retried on resume. Everything it knows is read from the storage.

    Example:
        >>> sampler = OrderedGridSampler(["block-05", "block-04", "block-03"])
        >>> study = optuna.create_study(sampler=sampler, direction="maximize")
    """

    def __init__(self, order: Sequence[str]):
        self._order = list(order)

    def pending(self, study: optuna.Study) -> list[str]:
        """Candidates with neither a finished (COMPLETE or PRUNED) nor a RUNNING trial, in order."""
        taken = finished_candidates(study) | running_candidates(study)
        return [name for name in self._order if name not in taken]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if "fixed_params" in trial.system_attrs or CLAIM in trial.system_attrs:
            return
        pending = self.pending(study)
        if pending:
            study._storage.set_trial_system_attr(trial._trial_id, CLAIM, pending[0])

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, distribution: BaseDistribution
    ) -> Any:
        claimed = trial.system_attrs.get(CLAIM)
        if claimed is None:  # the grid is exhausted: nothing is left for this trial to do
            raise optuna.TrialPruned("every candidate already has a trial")
        return claimed

    def after_trial(self, study, trial, state, values) -> None:
        if not self.pending(study):
            study.stop()


def trial_candidate(trial: FrozenTrial) -> str | None:
    """The candidate a trial trains: its parameter, or the grid's claim before it is suggested."""
    return trial.params.get(PARAM, trial.system_attrs.get(CLAIM))


def finished_candidates(study: optuna.Study) -> set[str]:
    """Candidates that have a COMPLETE or PRUNED trial."""
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    return {trial_candidate(t) for t in study.get_trials(deepcopy=False, states=states)} - {None}


def running_candidates(study: optuna.Study) -> set[str]:
    """Candidates whose trial is RUNNING (here or in another worker)."""
    states = (TrialState.RUNNING,)
    return {trial_candidate(t) for t in study.get_trials(deepcopy=False, states=states)} - {None}


def make_sampler(config: StudyConfig, order: Sequence[str]) -> optuna.samplers.BaseSampler:
    """The sampler of `--sampler`, seeded from `--seed`.

    Example:
        >>> make_sampler(StudyConfig(sampler="tpe").validate(), ["a", "b"])  # doctest: +ELLIPSIS
        <optuna.samplers._tpe.sampler.TPESampler object at ...>
    """
    if config.sampler == "grid":
        return OrderedGridSampler(order)
    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=config.seed)
    return optuna.samplers.RandomSampler(seed=config.seed)
