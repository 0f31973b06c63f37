"""The statistics of repeated, paired selection: intervals, paired tests, the pooled repeat noise and the
tied set. Plain NumPy and SciPy: nothing here knows Optuna, Keras or the storage.

Example:
    >>> tied_with_winner({"a": [0.80, 0.84, 0.82], "b": [0.81, 0.83, 0.83], "c": [0.70, 0.74]}, None, 0.05)
    ['b', 'a']
"""

from study.stats._intervals import Summary, summarize
from study.stats._noise import pooled_noise
from study.stats._tests import EQUAL_DIFFERENCES, TEST_WORDS, p_value_worse, paired_p_value, without_float32_noise
from study.stats._tied import select_from_tied, tied_with_winner

__all__ = ["EQUAL_DIFFERENCES", "TEST_WORDS", "Summary", "p_value_worse", "paired_p_value", "pooled_noise", "summarize",
           "select_from_tied", "tied_with_winner", "without_float32_noise"]
