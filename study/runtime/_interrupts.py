"""Ctrl-C held back over calls it must not cut in half (storage calls, a training step).

Example:
    >>> with interrupts_deferred():
    ...     raise_held_interrupt()  # nothing pressed: returns
"""

from __future__ import annotations

import contextlib
import inspect
import os  # noqa: F401 (the doctest below sends itself a SIGINT)
import signal
import threading


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


