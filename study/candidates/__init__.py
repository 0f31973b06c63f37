"""The candidates: a backbone's layers as records, the strategy registry that turns them into ordered
candidates (name, layer names), and the layer ranking a top-k study tunes.

The registry and the ranking are plain Python; the functions that walk a Keras model (`layer_summary`,
`make_candidates`, ...) load on first use, so the report reads labels without loading Keras.

Example:
    >>> column_label("top5"), [c.name for c in STRATEGIES["head"].generate([], None)]
    ('BWT5', ['head'])
"""


from study.candidates._greedy import GreedyState, greedy_slots, greedy_state, slot_names
from study.candidates._ranking import layer_ranking, rank_layers
from study.candidates._strategies import (
    COLUMNS,
    STRATEGIES,
    Candidate,
    Strategy,
    block_groups,
    column_label,
    column_position,
    random_candidates,
    top_k_candidate,
    weighted_names,
    windows,
)
from study.config import study_key
from study.runtime import lazy_exports

_KERAS = ("all_layers", "check_delimiters", "check_strategies", "layer_summary", "make_candidates", "weighted_layers")


__getattr__ = lazy_exports("study.candidates", {"study.candidates._layers": _KERAS})


__all__ = [
    "COLUMNS", "STRATEGIES", "Candidate", "GreedyState", "Strategy", "block_groups", "column_label", "column_position",
    "greedy_slots", "greedy_state", "layer_ranking", "slot_names",
    "random_candidates", "rank_layers", "study_key", "top_k_candidate", "weighted_names", "windows", *_KERAS,
]
