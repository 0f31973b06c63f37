"""What a run shows while it works and when it ends, as Keras and Optuna users expect.

On a terminal, the running trial (or final-stage seed) has one live line, rewritten in place after
every epoch; when it ends, one line stays:

    trial 7/27 block-05 epoch 3/50 accuracy 0.7812 val_accuracy 0.8120 | 1m44s, study ETA 38m | best 0.8430 (#2)
    trial 7/27 complete (#6) block-05:block5_conv1..block5_conv3: val_accuracy 0.8120, 3m01s; best 0.8430 (#2); ...

Off a terminal (a log file, CI, a worker process) there is no live line and no carriage return: one
line per event (a trial starts, a trial ends, a seed ends). ETAs come from the trials (seeds) this
process finished so far, or from the running one's epochs before the first has finished.

`study.search` (trials), `study.final` (seeds) and `study.pipeline` (studies, the summary) say
what happens; `study.training.EpochProgress` reports every epoch of every fit here.

Example:
    >>> duration(4.93), duration(104), duration(3725)
    ('4.9 s', '1m44s', '1h02m')
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import shlex
import shutil
import sys
import time
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from study.records import (
    DUPLICATE_OF,
    INTERVAL_95,
    PARAM,
    PRUNE_REASON,
    SECONDS,
    STANDARD_ERROR,
    TIED_WITH_WINNER,
    final_candidate,
    score,
)

REPORT_OUTPUT = "storage/reports/report.html"  # python -m study.report's default --output

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


def _show(text: str) -> None:
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


def _metrics(logs: dict) -> str:
    return " ".join(f"{key} {logs[key]:.4f}" for key in ("accuracy", "val_accuracy") if key in logs)


# --- events of a fit (study.training.EpochProgress) ------------------------------------------


def train_begin() -> None:
    """A fit starts (a trial's training or a seed of the final stage)."""
    if _task is not None:
        _task.train_begin()


def epoch_end(epoch: int, epochs: int, logs: dict) -> None:
    """Epoch `epoch` (1-based) of `epochs` ended with `logs` (Keras's): the live line."""
    if _task is None:  # a fit outside a search or final stage (benchmarks, scripts)
        _show(f"epoch {epoch}/{epochs} {_metrics(logs)}")
    else:
        _show(_task.status(epoch, epochs, logs))


def train_end() -> None:
    if _task is None:
        _clear()


@contextlib.contextmanager
def _running(task):
    global _task
    _task = task
    try:
        yield task
    finally:
        _task = None


def _estimate(elapsed: float, fraction: float, finished: list[float], left_after: int) -> float | None:
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


def best_so_far(study: optuna.Study) -> tuple[float, int] | None:
    """(value, trial number) of the study's best complete trial so far, or None."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = max(complete, key=lambda t: t.value, default=None)
    return None if best is None else (best.value, best.number)


def _best_text(best: tuple[float, int] | None) -> str:
    return "best -" if best is None else f"best {best[0]:.4f} (#{best[1]})"


def _value_text(trial: FrozenTrial) -> str:
    value = score(trial)
    if value is None:
        return "val_accuracy -"
    error = trial.user_attrs.get(STANDARD_ERROR)
    return f"val_accuracy {value:.4f}" + (f" ± {error:.4f}" if isinstance(error, (int, float)) else "")


class SearchProgress:
    """Progress of one search in this process: wraps the objective and is Optuna's callback.

    `done`: trials of the study already finished (counted in "trial k/N"); `planned`: trials this
    run starts. Example (what `study.search.run_trials` does):

        progress = SearchProgress(study, planned=8, done=3)
        study.optimize(progress.wrap(objective), n_trials=8, callbacks=[progress])
    """

    def __init__(self, study: optuna.Study, planned: int, done: int = 0, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.done, self.total = done, done + planned
        self.count = 0  # trials started in this process
        self.seconds: list[float] = []  # durations of the trials that trained here
        self.best = best_so_far(study)
        self.started = clock()
        self.trial: optuna.Trial | None = None
        self.trial_started = self.started
        self.announced = False

    @property
    def position(self) -> str:
        k = self.done + self.count
        return f"trial {k}/{max(k, self.total)}"

    def _left_after(self) -> int:
        return max(self.total - self.done - self.count, 0)

    def _candidate(self) -> str:
        return str(self.trial.params.get(PARAM, "?")) if self.trial is not None else "?"

    def wrap(self, objective: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
        """`objective`, with this progress told when each trial starts (its fits report here)."""

        def run(trial: optuna.Trial) -> float:
            self.count += 1
            self.trial, self.trial_started, self.announced = trial, self.clock(), False
            with _running(self):
                return objective(trial)

        return run

    def train_begin(self) -> None:
        if self.announced:  # a retry at half the batch, or a further repeat of the same trial
            return
        self.announced = True
        if not live():
            eta = _estimate(0.0, 0.0, self.seconds, self._left_after() + 1)
            say(f"{self.position} started (#{self.trial.number}) {self._candidate()}"
                + (f"; study ETA {duration(eta)}" if eta is not None else ""))

    def status(self, epoch: int, epochs: int, logs: dict) -> str:
        elapsed = self.clock() - self.trial_started
        eta = _estimate(elapsed, epoch / epochs, self.seconds, self._left_after())
        short = self._candidate().split(":")[0]
        return (f"{self.position} {short} epoch {epoch}/{epochs} {_metrics(logs)} | {duration(elapsed)}, "
                f"study ETA {duration(eta)} | {_best_text(self.best)}")

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna's callback after each trial: the trial's line."""
        seconds = trial.user_attrs.get(SECONDS)
        if seconds is None:
            seconds = self.clock() - self.trial_started
        trained = trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and DUPLICATE_OF not in trial.user_attrs
        if trained and PARAM in trial.params:
            self.seconds.append(seconds)
        self.best = best_so_far(study)
        state = trial.state.name.lower()
        if PARAM not in trial.params:  # the grid had nothing left for it (another worker took the rest)
            say(f"{self.position} {state} (#{trial.number}): {trial.user_attrs.get(PRUNE_REASON, 'no candidate')}")
            return
        same = f" (same as #{trial.user_attrs[DUPLICATE_OF]})" if DUPLICATE_OF in trial.user_attrs else ""
        interval = trial.user_attrs.get(INTERVAL_95)
        shown = f", 95% interval {interval[0]:.4f}-{interval[1]:.4f}" if _pair(interval) else ""
        left = self._left_after()
        eta = sum(self.seconds) / len(self.seconds) * left if self.seconds else None
        say(f"{self.position} {state} (#{trial.number}) {trial.params[PARAM]}: {_value_text(trial)}{shown}, "
            f"{duration(seconds)}{same}; {_best_text(self.best)}; elapsed {duration(self.clock() - self.started)}"
            + (f", ETA {duration(eta)}" if left else ""))


def _pair(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)


# --- the final stage: one line per seed --------------------------------------------------------


class FinalProgress:
    """Progress of a final stage: `seeds` to run now, out of `total` seeds (the others are done).

    Example (what `study.final.run_final` does):

        progress = FinalProgress(name, seeds=[0, 1], total=2)
        for seed in [0, 1]:
            with progress.seed(seed):
                result = fine_tune(...)
            progress.seed_end(seed, accuracy, result.seconds)
    """

    def __init__(self, candidate: str, seeds: list[int], total: int, clock: Callable[[], float] = time.monotonic):
        self.candidate, self.clock = candidate, clock
        self.total = total
        self.index = total - len(seeds)  # seeds already done
        self.seconds: list[float] = []
        self.current = None
        self.seed_started = clock()

    def seed(self, seed: int):
        """While seed `seed` trains: its fits report to this progress."""
        self.index += 1
        self.current, self.seed_started = seed, self.clock()
        return _running(self)

    @property
    def position(self) -> str:
        return f"seed {self.index}/{self.total} (seed {self.current})"

    def train_begin(self) -> None:
        pass

    def status(self, epoch: int, epochs: int, logs: dict) -> str:
        elapsed = self.clock() - self.seed_started
        eta = _estimate(elapsed, epoch / epochs, self.seconds, self.total - self.index)
        return (f"final stage {self.position} epoch {epoch}/{epochs} {_metrics(logs)} | {duration(elapsed)}, "
                f"ETA {duration(eta)}")

    def seed_end(self, seed: int, test_accuracy: float, seconds: float) -> None:
        self.seconds.append(seconds)
        left = self.total - self.index
        eta = f"; ETA {duration(sum(self.seconds) / len(self.seconds) * left)}" if left else ""
        say(f"  {self.position}: test accuracy {test_accuracy:.4f}, {duration(seconds)}{eta}")


# --- the end of a run: what came out, and what to do next ---------------------------------------


def study_summary(name: str, study: optuna.Study, final: dict | None, left: int, total: int,
                  model_path: str) -> list[str]:
    """Lines about one study: the winner with its uncertainty, the test accuracy, the saved model."""
    if left:
        best = best_so_far(study)
        return [f"{name}: search unfinished, {left} of {total} candidates left ({_best_text(best)}); "
                "run the same command to continue"]
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    winner = final_candidate(final)
    chosen = trials.get(final.get("trial")) if final else None
    if chosen is None:
        best = best_so_far(study)
        chosen = trials.get(best[1]) if best else None
        winner = chosen.params.get(PARAM) if chosen else None
    lines = [f"{name}: {total} candidate(s) searched"]
    if chosen is None:
        return lines + ["  no complete trial: nothing to retrain"]
    error, interval = chosen.user_attrs.get(STANDARD_ERROR), chosen.user_attrs.get(INTERVAL_95)
    uncertainty = ""
    if isinstance(error, (int, float)):
        uncertainty += f" ± {error:.4f} (standard error)"
    if _pair(interval):
        uncertainty += f", 95% interval {interval[0]:.4f}-{interval[1]:.4f}"
    lines.append(f"  winner: {winner} (#{chosen.number}), validation accuracy {score(chosen):.4f}{uncertainty}")
    tied = [n for n in study.user_attrs.get(TIED_WITH_WINNER) or [] if n != winner]
    if tied:
        lines.append(f"  statistically tied with it (not significantly worse, paired t-test): {', '.join(tied)}")
    if not final:
        return lines + ["  retrained: not yet (--skip-final); run without it to retrain and test the winner"]
    runs = final.get("test_accuracy", [])
    spread = f" ± {math.sqrt(final['variance']):.4f} (mean ± std over {len(runs)} seeds)" if len(runs) > 1 else ""
    lines.append(f"  test accuracy {final['mean']:.4f}{spread}: the winner retrained on the pool, tested on the test split")
    if final.get("artifact_id"):
        lines.append(f"  saved model: {model_path} (raw RGB pixels in, class probabilities out: "
                     "keras.models.load_model(path).predict(images); class names in the .json beside it)")
    return lines


def next_steps(storage: str, artifact_dir: str) -> list[str]:
    """The commands that show the results: optuna-dashboard and the HTML report (none for a storage
    that lived in this process only: it is gone when the run ends).

    Example:
        >>> next_steps("sqlite:///:memory:", "storage/artifacts")[1]  # doctest: +ELLIPSIS
        '  the study was in memory (--storage sqlite:///:memory:) and ends with this run; to keep it ...'
    """
    from study.storage import process_local

    if process_local(storage):
        return ["next:", f"  the study was in memory (--storage {storage}) and ends with this run; to keep it for "
                         "optuna-dashboard and the report, pass a file: --storage sqlite:///storage/studies.db"]
    return [
        "next:",
        f"  optuna-dashboard {shlex.quote(storage)} --artifact-dir {shlex.quote(artifact_dir)}",
        f"  python -m study.report --storage {shlex.quote(storage)} --output {REPORT_OUTPUT}",
    ]
