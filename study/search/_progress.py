"""The search's progress: one line per trial (and a live line on a terminal, study.runtime)."""

from __future__ import annotations

import time
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from study.runtime import duration, estimate, live, metrics_text, running, say
from study.storage import DUPLICATE_OF, INTERVAL_95, PARAM, PRUNE_REASON, SECONDS, STANDARD_ERROR, score


def best_so_far(study: optuna.Study) -> tuple[float, int] | None:
    """(value, trial number) of the study's best complete trial so far, or None."""
    try:
        best = study.best_trial
    except ValueError:  # no complete trial yet
        return None
    return best.value, best.number



def best_text(best: tuple[float, int] | None) -> str:
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
            with running(self):
                return objective(trial)

        return run

    def train_begin(self) -> None:
        if self.announced:  # a retry at half the batch, or a further repeat of the same trial
            return
        self.announced = True
        if not live():
            eta = estimate(0.0, 0.0, self.seconds, self._left_after() + 1)
            say(f"{self.position} started (#{self.trial.number}) {self._candidate()}"
                + (f"; study ETA {duration(eta)}" if eta is not None else ""))

    def status(self, epoch: int, epochs: int, logs: dict) -> str:
        elapsed = self.clock() - self.trial_started
        eta = estimate(elapsed, epoch / epochs, self.seconds, self._left_after())
        short = self._candidate().split(":")[0]
        return (f"{self.position} {short} epoch {epoch}/{epochs} {metrics_text(logs)} | {duration(elapsed)}, "
                f"study ETA {duration(eta)} | {best_text(self.best)}")

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
        shown = f", 95% interval {interval[0]:.4f}-{interval[1]:.4f}" if is_pair(interval) else ""
        left = self._left_after()
        eta = sum(self.seconds) / len(self.seconds) * left if self.seconds else None
        say(f"{self.position} {state} (#{trial.number}) {trial.params[PARAM]}: {_value_text(trial)}{shown}, "
            f"{duration(seconds)}{same}; {best_text(self.best)}; elapsed {duration(self.clock() - self.started)}"
            + (f", ETA {duration(eta)}" if left else ""))



def is_pair(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
