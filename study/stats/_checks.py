"""The argument checks the statistics share: finite numbers, an image count, an accuracy."""

from __future__ import annotations

import math
from collections.abc import Sequence


def finite_values(values: Sequence[float], name: str) -> list[float]:
    """`values` as floats, or ValueError naming `name` when one is not a finite number."""
    try:
        floats = [float(value) for value in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of numbers. Received: {name}={values!r}") from None
    if not all(math.isfinite(value) for value in floats):
        raise ValueError(f"{name} must be finite numbers. Received: {name}={values!r}")
    return floats



def check_n_images(n_images: object, needed_because: str | None = None) -> None:
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        why = f"; needed: {needed_because}" if needed_because else ""
        raise ValueError(
            f"n_images must be a positive integer (validation images per repeat{why}). "
            f"Received: n_images={n_images!r}"
        )



def check_accuracy(value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"a single repeat's value must be an accuracy in [0, 1]. Received: {value}")
