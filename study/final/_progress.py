"""The final stage's progress: one line per seed (and a live line on a terminal, study.runtime)."""

from __future__ import annotations

import time
from typing import Callable

from study.runtime import duration, estimate, metrics_text, running, say


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
        return running(self)

    @property
    def position(self) -> str:
        return f"seed {self.index}/{self.total} (seed {self.current})"

    def train_begin(self) -> None:
        pass

    def status(self, epoch: int, epochs: int, logs: dict) -> str:
        elapsed = self.clock() - self.seed_started
        eta = estimate(elapsed, epoch / epochs, self.seconds, self.total - self.index)
        return (f"final stage {self.position} epoch {epoch}/{epochs} {metrics_text(logs)} | {duration(elapsed)}, "
                f"ETA {duration(eta)}")

    def seed_end(self, seed: int, test_accuracy: float, seconds: float) -> None:
        self.seconds.append(seconds)
        left = self.total - self.index
        eta = f"; ETA {duration(sum(self.seconds) / len(self.seconds) * left)}" if left else ""
        say(f"  {self.position}: test accuracy {test_accuracy:.4f}, {duration(seconds)}{eta}")
