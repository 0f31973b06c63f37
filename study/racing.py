"""The statistics of repeated, paired selection (`--search-repeats K`): intervals, tests, racing.

Every candidate is trained K times; repeat r of every candidate uses the same stratified draw of
search-train/search-val and the same seed, so two candidates' accuracies on repeat r are a pair and
their difference is free of the draw's effect (some draws are simply easier). All comparisons here
are paired on the repeats both candidates have. Higher values are better (accuracies).

- `summarize`: mean, standard error and 95% interval of one candidate's repeat values;
- `p_value_worse`: the one-sided p-value that a candidate is worse than another;
- `tied_with_winner`: the winner and the candidates not significantly worse than it;
- `RacePruner`: stops a candidate once it is shown worse than the best finished one;
- `simulate_race`, `race_rates`: real Optuna studies on simulated accuracies with known true means,
  to measure how often racing keeps the true best and how many repeats it saves.

The paired test is Student's t-test, not Wilcoxon's signed-rank test (what Optuna's
`WilcoxonPruner` uses): with n paired differences the smallest one-sided exact Wilcoxon p-value is
1/2^n (0.125 for n=3, 0.0625 for n=4), so at alpha=0.05 it cannot stop anything before 5 repeats:
with K <= 5 a race, whose last look is before the last repeat, would never stop a candidate.
A repeat's accuracy is an average over many images, so differences are close to normal: the
t-test's assumption, with independent repeats (each its own draw and seed). It is then exact for
any n >= 2, and it uses how much worse, not only whether. Wilcoxon's robustness to outliers pays
with many instances (Optuna's case: problem instances, folds), not with three repeats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import optuna
import scipy.stats
from optuna.trial import FrozenTrial, TrialState

from study.records import INTERVAL_95, REPEAT_VALUES, STANDARD_ERROR

# Differences closer than this are equal: accuracies are fractions k/n (two different ones differ by
# at least 1/n, 1e-5 for 100,000 images), but Keras computes them in float32, so 0.8 - 0.78 and
# 0.7 - 0.68 can differ by a few 1e-8, which would make the t statistic huge and fake significance.
EQUAL_DIFFERENCES = 1e-6


def summarize(values: Sequence[float], n_images: int | None = None) -> dict:
    """Mean, standard error and 95% interval of one candidate's repeat values (accuracies).

    With K >= 2 repeats: the sample standard error (ddof=1) and Student's t interval with K - 1
    degrees of freedom. With one repeat there is no spread to measure, so the standard error is
    the binomial one of an accuracy measured on `n_images` images, sqrt(p (1 - p) / n), and the
    interval is the normal one, clipped to [0, 1]; it leaves out the seed's and the draw's effect,
    so it is too narrow, and it is empty (zero width) at p = 0 or 1.

    Example:
        >>> summary = summarize([0.80, 0.82, 0.84])
        >>> round(summary["mean"], 4), round(summary["standard_error"], 4)
        (0.82, 0.0115)
        >>> [round(bound, 4) for bound in summary["interval_95"]]
        [0.7703, 0.8697]
        >>> [round(bound, 4) for bound in summarize([0.8], n_images=100)["interval_95"]]
        [0.7216, 0.8784]
    """
    values = _finite_values(values, "values")
    if not values:
        raise ValueError(f"values must hold at least one repeat value. Received: values={values}")
    if len(values) == 1:
        _check_n_images(n_images, needed_because="a single repeat has no spread")
        (accuracy,) = values
        _check_accuracy(accuracy)
        standard_error = math.sqrt(accuracy * (1 - accuracy) / n_images)
        half_width = scipy.stats.norm.ppf(0.975) * standard_error
        low, high = max(0.0, accuracy - half_width), min(1.0, accuracy + half_width)
    else:
        accuracy = float(np.mean(values))
        standard_error = float(np.std(values, ddof=1) / math.sqrt(len(values)))
        half_width = scipy.stats.t.ppf(0.975, len(values) - 1) * standard_error
        low, high = accuracy - half_width, accuracy + half_width
    return {"mean": accuracy, STANDARD_ERROR: standard_error, INTERVAL_95: [float(low), float(high)]}


def p_value_worse(
    candidate: Sequence[float], best: Sequence[float], n_images: int | None = None
) -> float | None:
    """One-sided p-value that `candidate` is worse than `best`, on the repeats both have.

    Both lists are in repeat order, so the first n = min(len) entries are paired. Small means
    "worse"; None means it cannot be tested, and callers treat that as not shown worse.

    - n >= 2: paired Student t-test on the differences (see the module docstring for why not
      Wilcoxon). When the differences are all equal the t statistic is undefined (zero spread),
      which happens with accuracies on few images (every difference one image): the sign test
      is used then, p = 0.5^n if every repeat is worse (0.25 at n=2: no proof), 1 if every
      repeat is better, and None if every difference is zero (the two cannot be told apart).
    - n == 1 with `n_images`: two-proportion z-test (pooled) on the two accuracies. It ignores
      the positive correlation of two accuracies measured on the same images, so it overstates
      the difference's variance: conservative, i.e. more ties. It cannot see the seed's effect
      (one repeat), which works the other way.
    - n == 1 without `n_images`, no common repeat, or a value that is not finite: None.

    Example:
        >>> round(p_value_worse([0.70, 0.72, 0.71], [0.80, 0.81, 0.82]), 4)
        0.0017
        >>> round(p_value_worse([0.79, 0.83], [0.80, 0.82]), 4)
        0.5
        >>> p_value_worse([0.7, 0.8], [0.72, 0.82])  # equal differences: sign test, 0.5 ** 2
        0.25
        >>> round(p_value_worse([0.75], [0.80], n_images=200), 4)
        0.1156
    """
    n = min(len(candidate), len(best))
    if n_images is not None:
        _check_n_images(n_images)
    pairs = np.asarray([candidate[:n], best[:n]], dtype=float)
    if n == 0 or not np.all(np.isfinite(pairs)):
        return None
    if n == 1:
        return None if n_images is None else _two_proportion_p_value(*pairs[:, 0], n_images)
    differences = pairs[0] - pairs[1]
    if np.ptp(differences) <= EQUAL_DIFFERENCES:
        if abs(differences[0]) <= EQUAL_DIFFERENCES:
            return None
        return 0.5**n if differences[0] < 0 else 1.0
    t = differences.mean() / (differences.std(ddof=1) / math.sqrt(n))
    return float(scipy.stats.t.cdf(t, n - 1))


def tied_with_winner(results: dict[str, list[float]], n_images: int | None, alpha: float) -> list[str]:
    """The winner, then every candidate not significantly worse than it (`p_value_worse` >= alpha).

    `results` maps each candidate to its repeat values in repeat order; a raced candidate has
    fewer. Means over different repeats are not comparable (some draws are easier), so the winner
    is the best mean among the candidates with the most repeats (ties keep the dict order). The
    others follow by their mean gap to the winner on the repeats they share, best first (for
    candidates with every repeat, the order of their means). `n_images` (validation images per
    repeat) is needed when a candidate has a single repeat: the test is then the binomial one.

    Note:
        `alpha` is per comparison: not adjusted for the number of candidates, nor for the winner
        being the best of them (its values are lucky ones). So a candidate as good as the winner
        is left out more often than `alpha`. In benchmarks/race_simulation.py (12 candidates,
        alpha=0.05, not raced), of 12 equal candidates the set holds about 9.9 (K=3) and 9.5
        (K=5); with true accuracies spread over 0.80-0.82 (every gap under a standard error) it
        holds the true best about 89% (K=3) and 93% (K=5) of the time. Passing
        alpha / (candidates - 1) (Bonferroni) keeps that >= 1 - alpha in every configuration, at
        the price of tied sets of nearly everything with K=3.

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
        _finite_values(values, f"results[{name!r}]")
    if n_images is None and min(map(len, results.values())) == 1:
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
    tied = []
    for name in others:
        p = p_value_worse(results[name], winning, n_images)
        if p is None or p >= alpha:
            tied.append(name)
    return [winner, *sorted(tied, key=gap, reverse=True)]


class RacePruner(optuna.pruners.BasePruner):
    """Stops a candidate once it is shown worse than the best finished candidate, repeat by repeat.

    The trial's intermediate values are its repeat values (`step` = repeat index). They are
    compared with those of the best COMPLETE trial (highest value among trials that reported
    intermediate values) on the steps both have, by `p_value_worse`; the trial is pruned when
    p < `alpha`. Nothing is kept in the pruner: all comes from the storage, so a resumed study and
    parallel workers decide the same way.

    Note:
        The test is the paired one-sided t-test (exact under normal differences; Wilcoxon's
        signed-rank test cannot reach p < 0.05 with fewer than 5 repeats, see the module
        docstring), or the sign test when every difference is the same. The race tests after
        every repeat and against the best of several candidates, so the chance of stopping a
        candidate that is as good as the best is above `alpha` (several looks, and the best's
        own values are lucky ones): with 12 equal candidates it stops about 10% of them with
        K=3 and 20% with K=5 at alpha=0.05 (benchmarks/race_simulation.py). Only COMPLETE
        trials are references: a RUNNING or PRUNED one is never the best. The study must
        maximize.

    Args:
        alpha: prune when the p-value is below this (0 < alpha < 1).
        min_repeats: never prune before the trial shares this many repeats with the best (>= 2:
            the t-test needs two differences, and one repeat says nothing of the seed's noise).

    Example:
        >>> study = optuna.create_study(direction="maximize", pruner=RacePruner(alpha=0.05))
        >>> study.add_trial(optuna.trial.create_trial(
        ...     value=0.82, intermediate_values={0: 0.81, 1: 0.83, 2: 0.82}))
        >>> trial = study.ask()
        >>> trial.report(0.71, step=0)
        >>> trial.should_prune()  # one repeat: never
        False
        >>> trial.report(0.74, step=1)
        >>> trial.should_prune()
        True
    """

    def __init__(self, alpha: float = 0.05, min_repeats: int = 2):
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1 (exclusive). Received: alpha={alpha}")
        if isinstance(min_repeats, bool) or not isinstance(min_repeats, int) or min_repeats < 2:
            raise ValueError(
                f"min_repeats must be an integer of at least 2 (a paired t-test needs two "
                f"differences). Received: min_repeats={min_repeats}"
            )
        self.alpha = alpha
        self.min_repeats = min_repeats

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        comparison = self.compare_with_best(study, trial)
        return comparison is not None and comparison[1] < self.alpha

    def compare_with_best(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> tuple[FrozenTrial, float] | None:
        """The best COMPLETE trial and the p-value that `trial` is worse, or None if not testable yet.

        None before `min_repeats` common repeats, without a finished reference, or when
        `p_value_worse` cannot test. For the prune reason: "worse than trial 3 (p=0.012)".
        """
        if study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise ValueError(
                f"RacePruner needs a study that maximizes. Received: direction={study.direction.name}"
            )
        best = best_complete_trial(study)
        if best is None:
            return None
        steps = sorted(set(trial.intermediate_values) & set(best.intermediate_values))
        if len(steps) < self.min_repeats:
            return None
        p = p_value_worse(
            [trial.intermediate_values[step] for step in steps],
            [best.intermediate_values[step] for step in steps],
        )
        return None if p is None else (best, p)


def best_complete_trial(study: optuna.Study) -> FrozenTrial | None:
    """The COMPLETE trial with the highest value among those with intermediate values, or None.

    Example:
        >>> study = optuna.create_study(direction="maximize")
        >>> best_complete_trial(study) is None
        True
    """
    complete = [
        trial for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if trial.intermediate_values
    ]
    return max(complete, key=lambda trial: trial.value, default=None)


def simulate_race(
    true_means: Sequence[float],
    noise_sd: float,
    repeats: int,
    alpha: float,
    *,
    split_sd: float = 0.0,
    n_images: int | None = None,
    race: bool = True,
    min_repeats: int = 2,
    rng_seed: int = 0,
) -> dict:
    """One grid study on simulated accuracies: candidate i (named "c<i>") has true mean `true_means[i]`.

    A real Optuna study (in memory, `RacePruner`, or no pruner with `race=False`) asks the
    candidates in the given order, each for up to `repeats` repeats, as `--search-repeats` does.
    The value of candidate i on repeat r is true_means[i] + split[r] + noise[i, r], with split[r] ~
    N(0, split_sd) shared by all candidates (the repeat's draw of images, what pairing removes) and
    noise ~ N(0, noise_sd) of its own. All values are drawn up front, so the same `rng_seed` with
    and without racing gives the same accuracies: the two differ only by the racing.

    Returns `winner` and `tied` (`tied_with_winner` at `alpha`), `pruned` (grid order),
    `winner_is_best`, `best_in_tied` (every candidate with the highest true mean is tied),
    `best_pruned` (one of those was pruned), `repeats_used` and `repeats_without_racing`.

    Example:
        >>> result = simulate_race([0.80, 0.70, 0.795], noise_sd=0.01, repeats=3, alpha=0.05)
        >>> result["winner"], result["tied"], result["pruned"], result["repeats_used"]
        ('c0', ['c0', 'c2'], ['c1'], 8)
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1. Received: repeats={repeats}")
    if noise_sd < 0 or split_sd < 0:
        raise ValueError(
            f"noise_sd and split_sd must be >= 0. Received: noise_sd={noise_sd}, split_sd={split_sd}"
        )
    means = np.asarray(true_means, dtype=float)
    rng = np.random.default_rng(rng_seed)
    split_effects = rng.normal(0.0, split_sd, repeats)
    values = means[:, None] + split_effects[None, :] + rng.normal(0.0, noise_sd, (len(means), repeats))
    names = [f"c{i}" for i in range(len(means))]
    pruner = RacePruner(alpha, min_repeats) if race else optuna.pruners.NopPruner()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial otherwise
    try:
        study = optuna.create_study(direction="maximize", pruner=pruner)
        results, pruned = {}, []
        for name, candidate_values in zip(names, values):
            trial = study.ask()
            done = []
            for repeat, value in enumerate(candidate_values):
                trial.report(float(value), step=repeat)
                done.append(float(value))
                # After the last repeat a prune would save no training: the trial just completes.
                if repeat < repeats - 1 and trial.should_prune():
                    pruned.append(name)
                    break
            trial.set_user_attr(REPEAT_VALUES, done)
            if name in pruned:
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, float(np.mean(done)))
            results[name] = done
    finally:
        optuna.logging.set_verbosity(verbosity)
    tied = tied_with_winner(results, n_images, alpha)
    best = {name for name, mean in zip(names, means) if mean == means.max()}
    return {
        "winner": tied[0],
        "tied": tied,
        "pruned": pruned,
        "winner_is_best": tied[0] in best,
        "best_in_tied": best <= set(tied),
        "best_pruned": bool(best.intersection(pruned)),
        "repeats_used": sum(map(len, results.values())),
        "repeats_without_racing": len(names) * repeats,
    }


def race_rates(true_means: Sequence[float], studies: int, rng_seed: int = 0, **simulation) -> dict:
    """`simulate_race` over `studies` studies, each with its own draws and its own grid order.

    The order of the candidates is shuffled in every study so the figures do not hang on where
    the best one happens to sit in the grid (the first finished candidate is the first
    reference). `simulation` is passed to `simulate_race`. The same `rng_seed` gives the same
    orders and accuracies, so runs with and without racing are paired.

    Returns the rates (fractions of studies) `best_in_tied`, `winner_is_best` and `best_pruned`,
    `repeats_saved` (the fraction of all repeats not trained), and the means per study of
    `tied_size` (candidates in the tied set) and `pruned` (candidates pruned).

    Example:
        >>> rates = race_rates([0.70, 0.75, 0.80], studies=10, noise_sd=0.01, repeats=4, alpha=0.05)
        >>> rates["winner_is_best"], round(rates["repeats_saved"], 3), rates["pruned"]
        (1.0, 0.167, 1.2)
    """
    if studies < 1:
        raise ValueError(f"studies must be at least 1. Received: studies={studies}")
    rng = np.random.default_rng(rng_seed)
    runs = []
    for _ in range(studies):
        order = rng.permutation(len(true_means))
        seed = int(rng.integers(2**32))
        runs.append(simulate_race([true_means[i] for i in order], rng_seed=seed, **simulation))
    used = sum(run["repeats_used"] for run in runs)
    without = sum(run["repeats_without_racing"] for run in runs)
    return {
        "studies": studies,
        "best_in_tied": float(np.mean([run["best_in_tied"] for run in runs])),
        "winner_is_best": float(np.mean([run["winner_is_best"] for run in runs])),
        "best_pruned": float(np.mean([run["best_pruned"] for run in runs])),
        "repeats_saved": 1 - used / without,
        "tied_size": float(np.mean([len(run["tied"]) for run in runs])),
        "pruned": float(np.mean([len(run["pruned"]) for run in runs])),
    }


def _two_proportion_p_value(candidate: float, best: float, n_images: int) -> float | None:
    """One-sided pooled two-proportion z-test that `candidate` < `best`; None if both are 0 or 1."""
    _check_accuracy(candidate)
    _check_accuracy(best)
    pooled = (candidate + best) / 2
    standard_error = math.sqrt(pooled * (1 - pooled) * 2 / n_images)
    if standard_error == 0:
        return None
    return float(scipy.stats.norm.cdf((candidate - best) / standard_error))


def _finite_values(values: Sequence[float], name: str) -> list[float]:
    """`values` as floats, or ValueError naming `name` when one is not a finite number."""
    try:
        floats = [float(value) for value in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of numbers. Received: {name}={values!r}") from None
    if not all(math.isfinite(value) for value in floats):
        raise ValueError(f"{name} must be finite numbers. Received: {name}={values!r}")
    return floats


def _check_n_images(n_images: object, needed_because: str | None = None) -> None:
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        why = f"; needed: {needed_because}" if needed_because else ""
        raise ValueError(
            f"n_images must be a positive integer (validation images per repeat{why}). "
            f"Received: n_images={n_images!r}"
        )


def _check_accuracy(value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"a single repeat's value must be an accuracy in [0, 1]. Received: {value}")
