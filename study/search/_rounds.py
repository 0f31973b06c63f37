"""The search in rounds: every candidate gets repeat r before any candidate gets repeat r + 1.

F-Race (irace) and tidymodels' `tune_race_anova` race this way: every look compares complete rounds,
so every candidate has references, not only those visited after a good one. Within a round the
candidates go in the paper's order (output end first). Each candidate still has one trial, asked
(`study.ask`, which claims the candidate through the ordered grid) before its first repeat, kept
RUNNING across the rounds, and told COMPLETE after its last repeat or PRUNED when the race stops it.

Everything is read back from the storage in every step, so a run killed in the middle of a round
resumes exactly where it was (its open trials are failed as dead, and new trials take their finished
repeats over), and several processes (`--workers N`) share a round: each trains the candidates whose
trials it asked, takes candidates nobody holds, and waits at the end of a round for the others.
"""

from __future__ import annotations

import threading
import time
import warnings

import optuna
from optuna.trial import FrozenTrial, TrialState

from study.runtime import duration, say
from study.search._objective import Objective, Repeats, interrupted_repeats, store_repeats
from study.search._progress import best_so_far, best_text
from study.search._race import stopped_in_round
from study.search._samplers import OrderedGridSampler
from study.stats import TEST_WORDS
from study.storage import (
    DUPLICATE_OF,
    INTERVAL_95,
    PARAM,
    PEAK_MEMORY,
    PRUNE_REASON,
    REPEAT_VALUES,
    SECONDS,
    STANDARD_ERROR,
    fail_dead_trials,
    finished_candidates,
    rounded,
    running_candidates,
    storage_of,
    trial_candidate,
    trial_id,
)

WAIT_SECONDS = 0.5  # how often a process that waits for another's repeats reads the storage again


def candidate_values(trials: list[FrozenTrial]) -> dict[str, list[float]]:
    """Every candidate's repeat values so far: the longest `repeat_values` of any of its trials.

    Repeats are deterministic (each its own draw and seed), so the trials of one candidate (a
    FAIL one of a killed run, the RUNNING one that took it over) agree on the repeats they share.

    Example:
        >>> trial = optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={REPEAT_VALUES: [0.8, 0.7]},
        ...     params={PARAM: "a"}, distributions={PARAM: optuna.distributions.CategoricalDistribution(["a"])})
        >>> candidate_values([trial])
        {'a': [0.8, 0.7]}
    """
    values: dict[str, list[float]] = {}
    for trial in trials:
        name = trial_candidate(trial)
        held = trial.user_attrs.get(REPEAT_VALUES) or []
        if name is not None and DUPLICATE_OF not in trial.user_attrs and len(held) >= len(values.get(name, [])):
            values[name] = [float(v) for v in held]
    return values


def run_rounds(objective: Objective, study: optuna.Study, order: list[str]) -> None:
    """Train every candidate of `order` (output end first) in rounds, in this process and any other
    on the same study, until each has a COMPLETE or PRUNED trial.

    Example:
        >>> run_rounds(Objective(config, splits, by_name), study, order)  # doctest: +SKIP
    """
    _Rounds(objective, study, order).run()


class _Rounds:
    """One process's part of the rounds: the trials it holds open and what each has trained."""

    def __init__(self, objective: Objective, study: optuna.Study, order: list[str]):
        self.objective, self.study, self.order = objective, study, order
        self.repeats = len(objective.repeats)
        self.mine: dict[str, optuna.Trial] = {}  # candidate -> the trial this process holds open
        self.held: dict[str, Repeats] = {}
        self.seconds: dict[str, float] = {}
        self.limit, self.taken = objective.config.n_trials, 0  # --n-trials: candidates this process may take
        # One line per event, as candidate by candidate: "trial k/N" numbers the candidates this process
        # took, in the order it took them; a line per repeat says the round and the epochs it ran.
        self.position: dict[str, int] = {}
        self.done = len(finished_candidates(study))
        self.started, self.trainings = time.perf_counter(), []
        # The rounds tell their own trials; the grid must not stop a study outside `optimize`.
        study.sampler = OrderedGridSampler(order, stop_when_done=False)

    def run(self) -> None:
        with _Heartbeat(self.study, self.mine):
            try:
                while self.step():
                    pass
            except BaseException:
                for trial in self.mine.values():  # their finished repeats are taken over on resume
                    self.study.tell(trial, state=TrialState.FAIL)
                raise

    def step(self) -> bool:
        """Do the next thing this process can do; False once nothing is left for it."""
        fail_dead_trials(self.study)  # a dead worker's candidates become free to take over
        values = candidate_values(self.study.get_trials(deepcopy=False))
        finished, busy = finished_candidates(self.study), running_candidates(self.study)
        racing = [name for name in self.order if name not in finished]
        can_take = self.limit is None or self.taken < self.limit
        free = [name for name in racing if name not in busy]
        if not self.mine and not (can_take and free):
            return False  # what is left is held by other processes (or beyond --n-trials)
        # The candidates in play: held by some process, or free for this one to take. The current
        # round is the fewest repeats among them: every one of them gets it before any gets more.
        in_play = [name for name in racing if name in busy or can_take]
        current = min(len(values.get(name, [])) for name in in_play)
        for name in [n for n in self.order if n in self.mine]:
            if self._close(name, values, in_play):
                return True
        mine = [n for n in self.order if n in self.mine and len(self.held[n].values) == current]
        if mine:
            self._train(mine[0], current)
        elif can_take and free:
            self._take()
        else:
            time.sleep(WAIT_SECONDS)  # the rest of this round is being trained by other processes
        return True

    def _close(self, name: str, values: dict[str, list[float]], in_play: list[str]) -> bool:
        """Tell the candidate's trial COMPLETE after its last repeat, or PRUNED when the race stops it."""
        held, trial = self.held[name], self.mine[name]
        if len(held.values) >= self.repeats:
            trial.set_user_attr(SECONDS, round(self.seconds[name], 3))
            value = rounded(self.objective.summarize(trial, held))
            self.study.tell(trial, value)
            del self.mine[name]
            error, (low, high) = trial.user_attrs[STANDARD_ERROR], trial.user_attrs[INTERVAL_95]
            say(f"{self._trial(name)} complete (#{trial.number}) {name}: val_accuracy {value:.4f} ± {error:.4f}, "
                f"95% interval {low:.4f}-{high:.4f}, {duration(self.seconds[name])}; {best_text(best_so_far(self.study))}; "
                f"elapsed {duration(time.perf_counter() - self.started)}")
            return True
        done = len(held.values)
        # The race looks only once its round is complete: every candidate in play has as many repeats.
        if self.objective.config.pruner != "race" or any(len(values.get(n, [])) < done for n in in_play):
            return False
        stopped = stopped_in_round(values, name, self.repeats, self.objective.config.race_alpha)
        if stopped is None:
            return False
        best, p, level = stopped
        reason = (f"stopped after {done} of {self.repeats} repeats (round {done}): worse than {best} on the "
                  f"repeats of every candidate of the round, p={p:.3g} < {level:.3g} ({TEST_WORDS})")
        trial.set_user_attr(PRUNE_REASON, reason)
        trial.set_user_attr(SECONDS, round(self.seconds[name], 3))
        self.study.tell(trial, state=TrialState.PRUNED)
        del self.mine[name]
        say(f"{self._trial(name)} pruned (#{trial.number}) {name}: {reason}")
        return True

    def _trial(self, name: str) -> str:
        k = self.position[name]
        return f"trial {k}/{max(k, len(self.order))}"

    def _train(self, name: str, round_: int) -> None:
        """Train repeat `round_` of a candidate this process holds, store and report it."""
        trial, held = self.mine[name], self.held[name]
        started = time.perf_counter()
        try:
            self.objective.train_next(trial, self.objective.by_name[name], held)
        except optuna.TrialPruned:  # out of device memory even at half the batch (`fit_or_prune`)
            self.study.tell(trial, state=TrialState.PRUNED)
            del self.mine[name]
            return
        self.seconds[name] += time.perf_counter() - started
        store_repeats(trial, held)
        trial.set_user_attr(PEAK_MEMORY, self.objective.device.peak_memory_bytes())
        trial.report(held.values[-1], step=round_)
        self.trainings.append(time.perf_counter() - started)
        finished = finished_candidates(self.study)  # the most left: no race stops, nobody else helps
        left = (sum(self.repeats - len(self.held[n].values) for n in self.mine)
                + self.repeats * sum(1 for n in self.order if n not in self.held and n not in finished))
        eta = sum(self.trainings) / len(self.trainings) * left
        say(f"round {round_ + 1}/{self.repeats} (#{trial.number}) {name}: val_accuracy {held.values[-1]:.4f} after "
            f"{len(held.curves[-1])} epochs, {duration(self.trainings[-1])}; study ETA {duration(eta)} at most")

    def _take(self) -> None:
        """Ask a trial for the first candidate nobody holds (the grid's claim), taking over its finished repeats."""
        with warnings.catch_warnings():  # Optuna warns that heartbeats are meant for `optimize`: _Heartbeat beats
            warnings.simplefilter("ignore", UserWarning)
            trial = self.study.ask()
        try:
            # The same choices as the Objective's (every candidate of the study, in its order): Optuna refuses a
            # parameter whose choices change between trials, and greedy visits a subset of them per round.
            name = trial.suggest_categorical(PARAM, list(self.objective.by_name))
        except optuna.TrialPruned:  # nothing left: another process took the last one meanwhile
            self.study.tell(trial, state=TrialState.PRUNED)
            return
        self.taken += 1
        held = interrupted_repeats(self.study, name)
        self.objective.start(trial, self.objective.by_name[name])
        self.mine[name], self.held[name], self.seconds[name] = trial, held, 0.0
        self.position[name] = self.done + len(self.position) + 1
        taken = f"; {len(held.values)} repeat(s) taken over from an interrupted trial" if held.values else ""
        say(f"{self._trial(name)} started (#{trial.number}) {name}{taken}")
        if held.values:
            store_repeats(trial, held)
            for step, value in enumerate(held.values):
                trial.report(value, step=step)


class _Heartbeat:
    """Beats for the trials a process holds open between their repeats: outside `optimize` Optuna
    runs no heartbeat, and other machines fail a trial whose heartbeat is older than the grace period."""

    def __init__(self, study: optuna.Study, trials: dict[str, optuna.Trial]):
        self.storage, self.trials = storage_of(study), trials
        interval = getattr(self.storage, "get_heartbeat_interval", lambda: None)()
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name="study-rounds-heartbeat")

    def __enter__(self) -> "_Heartbeat":
        if self.interval:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            for trial in list(self.trials.values()):
                try:
                    self.storage.record_heartbeat(trial_id(trial))
                except Exception:  # a trial finished meanwhile, or the storage is busy: the next beat retries
                    pass

