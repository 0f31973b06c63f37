"""Process set-up shared by the command line and the worker processes: quiet libraries, exit codes.

Example:
    >>> EXIT_BAD_INPUT, EXIT_INTERRUPTED
    (2, 130)
"""

from __future__ import annotations

import os
import warnings

EXIT_OK = 0
EXIT_BAD_INPUT = 2  # a StudyError: one line on stderr, nothing written
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


def quiet_tensorflow() -> None:
    """TensorFlow's C++ start-up lines off; must run before TensorFlow is imported to take effect."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def quiet_libraries() -> None:
    """Our own one line per trial replaces Optuna's log; experimental-API notices are not news.

    Example:
        >>> quiet_libraries()
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
