"""The statistics of repeated, paired selection (`--search-repeats K`): intervals, tests, racing.

Every candidate is trained K times; repeat r of every candidate uses the same stratified draw of
search-train/search-val and the same seed, so two candidates' accuracies on repeat r are a pair and
their difference is free of the draw's effect (some draws are simply easier). All comparisons here
are paired on the repeats both candidates have. Higher values are better (accuracies).

- `summarize`: mean, standard error and 95% interval of one candidate's repeat values;
- `pooled_noise`: the repeat noise's variance, pooled over the candidates (two-way ANOVA error);
- `p_value_worse`: the one-sided p-value that a candidate is worse than another;
- `tied_with_winner`: the winner and the candidates not significantly worse than it;
- `RacePruner`: stops a candidate once it is shown worse than the best finished one;
- `simulate_race`, `race_rates`: real Optuna studies on simulated accuracies with known true means,
  to measure how often racing keeps the true best and how many repeats it saves.

The test is Student's t on the paired differences, not Wilcoxon's signed-rank test (what Optuna's
`WilcoxonPruner` uses): with n paired differences the smallest one-sided exact Wilcoxon p-value is
1/2^n (0.125 for n=3, 0.0625 for n=4), so at alpha=0.05 it cannot stop anything before 5 repeats:
with K <= 5 a race, whose last look is before the last repeat, would never stop a candidate.
A repeat's accuracy is an average over many images, so differences are close to normal: the
t-test's assumption, with independent repeats (each its own draw and seed). Two candidates alone
estimate their differences' spread with n - 1 degrees of freedom (one at n = 2: t must pass 6.31);
but every candidate is trained on the same draws with the same seeds and epochs, so the noise of
a repeat is pooled over all candidates with every repeat, value = candidate + repeat + noise (a
two-way layout without replication), which gives many degrees of freedom and lets one repeat
already show a candidate clearly worse. The levels are Bonferroni-corrected over the comparisons
that could lose the best candidate (the tied set: Hsu's multiple comparisons with the best; the
race: every look against the best of the finished candidates), so `alpha` bounds the chance of
losing the truly best candidate, not a single comparison's error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import optuna
import scipy.stats
from optuna.trial import FrozenTrial, TrialState

from study.records import INTERVAL_95, REPEAT_VALUES, STANDARD_ERROR

# How the race and the tied set test, in words (prune reasons, the report, the dashboard note).
TEST_WORDS = "one-sided paired t-test, repeat noise pooled over the candidates, Bonferroni over the comparisons"

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


def pooled_noise(results: Mapping[object, Sequence[float]]) -> tuple[float, int] | None:
    """The variance of one repeat's own noise, pooled over candidates, and its degrees of freedom.

    The candidates with the most repeats form a balanced table, candidates x repeats. In the
    additive model value = candidate effect + repeat effect + noise (the repeat's draw of images
    and seed is shared by every candidate: what pairing removes), the residual mean square
    estimates the noise variance with (C - 1)(K - 1) degrees of freedom: the error term of a
    two-way analysis of variance without replication. None with fewer than two such candidates
    or two repeats, or when the residuals are all zero.

    Example:
        >>> variance, df = pooled_noise({"a": [0.80, 0.84, 0.82], "b": [0.70, 0.75, 0.71], "c": [0.5]})
        >>> round(variance, 6), df
        (5e-05, 2)
    """
    most = max((len(values) for values in results.values()), default=0)
    table = np.array([_finite_values(values, "results") for values in results.values() if len(values) == most])
    if most < 2 or len(table) < 2:
        return None
    residuals = table - table.mean(axis=1, keepdims=True) - table.mean(axis=0, keepdims=True) + table.mean()
    df = (len(table) - 1) * (most - 1)
    variance = float(np.sum(residuals**2) / df)
    return None if variance <= EQUAL_DIFFERENCES**2 else (variance, df)


def p_value_worse(
    candidate: Sequence[float],
    best: Sequence[float],
    n_images: int | None = None,
    noise: tuple[float, int] | None = None,
) -> float | None:
    """One-sided p-value that `candidate` is worse than `best`, on the repeats both have.

    Both lists are in repeat order, so the first n = min(len) entries are paired. Small means
    "worse"; None means it cannot be tested, and callers treat that as not shown worse.

    - `noise` (`pooled_noise` of the study's candidates: variance, degrees of freedom), n >= 1:
      the mean paired difference over its standard error sqrt(2 variance / n), against Student's
      t with the pooled degrees of freedom (Fisher's least significant difference in a two-way
      design). A pair's own differences estimate their spread with n - 1 degrees of freedom, one
      for n = 2, so a t-test on them alone needs t > 6.31 to stop anything; the candidates
      finished so far estimate the same noise with many more. It assumes every candidate's repeat
      noise has about the same variance (the same images, epochs and seeds for all).
    - n >= 2 without `noise`: paired Student t-test on the differences (see the module docstring for why not
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
        >>> round(p_value_worse([0.75], [0.80], noise=(0.0004, 20)), 4)  # noise sd 0.02, 20 df
        0.0462
    """
    n = min(len(candidate), len(best))
    if n_images is not None:
        _check_n_images(n_images)
    pairs = np.asarray([candidate[:n], best[:n]], dtype=float)
    if n == 0 or not np.all(np.isfinite(pairs)):
        return None
    if noise is not None:
        variance, df = noise
        t = (pairs[0] - pairs[1]).mean() / math.sqrt(2 * variance / n)
        return float(scipy.stats.t.cdf(t, df))
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
    """The winner, then every candidate not significantly worse than it.

    `results` maps each candidate to its repeat values in repeat order; a raced candidate has
    fewer. Means over different repeats are not comparable (some draws are easier), so the winner
    is the best mean among the candidates with the most repeats (ties keep the dict order). Each
    other candidate is compared with it by `p_value_worse` (the noise pooled over the candidates
    with every repeat, `pooled_noise`; with one repeat the binomial test on `n_images` images) at
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
        _finite_values(values, f"results[{name!r}]")
    noise = pooled_noise(results)
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


def best_complete_trial(study: optuna.Study) -> FrozenTrial | None:
    """The COMPLETE trial with the highest value among those with intermediate values, or None.

    Example:
        >>> study = optuna.create_study(direction="maximize")
        >>> best_complete_trial(study) is None
        True
    """
    return max(_complete_with_repeats(study), key=lambda trial: trial.value, default=None)


def _complete_with_repeats(study: optuna.Study) -> list[FrozenTrial]:
    return [
        trial for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if trial.intermediate_values
    ]


def _repeat_values(trial: FrozenTrial) -> list[float]:
    """A trial's intermediate values in step (repeat) order."""
    return [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]


def simulate_race(
    true_means: Sequence[float],
    noise_sd: float,
    repeats: int,
    alpha: float,
    *,
    split_sd: float = 0.0,
    n_images: int | None = None,
    race: bool = True,
    min_repeats: int = 1,
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
    pruner = RacePruner(alpha, repeats, min_repeats) if race else optuna.pruners.NopPruner()
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
        (1.0, 0.175, 1.2)
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
