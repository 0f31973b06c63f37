"""Samplers for the categorical `candidate` parameter: an ordered grid, TPE, random."""

from __future__ import annotations

import time
from typing import Any, Sequence

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from study.config import StudyConfig
from study.storage import (
    CLAIM,
    PRUNE_REASON,
    finished_candidates,
    is_abandoned,
    is_enqueued,
    knows_candidate,
    running_candidates,
    set_trial_system_attr,
    set_trial_user_attr,
    stamp_owner,
    trial_candidate,
)

CLAIM_WAIT_SECONDS = 60  # longest wait for a lower trial to claim; a live process takes milliseconds


class OrderedGridSampler(optuna.samplers.BaseSampler):
    """Visits every candidate once, in the given order, and stops the study when none is left.

    Unlike `optuna.samplers.GridSampler` it keeps a fixed order (the paper searches from the
    output end) and it gives a candidate whose only trials FAILed out again, so an interrupted or
    crashed trial is retried on resume. Everything it knows is read from the storage.

    Example:
        >>> from study.storage import PARAM
        >>> sampler = OrderedGridSampler(["block-05", "block-04", "block-03"])
        >>> study = optuna.create_study(sampler=sampler, direction="maximize")
        >>> study.optimize(lambda trial: len(trial.suggest_categorical(PARAM, ["block-03", "block-04", "block-05"])))
        >>> [t.params[PARAM] for t in study.trials]
        ['block-05', 'block-04', 'block-03']
    """

    def __init__(self, order: Sequence[str], stop_when_done: bool = True):
        self._order = list(order)
        # The rounds (study.search's rounds) ask and tell their trials outside `optimize`, where
        # `study.stop()` raises; they know themselves when nothing is left.
        self._stop_when_done = stop_when_done

    def pending(self, study: optuna.Study) -> list[str]:
        """Candidates with neither a finished (COMPLETE or PRUNED) nor a RUNNING trial, in order."""
        # RUNNING first: a trial that finishes between the two reads is then seen in one of them.
        running = running_candidates(study)
        taken = running | finished_candidates(study)
        return [name for name in self._order if name not in taken]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Claim the first candidate no other trial has, even with workers starting at once.

        Trial numbers are unique and handed out in commit order (Optuna locks the study row
        while it creates a trial), so they rank concurrent trials: a trial first waits until
        every lower-numbered RUNNING trial has written its claim (milliseconds), then takes the
        first candidate that is neither finished nor claimed. A lower trial never looks at a
        higher one's claim and a higher one always sees the lower's, so no two trials claim the
        same candidate. A claim of None means "nothing left" and is decided too.
        """
        if is_enqueued(trial) or CLAIM in trial.system_attrs:
            return
        stamp_owner(study, trial)  # first: a claim always has an owner to check on
        deadline = time.monotonic() + CLAIM_WAIT_SECONDS
        while True:
            running = [
                t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.number != trial.number
            ]
            undecided = [
                t for t in running
                if t.number < trial.number and not knows_candidate(t) and not is_abandoned(t)
            ]
            if not undecided or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        taken = finished_candidates(study) | {trial_candidate(t) for t in running}
        choice = next((name for name in self._order if name not in taken), None)
        set_trial_system_attr(study, trial, CLAIM, choice)

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, distribution: BaseDistribution
    ) -> Any:
        claimed = trial.system_attrs.get(CLAIM)
        if claimed is None:  # the grid is exhausted: nothing is left for this trial to do
            reason = "no candidate left: every candidate is finished or being trained by another worker"
            set_trial_user_attr(study, trial, PRUNE_REASON, reason)
            raise optuna.TrialPruned(reason)
        return claimed

    def after_trial(self, study, trial, state, values) -> None:
        if self._stop_when_done and not self.pending(study):
            study.stop()


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
