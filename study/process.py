"""Process set-up shared by the command line and the worker processes: quiet libraries, exit codes,
the identity of this process (the owner of its trials), and the test points.

Example:
    >>> EXIT_BAD_INPUT, EXIT_WRITE_FAILED, EXIT_INTERRUPTED
    (2, 74, 130)
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import warnings

from study.errors import write_problem

EXIT_OK = 0
EXIT_BAD_INPUT = 2  # a StudyError: one line on stderr, nothing written
EXIT_WRITE_FAILED = 74  # a study.errors.WriteError (EX_IOERR of sysexits.h): a full disk midway; finished work kept
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT

# Tests reach moments no user can time (a process dying right after it created a trial, three
# commands opening one storage at once) through this one variable, read in `checkpoint` only:
# "NAME:kill" kills the process at the point NAME; "NAME:barrier=DIR,N" makes it wait there until
# N processes have arrived (each leaves a file in DIR).
TEST_POINT = "STUDY_TEST_POINT"


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


@contextlib.contextmanager
def interrupts_deferred():
    """A first Ctrl-C (SIGINT) arriving while the block runs takes effect when it ends, or at a
    safe point inside it (`raise_held_interrupt`), never in between; a second one takes effect at once.

    Python raises KeyboardInterrupt wherever the main thread happens to be. Inside a database call
    that can leave a half-read result open on the connection (SQLite then refuses every later
    write with "database is locked", so the trial could not even be marked FAIL); inside Keras's
    or TensorFlow's Python code it can break a device scope, be swallowed by an `isinstance`
    check, or, rarely, abort the process. Storage calls usually take milliseconds; training stops
    at the end of the current batch. A call that hangs (a busy SQLite file, a stalled network
    database) is cut short by a second Ctrl-C. The block just runs, holding nothing back, outside
    the main thread (Python delivers signals to the main thread only), inside another deferred
    block, and where SIGINT's handler was not set from Python (it could not be put back). A
    held-back SIGINT goes to the handler that was in place (by default: KeyboardInterrupt).

    Example:
        >>> try:
        ...     with interrupts_deferred():
        ...         os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C here
        ...         print("the block goes on")
        ... except KeyboardInterrupt:
        ...     print("then the interrupt")
        the block goes on
        then the interrupt
    """
    global _held
    in_main_thread = threading.current_thread() is threading.main_thread()
    if not in_main_thread or _held is not None or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    held = _held = _HeldInterrupt(previous=signal.getsignal(signal.SIGINT))
    signal.signal(signal.SIGINT, held.receive)
    try:
        yield
    finally:
        _held = None
        if signal.getsignal(signal.SIGINT) == held.receive:
            signal.signal(signal.SIGINT, held.previous)
            held.deliver()


def raise_held_interrupt() -> None:
    """A safe point inside an `interrupts_deferred` block: a Ctrl-C held back so far takes effect
    here (also from a worker thread, such as Keras's callback pool, where KeyboardInterrupt is
    raised for the caller to pass on).

    Example:
        >>> with interrupts_deferred():
        ...     raise_held_interrupt()  # nothing pressed: returns
    """
    held = _held
    if held is not None and (callable(held.previous) or threading.current_thread() is threading.main_thread()):
        held.deliver()  # a Python handler can be called from any thread; SIG_DFL is restored by the block


class _HeldInterrupt:
    """The Ctrl-C state of the running `interrupts_deferred` block."""

    def __init__(self, previous):
        self.previous = previous  # the SIGINT handler in place before the block
        self.pressed = False

    def receive(self, signum, frame) -> None:
        if self.pressed:  # pressed again: the user wants out now
            signal.signal(signal.SIGINT, self.previous)
            self.deliver()
        self.pressed = True  # not the frame: it would keep alive what the call was reading

    def deliver(self) -> None:
        """Do what the previous handler does with a SIGINT, once, if one was held back."""
        if not self.pressed:
            return
        self.pressed = False
        if callable(self.previous):
            self.previous(signal.SIGINT, inspect.currentframe())
        elif self.previous == signal.SIG_DFL:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.raise_signal(signal.SIGINT)


_held: _HeldInterrupt | None = None  # the running interrupts_deferred block of the main thread


def this_process() -> dict:
    """The owner record of the current process: host, pid, boot id and start time.

    Example:
        >>> this_process()["pid"] == os.getpid()
        True
    """
    return {"host": socket.gethostname(), "pid": os.getpid(), "boot": boot_id(), "started": start_ticks(os.getpid())}


def boot_id() -> str | None:
    """This boot of the machine (Linux), None if unknown: a reboot kills every process."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            return file.read().strip()
    except OSError:
        return None


def start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), 'zombie', or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return "zombie" if fields[0] in ("Z", "X") else fields[19]


def checkpoint(name: str) -> None:
    """A moment a test may stop at (see TEST_POINT); does nothing unless the variable names it.

    Example:
        >>> checkpoint("trial-created")  # no STUDY_TEST_POINT set: returns at once
    """
    point, _, action = os.environ.get(TEST_POINT, "").partition(":")
    if point != name:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("barrier="):
        folder, _, count = action.removeprefix("barrier=").rpartition(",")
        open(os.path.join(folder, f"{os.getpid()}.arrived"), "w").close()
        deadline = time.monotonic() + 300
        while len([f for f in os.listdir(folder) if f.endswith(".arrived")]) < int(count) and time.monotonic() < deadline:
            time.sleep(0.01)
