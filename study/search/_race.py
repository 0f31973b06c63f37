"""The race: stop a candidate once the paired test shows it worse than the best, candidate by candidate
(`RacePruner`) or in rounds (`stopped_in_round`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from study.stats import p_value_worse, pooled_noise


class RacePruner(optuna.pruners.BasePruner):
    """Stops a candidate once it is shown worse than the best finished candidate, repeat by repeat.

    The trial's intermediate values are its repeat values (`step` = repeat index). After each
    repeat but the last they are compared with those of the best COMPLETE trial (highest value
    among trials that reported intermediate values) on the steps both have, by `p_value_worse`
    with the noise pooled over the COMPLETE trials (`pooled_noise`; before two exist, the pair's
    own t-test from two common repeats on). The trial is pruned when p < alpha / (L m), with L =
    repeats - 1 looks and m COMPLETE trials the best was chosen from: Bonferroni over every
    comparison that could stop it, so a truly best candidate is stopped with probability at most
    `alpha`. Nothing is kept in the pruner: all comes from the storage, so a resumed study and
    parallel workers decide the same way.

    Note:
        The bound assumes normal differences and about the same repeat noise for every candidate
        (the pooled test); Bonferroni makes it conservative. In benchmarks/race_simulation.py (12
        candidates, alpha=0.05) the race saves 23% of the repeats at K=3 and 33% at K=5 when the
        candidates differ, about 2% when every gap is under the noise, and stops each of 12 equal
        candidates about 3% of the time.
        Only COMPLETE trials are references: a RUNNING or PRUNED one is never the best. The
        study must maximize.

    Args:
        alpha: the chance of stopping a truly best candidate, at most (0 < alpha < 1).
        repeats: repeats per candidate (`--search-repeats`): the race looks repeats - 1 times.
        min_repeats: never prune before the trial shares this many repeats with the best.

    Example:
        >>> study = optuna.create_study(direction="maximize", pruner=RacePruner(alpha=0.05, repeats=3))
        >>> for values in ([0.81, 0.83, 0.82], [0.79, 0.80, 0.81], [0.80, 0.83, 0.81]):
        ...     study.add_trial(optuna.trial.create_trial(
        ...         value=sum(values) / 3, intermediate_values=dict(enumerate(values))))
        >>> trial = study.ask()
        >>> trial.report(0.79, step=0)
        >>> trial.should_prune()  # 0.02 worse, within the noise
        False
        >>> trial.report(0.66, step=1)
        >>> trial.should_prune()
        True
    """

    def __init__(self, alpha: float = 0.05, repeats: int = 3, min_repeats: int = 1):
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1 (exclusive). Received: alpha={alpha}")
        for name, value in (("repeats", repeats), ("min_repeats", min_repeats)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value}")
        self.alpha = alpha
        self.repeats = repeats
        self.min_repeats = min_repeats

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        comparison = self.compare_with_best(study, trial)
        return comparison is not None and comparison[1] < self.level(study)

    def level(self, study: optuna.Study) -> float:
        """The level one comparison must reach now: alpha / (looks x COMPLETE trials)."""
        return self.alpha / (max(1, self.repeats - 1) * max(1, len(_complete_with_repeats(study))))

    def compare_with_best(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> tuple[FrozenTrial, float] | None:
        """The best COMPLETE trial and the p-value that `trial` is worse, or None if not testable yet.

        None before `min_repeats` common repeats, without a finished reference, or when
        `p_value_worse` cannot test. For the prune reason: "worse than trial 3 (p=0.0012)".
        """
        if study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise ValueError(
                f"RacePruner needs a study that maximizes. Received: direction={study.direction.name}"
            )
        complete = _complete_with_repeats(study)
        if not complete:
            return None
        best = max(complete, key=lambda t: t.value)
        steps = sorted(set(trial.intermediate_values) & set(best.intermediate_values))
        if len(steps) < self.min_repeats:
            return None
        noise = pooled_noise({t.number: _repeat_values(t) for t in complete})
        p = p_value_worse(
            [trial.intermediate_values[step] for step in steps],
            [best.intermediate_values[step] for step in steps],
            noise=noise,
        )
        return None if p is None else (best, p)



def _complete_with_repeats(study: optuna.Study) -> list[FrozenTrial]:
    return [
        trial for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if trial.intermediate_values
    ]



def _repeat_values(trial: FrozenTrial) -> list[float]:
    """A trial's intermediate values in step (repeat) order."""
    return [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]


def stopped_in_round(values: Mapping[str, Sequence[float]], name: str, repeats: int,
                     alpha: float) -> tuple[str, float, float] | None:
    """The race in rounds: (best, p, level) when candidate `name` is shown worse than the best, else None.

    `values` maps every candidate to its repeat values so far (repeat order). Called when `name`
    has r values and every candidate still racing has at least r (round r-1 is complete): the
    peers are the candidates with at least r values (the survivors of round r-1, whatever they
    are doing now, so every process decides alike), compared on their first r values; the best
    is the highest mean among them; the noise is pooled over them (`pooled_noise`: none after
    round 0, one value each, so the first look is after round 1, tidymodels' smallest burn-in).
    It stops `name` when p < alpha / (L m), L = repeats - 2 looks (after rounds 1 .. K-2: after
    the last round there is nothing left to save) and m peers: Bonferroni, so a truly best
    candidate is stopped with probability at most `alpha`.

    Example:
        >>> values = {"a": [0.80, 0.82], "b": [0.81, 0.83], "c": [0.60, 0.61], "d": [0.79, 0.84]}
        >>> stopped_in_round(values, "c", repeats=3, alpha=0.05)[0]
        'b'
        >>> stopped_in_round(values, "a", repeats=3, alpha=0.05) is None
        True
    """
    r = len(values[name])
    peers = {peer: list(v[:r]) for peer, v in values.items() if len(v) >= r}
    if r == 0 or r >= repeats or len(peers) < 2:
        return None
    best = max(peers, key=lambda peer: float(np.mean(peers[peer])))
    if best == name:
        return None
    p = p_value_worse(peers[name], peers[best], noise=pooled_noise(peers))
    level = alpha / (max(1, repeats - 2) * len(peers))
    return (best, p, level) if p is not None and p < level else None
