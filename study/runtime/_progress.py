"""What a run shows while it works and when it ends, as Keras and Optuna users expect.

On a terminal, the running trial (or final-stage seed) has one live line, rewritten in place after
every epoch; when it ends, one line stays:

    trial 7/27 block-05 epoch 3/50 accuracy 0.7812 val_accuracy 0.8120 | 1m44s, study ETA 38m | best 0.8430 (#2)
    trial 7/27 complete (#6) block-05:block5_conv1..block5_conv3: val_accuracy 0.8120, 3m01s; best 0.8430 (#2); ...

Off a terminal (a log file, CI, a worker process) there is no live line and no carriage return: one
line per event (a trial starts, a trial ends, a seed ends). ETAs come from the trials (seeds) this
process finished so far, or from the running one's epochs before the first has finished.

This module holds the live line and the events of a fit (`study.training.EpochProgress` reports every
epoch here); the tasks that use it say what happens: `study.search.SearchProgress` (trials),
`study.final.FinalProgress` (seeds) and `study.cli` (studies, the summary).

Example:
    >>> duration(4.93), duration(104), duration(3725)
    ('4.9 s', '1m44s', '1h02m')
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import shutil
import sys

_task = None  # the SearchProgress or FinalProgress whose fit is running, if any
_live_width = 0  # characters of the live line now on the terminal


def live() -> bool:
    """Whether progress is a live line rewritten in place: stdout is a terminal, in the main process.

    Worker processes share their parent's terminal, so they print plain lines.
    """
    try:
        terminal = sys.stdout.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stdout
        return False
    return terminal and multiprocessing.parent_process() is None


def duration(seconds: float | None) -> str:
    """Seconds as a person reads them: '4.9 s', '1m44s', '1h02m' ('?' if unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def say(text: str) -> None:
    """Print one event line (after clearing the live line, if one is shown)."""
    _clear()
    print(text, flush=True)


def show(text: str) -> None:
    """The live line: on a terminal, rewritten in place; elsewhere nothing."""
    global _live_width
    if not live():
        return
    text = text[: max(20, shutil.get_terminal_size((120, 24)).columns - 1)]
    sys.stdout.write("\r" + text + " " * max(0, _live_width - len(text)))
    sys.stdout.flush()
    _live_width = len(text)


def _clear() -> None:
    global _live_width
    if _live_width:
        sys.stdout.write("\r" + " " * _live_width + "\r")
        sys.stdout.flush()
    _live_width = 0


def metrics_text(logs: dict) -> str:
    return " ".join(f"{key} {logs[key]:.4f}" for key in ("accuracy", "val_accuracy") if key in logs)


# --- events of a fit (study.training.EpochProgress) ------------------------------------------


def train_begin() -> None:
    """A fit starts (a trial's training or a seed of the final stage)."""
    if _task is not None:
        _task.train_begin()


def epoch_end(epoch: int, epochs: int, logs: dict) -> None:
    """Epoch `epoch` (1-based) of `epochs` ended with `logs` (Keras's): the live line."""
    if _task is None:  # a fit outside a search or final stage (benchmarks, scripts)
        show(f"epoch {epoch}/{epochs} {metrics_text(logs)}")
    else:
        show(_task.status(epoch, epochs, logs))


def train_end() -> None:
    if _task is None:
        _clear()


@contextlib.contextmanager
def running(task):
    global _task
    _task = task
    try:
        yield task
    finally:
        _task = None


def estimate(elapsed: float, fraction: float, finished: list[float], left_after: int) -> float | None:
    """Seconds left: the running task's rest (from its epochs) plus `left_after` more like the finished."""
    if finished:
        per = sum(finished) / len(finished)
    elif fraction > 0:
        per = elapsed / fraction
    else:
        return None
    rest = elapsed * (1 - fraction) / fraction if fraction > 0 else max(per - elapsed, 0.0)
    return rest + left_after * per


# --- the search: one line per trial -----------------------------------------------------------


# --- the final stage: one line per seed --------------------------------------------------------


# --- the end of a run: what came out, and what to do next ---------------------------------------


