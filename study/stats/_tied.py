"""The tied set: the winner and every candidate not significantly worse than it."""

from __future__ import annotations

import numpy as np

from study.stats._checks import finite_values
from study.stats._noise import pooled_noise
from study.stats._tests import p_value_worse


def tied_with_winner(results: dict[str, list[float]], n_images: int | None, alpha: float) -> list[str]:
    """The winner, then every candidate not significantly worse than it.

    `results` maps each candidate to its repeat values in repeat order; a raced candidate has
    fewer. Means over different repeats are not comparable (some draws are easier), so the winner
    is the best mean among the candidates with the most repeats (ties keep the dict order). Each
    other candidate is compared with it by `p_value_worse` (the noise pooled over the candidates
    with every repeat, `pooled_noise`, or over every candidate on the repeats all have, whichever
    has more degrees of freedom: after the race in rounds stopped some candidates after two
    repeats, those two repeats of every candidate say more about the noise than the few candidates
    that ran them all; with one repeat the binomial test on `n_images` images) at
    level alpha / (candidates - 1), Bonferroni over the comparisons: this is Hsu's multiple
    comparisons with the best, so the set holds the truly best candidate with probability at
    least 1 - alpha, although the winner is the best of them (its values are lucky ones). The
    others follow by their mean gap to the winner on the repeats they share, best first.

    Note:
        In benchmarks/race_simulation.py (12 candidates, alpha=0.05, noise sd 0.02) the set holds
        the true best in 98-100% of the studies with K=3 and K=5, raced or not, when the candidates
        differ or are close; it holds about 4 of 12 (K=3) when they differ and nearly all when
        every gap is under a standard error: the data cannot tell those apart.

    Example:
        >>> results = {"a": [0.80, 0.84, 0.82], "b": [0.81, 0.83, 0.83], "c": [0.70, 0.74]}
        >>> tied_with_winner(results, n_images=None, alpha=0.05)
        ['b', 'a']
        >>> tied_with_winner({"a": [0.80], "b": [0.78], "c": [0.60]}, n_images=150, alpha=0.05)
        ['a', 'b']
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1 (exclusive). Received: alpha={alpha}")
    if not results or any(len(values) == 0 for values in results.values()):
        raise ValueError(
            f"results must map each candidate to at least one value. Received: results={results}"
        )
    for name, values in results.items():
        finite_values(values, f"results[{name!r}]")
    noise = _most_degrees_of_freedom(results)
    if n_images is None and noise is None and min(map(len, results.values())) == 1:
        raise ValueError(
            "n_images (validation images per repeat) is needed to compare a candidate that has a "
            "single repeat. Received: n_images=None"
        )
    most = max(map(len, results.values()))
    finished = [name for name in results if len(results[name]) == most]
    winner = max(finished, key=lambda name: np.mean(results[name]))
    winning = results[winner]

    def gap(name: str) -> float:
        shared = len(results[name])  # the winner has the most repeats
        return float(np.mean(results[name]) - np.mean(winning[:shared]))

    others = [name for name in results if name != winner]
    level = alpha / max(1, len(others))
    tied = []
    for name in others:
        p = p_value_worse(results[name], winning, n_images, noise)
        if p is None or p >= level:
            tied.append(name)
    return [winner, *sorted(tied, key=gap, reverse=True)]


def _most_degrees_of_freedom(results: dict[str, list[float]]) -> tuple[float, int] | None:
    """`pooled_noise` of the candidates with every repeat, or of every candidate on the repeats all
    of them have, whichever has more degrees of freedom (the choice depends on the design only).

    Example:
        >>> _most_degrees_of_freedom({"a": [0.80, 0.84, 0.82], "b": [0.70, 0.75, 0.71], "c": [0.5, 0.52],
        ...                           "d": [0.6, 0.63]})[1]
        3
    """
    common = min(map(len, results.values()))
    estimates = [pooled_noise(results), pooled_noise({name: values[:common] for name, values in results.items()})]
    return max((e for e in estimates if e is not None), key=lambda e: e[1], default=None)


def select_from_tied(tied: list[str], params: dict[str, int], rule: str = "best") -> str:
    """The candidate the final stage retrains, chosen inside the tied set `tied` (winner first).

    `best`: the winner (the best mean). `simplest`: the member of `tied` with the fewest trainable
    parameters (`params`), the best mean first among equal counts: the one-standard-error rule's
    spirit, never a candidate outside the tied set, however cheap. A tied candidate without a
    parameter count is never the simplest.

    Example:
        >>> select_from_tied(["b", "a", "c"], {"a": 10, "b": 50, "c": 10, "d": 1}, "simplest")
        'a'
        >>> select_from_tied(["b", "a"], {"a": 10, "b": 50}, "best")
        'b'
    """
    if not tied:
        raise ValueError(f"tied must hold at least the winner. Received: tied={tied!r}")
    if rule == "best":
        return tied[0]
    if rule != "simplest":
        raise ValueError(f"rule must be 'best' or 'simplest'. Received: rule={rule!r}")
    counted = [name for name in tied if params.get(name) is not None]
    return min(counted, key=lambda name: params[name]) if counted else tied[0]
