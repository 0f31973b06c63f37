"""The repeat noise of a study, pooled over its candidates (the error term of a two-way layout)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from study.stats._checks import finite_values
from study.stats._tests import EQUAL_DIFFERENCES


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
    table = np.array([finite_values(values, "results") for values in results.values() if len(values) == most])
    if most < 2 or len(table) < 2:
        return None
    residuals = table - table.mean(axis=1, keepdims=True) - table.mean(axis=0, keepdims=True) + table.mean()
    df = (len(table) - 1) * (most - 1)
    variance = float(np.sum(residuals**2) / df)
    return None if variance <= EQUAL_DIFFERENCES**2 else (variance, df)
