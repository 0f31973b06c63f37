"""The uncertainty of one candidate's selection accuracy: mean, standard error, 95% interval."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.stats

from study.stats._checks import check_accuracy, check_n_images, finite_values


class Summary(NamedTuple):
    """A candidate's mean selection accuracy, its standard error and 95% interval [low, high]."""

    mean: float
    standard_error: float
    interval_95: list[float]


def summarize(values: Sequence[float], n_images: int | None = None) -> Summary:
    """Mean, standard error and 95% interval of one candidate's repeat values (accuracies).

    With K >= 2 repeats: the sample standard error (ddof=1) and Student's t interval with K - 1
    degrees of freedom. With one repeat there is no spread to measure, so the standard error is
    the binomial one of an accuracy measured on `n_images` images, sqrt(p (1 - p) / n), and the
    interval is the normal one, clipped to [0, 1]; it leaves out the seed's and the draw's effect,
    so it is too narrow, and it is empty (zero width) at p = 0 or 1.

    Example:
        >>> summary = summarize([0.80, 0.82, 0.84])
        >>> round(summary.mean, 4), round(summary.standard_error, 4)
        (0.82, 0.0115)
        >>> [round(bound, 4) for bound in summary.interval_95]
        [0.7703, 0.8697]
        >>> [round(bound, 4) for bound in summarize([0.8], n_images=100).interval_95]
        [0.7216, 0.8784]
    """
    values = finite_values(values, "values")
    if not values:
        raise ValueError(f"values must hold at least one repeat value. Received: values={values}")
    if len(values) == 1:
        check_n_images(n_images, needed_because="a single repeat has no spread")
        (accuracy,) = values
        check_accuracy(accuracy)
        standard_error = math.sqrt(accuracy * (1 - accuracy) / n_images)
        low, high = scipy.stats.norm.interval(0.95, loc=accuracy, scale=standard_error) if standard_error else (accuracy,) * 2
        low, high = max(0.0, low), min(1.0, high)
    else:
        accuracy = float(np.mean(values))
        standard_error = float(scipy.stats.sem(values))
        low, high = (scipy.stats.t.interval(0.95, len(values) - 1, loc=accuracy, scale=standard_error) if standard_error
                     else (accuracy, accuracy))
    return Summary(accuracy, standard_error, [float(low), float(high)])
