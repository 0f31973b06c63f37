"""Quiet libraries: TensorFlow's start-up lines and loggers, Optuna's per-trial log and its traceback
of a trial a Ctrl-C stopped (the tool prints its own one line per trial and one note)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
import warnings

from study.runtime._errors import write_problem


@contextlib.contextmanager
def stderr_filtered(noise: re.Pattern):
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
    """Our own one line per trial replaces Optuna's log; experimental-API notices are not news;
    a Ctrl-C or a failed write (a full disk) gets our one clean line, not Optuna's "Trial failed"
    warning with its traceback.

    Example:
        >>> quiet_libraries()
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for handler in logging.getLogger("optuna").handlers:  # records of optuna.* loggers end here
        if not any(isinstance(f, _NoInterruptionTraceback) for f in handler.filters):
            handler.addFilter(_NoInterruptionTraceback())
    if not getattr(threading.excepthook, "quiet_write_failures", False):
        threading.excepthook = _quiet_write_failures(threading.excepthook)


def _quiet_write_failures(hook):
    """`threading.excepthook` without the traceback of a thread a failed write ended (Optuna's
    heartbeat thread on a full disk): the main thread's next write fails too and says it in one line."""

    def quiet(args) -> None:
        if write_problem(args.exc_value) is None:
            hook(args)

    quiet.quiet_write_failures = True
    return quiet


class _NoInterruptionTraceback(logging.Filter):
    """Drops Optuna's two warnings about a trial a KeyboardInterrupt failed: "Trial N failed with
    parameters ... KeyboardInterrupt()" (with the traceback) and the "Trial N failed with value"
    after it, and its warning about a trial a failed write ended (the command's error line says
    it). Failures of other causes are kept."""

    def __init__(self):
        super().__init__()
        self._interrupted: str | None = None  # "Trial N " of the last interrupted trial

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and write_problem(record.exc_info[1]):
            return False
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            self._interrupted = " ".join(message.split()[:2]) + " "
            return False
        if self._interrupted and message.startswith(self._interrupted + "failed with value"):
            self._interrupted = None
            return False
        return True
