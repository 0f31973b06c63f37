"""The statistics of repeated, paired selection (`--search-repeats K`): intervals, tests, racing.

Every candidate is trained K times; repeat r of every candidate uses the same stratified draw of
search-train/search-val and the same seed, so two candidates' accuracies on repeat r are a pair and
their difference is free of the draw's effect (some draws are simply easier). All comparisons here
are paired on the repeats both candidates have. Higher values are better (accuracies).

- `p_value_worse`: the one-sided p-value that a candidate is worse than another (here);
- `paired_p_value`: the two-sided p-value of two final stages paired on their seeds (here);
- `summarize`: mean, standard error and 95% interval of one candidate's repeat values;
- `pooled_noise`: the repeat noise's variance, pooled over the candidates (two-way ANOVA error);
- `tied_with_winner`: the winner and the candidates not significantly worse than it;
- the race that stops candidates early is `study.search.RacePruner`, built on these.

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
from collections.abc import Sequence

import numpy as np
import scipy.stats

from study.stats._checks import check_accuracy, check_n_images

# How the race and the tied set test, in words (prune reasons, the report, the dashboard note).
TEST_WORDS = "one-sided paired t-test, repeat noise pooled over the candidates, Bonferroni over the comparisons"

# Differences closer than this are equal: accuracies are fractions k/n (two different ones differ by
# at least 1/n, 1e-5 for 100,000 images), but Keras computes them in float32, so 0.8 - 0.78 and
# 0.7 - 0.68 can differ by a few 1e-8, which would make the t statistic huge and fake significance.
EQUAL_DIFFERENCES = 1e-6


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
        check_n_images(n_images)
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
        worse = n if differences[0] < 0 else 0  # the sign test: every repeat worse, or none
        return float(scipy.stats.binomtest(worse, n, 0.5, alternative="greater").pvalue)
    return float(scipy.stats.ttest_rel(pairs[0], pairs[1], alternative="less").pvalue)


def _two_proportion_p_value(candidate: float, best: float, n_images: int) -> float | None:
    """One-sided pooled two-proportion z-test that `candidate` < `best`; None if both are 0 or 1."""
    check_accuracy(candidate)
    check_accuracy(best)
    pooled = (candidate + best) / 2
    standard_error = math.sqrt(pooled * (1 - pooled) * 2 / n_images)
    if standard_error == 0:
        return None
    return float(scipy.stats.norm.cdf((candidate - best) / standard_error))




def without_float32_noise(accuracies: Sequence[float]) -> list[float]:
    """Accuracies rounded to 6 decimals: Keras reports float32, whose rounding (1e-8) would make equal
    differences unequal, and a paired t-test on them absurdly significant (p ~ 1e-8 for two seeds
    that differ by the same k/n). An accuracy on n < 10^5 images needs no more than 6 decimals.

    Example:
        >>> import numpy as np
        >>> a, b = [float(np.float32(k / 18)) for k in (2, 3)], [float(np.float32(k / 18)) for k in (0, 1)]
        >>> a[0] - b[0] == a[1] - b[1], paired_p_value(a, b)  # equal differences: the sign test, 2 * 0.5 ** 2
        (False, 0.5)
    """
    return [round(float(value), 6) for value in accuracies]



def paired_p_value(values: Sequence[float], reference: Sequence[float]) -> float | None:
    """Two-sided p-value of the paired t-test that `values` and `reference` differ (paired by position).

    Twice the smaller of the two one-sided p-values of `p_value_worse` (its sign test
    when every difference is the same); None with fewer than 2 pairs or when every difference is 0.

    Example:
        >>> round(paired_p_value([0.80, 0.82, 0.81], [0.70, 0.71, 0.73]), 4)
        0.0082
    """
    if min(len(values), len(reference)) < 2:
        return None
    values, reference = without_float32_noise(values), without_float32_noise(reference)
    lower, higher = p_value_worse(values, reference), p_value_worse(reference, values)
    if lower is None or higher is None:
        return None
    return min(1.0, 2 * min(lower, higher))
