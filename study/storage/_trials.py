"""The readers of trials: which candidate a trial trains, which are finished, a trial's score.

Example:
    >>> study = optuna.create_study(direction="maximize")
    >>> study.enqueue_trial({PARAM: "block-01"}); study.optimize(lambda t: t.suggest_categorical(PARAM, ["block-01"]) and 0.5, n_trials=1)
    >>> finished_candidates(study)
    {'block-01'}
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from study.storage._optuna_compat import enqueued_params, is_enqueued
from study.storage._schema import CLAIM, DUPLICATE_OF, PARAM, REPEAT_VALUES

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)



def trial_candidate(trial: FrozenTrial) -> str | None:
    """The candidate a trial trains: its parameter, or the grid's claim before it is suggested.

    Example:
        >>> trial_candidate(optuna.trial.create_trial(params={PARAM: "a"}, distributions={
        ...     PARAM: optuna.distributions.CategoricalDistribution(["a"])}, value=1.0))
        'a'
    """
    if PARAM in trial.params:
        return trial.params[PARAM]
    if CLAIM in trial.system_attrs:
        return trial.system_attrs[CLAIM]
    return enqueued_params(trial).get(PARAM)  # enqueued with a fixed candidate



def knows_candidate(trial: FrozenTrial) -> bool:
    """Whether a trial knows its candidate (a claim, possibly None, or a fixed parameter)."""
    return PARAM in trial.params or CLAIM in trial.system_attrs or is_enqueued(trial)



def finished_candidates(study: optuna.Study) -> set[str]:
    """Candidates that have a COMPLETE or PRUNED trial."""
    return {trial_candidate(t) for t in study.get_trials(deepcopy=False, states=FINISHED)} - {None}



def running_candidates(study: optuna.Study) -> set[str]:
    """Candidates whose trial is RUNNING (here or in another worker)."""
    states = (TrialState.RUNNING,)
    return {trial_candidate(t) for t in study.get_trials(deepcopy=False, states=states)} - {None}



def score(trial: FrozenTrial) -> float | None:
    """A trial's validation accuracy: its value; for a pruned trial the mean of the repeats it
    finished, or (one repeat, pruned by epoch) the last value it reported.

    Example:
        >>> score(optuna.trial.create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.4, 2: 0.5}))
        0.5
    """
    if trial.state == TrialState.COMPLETE:
        return float(trial.value)
    if trial.user_attrs.get(REPEAT_VALUES) and len(trial.user_attrs[REPEAT_VALUES]) > 1:
        return float(np.mean(trial.user_attrs[REPEAT_VALUES]))
    steps = trial.intermediate_values
    return float(steps[max(steps)]) if steps else None



def rank_key(trial: FrozenTrial) -> tuple[int, float]:
    """Sort key, best first: complete trials above pruned ones, each by score (higher first)."""
    value = score(trial)
    return (0 if trial.state == TrialState.COMPLETE else 1, float("inf") if value is None else -value)



def finished_trials(trials: list[FrozenTrial]) -> dict[str, FrozenTrial]:
    """The finished trial of each candidate (COMPLETE preferred over PRUNED), TPE's repeats left out.

    Example:
        >>> finished_trials([])
        {}
    """
    chosen: dict[str, FrozenTrial] = {}
    for trial in trials:
        name = trial.params.get(PARAM)
        if name is None or trial.state not in FINISHED or DUPLICATE_OF in trial.user_attrs:
            continue
        if name not in chosen or chosen[name].state != TrialState.COMPLETE:
            chosen[name] = trial
    return chosen



def best_candidate(trials: list[FrozenTrial]) -> str | None:
    """The candidate of the best COMPLETE trial (None if none is complete)."""
    complete = [t for t in finished_trials(trials).values() if t.state == TrialState.COMPLETE]
    return max(complete, key=lambda t: t.value).params[PARAM] if complete else None
