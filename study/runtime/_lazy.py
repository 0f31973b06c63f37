"""Names a package re-exports but loads on first use (Keras, plotly, TensorFlow stay unloaded until needed)."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, table: dict[str, tuple[str, ...]]) -> Callable[[str], object]:
    """A module `__getattr__` (PEP 562) that imports each name of `table` (module -> names) on first use.

    Example:
        >>> __getattr__ = lazy_exports("demo", {"json": ("dumps",)})
        >>> __getattr__("dumps")({"a": 1})
        '{"a": 1}'
    """

    def __getattr__(name: str):
        for module, names in table.items():
            if name in names:
                return getattr(importlib.import_module(module), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
