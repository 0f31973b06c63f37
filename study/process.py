"""Process set-up shared by the command line and the worker processes: quiet libraries, exit codes.

Example:
    >>> EXIT_BAD_INPUT, EXIT_INTERRUPTED
    (2, 130)
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings

EXIT_OK = 0
EXIT_BAD_INPUT = 2  # a StudyError: one line on stderr, nothing written
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


# What TensorFlow's C++ side prints while it loads, whatever TF_CPP_MIN_LOG_LEVEL says: its absl
# logging is not initialised yet, so INFO lines (oneDNN's port.cc, cudart_stub.cc) go to stderr.
# Listing the devices on a machine without a GPU driver logs an ERROR about cuInit that says only that.
START_UP_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called|[IW]\d{4} |E\d{4} .*failed call to cuInit"
)


def quiet_tensorflow() -> None:
    """TensorFlow's C++ INFO and WARNING lines off (errors stay); must run before TensorFlow is
    imported to take effect. `TF_ENABLE_ONEDNN_OPTS` is left alone: it changes the numerics."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_tensorflow() -> None:
    """Import TensorFlow quietly: its start-up lines filtered out of stderr (anything else, and
    everything when the import fails, is passed on), then its Python loggers at ERROR.

    Example:
        >>> import_tensorflow()
        >>> import logging; logging.getLogger("tensorflow").level == logging.ERROR
        True
    """
    quiet_tensorflow()
    if "tensorflow" not in sys.modules:
        with _stderr_filtered(START_UP_NOISE):
            import tensorflow

            tensorflow.config.list_physical_devices()  # the device probe logs too; it does not initialise them
    quiet_tensorflow_loggers()


def quiet_tensorflow_loggers() -> None:
    """tf.function's retracing warnings and absl's Python warnings are about TensorFlow's
    internals, not the study: the `tensorflow` and `absl` loggers show errors only."""
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def _stderr_filtered(noise: re.Pattern):
    """While the block runs, file descriptor 2 (C++ writes there) goes to a temporary file; then
    its lines that do not match `noise` are written to stderr."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to filter
        yield
        return
    failed = True
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            kept = lines if failed else [line for line in lines if not noise.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def quiet_libraries() -> None:
    """Our own one line per trial replaces Optuna's log; experimental-API notices are not news.

    Example:
        >>> quiet_libraries()
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
