"""Parallel workers (`--workers N`): N processes share one study, each on its own GPU if any.

Every worker runs the ordinary search loop on the same study; the ordered grid sampler makes sure
no two of them train the same candidate (study.search's samplers), and the storage serialises their writes
(SQLite: BEGIN IMMEDIATE, study.storage; PostgreSQL and other servers: Optuna's RDB storage as it is). Processes are
started with 'spawn', so each gets a fresh TensorFlow that can still be pinned to one GPU.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import sys
from typing import TextIO

from study.config import StudyConfig
from study.runtime import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_WRITE_FAILED,
    StudyError,
    WriteError,
    gpu_count,
    start_up,
    write_problem,
)


def split_trials(n_trials: int, workers: int) -> list[int]:
    """Share `n_trials` among `workers` as evenly as possible, first workers first.

    Example:
        >>> split_trials(7, 3)
        [3, 2, 2]
    """
    return [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]


def run_workers(config: StudyConfig, n_trials: int) -> None:
    """Run `n_trials` trials of the study of `config` in `config.workers` processes; wait for all.

    With the grid sampler and no `--n-trials`, every worker keeps taking candidates until none is
    left (a fixed share would leave work undone when one worker is faster).

    Example:
        >>> run_workers(dataclasses.replace(config, workers=2), n_trials=11)  # doctest: +SKIP
    """
    if config.sampler == "grid" and config.n_trials is None:
        shares = [n_trials] * config.workers
    else:
        shares = split_trials(n_trials, config.workers)
    if config.cache_budget_gb is None:  # each worker's prefix cache gets its share of the memory
        from study.training import default_budget

        config = dataclasses.replace(config, cache_budget_gb=default_budget() / config.workers / 2**30)
    gpus = gpu_count()
    where = f"{gpus} GPU(s), worker i on GPU i mod {gpus}" if gpus else "CPU"
    print(f"starting {sum(1 for s in shares if s)} worker processes on study {config.name!r} ({where})", flush=True)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker_main, args=(config, worker, share), name=f"study-worker-{worker}")
        for worker, share in enumerate(shares)
        if share
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        _stop(processes)
        raise
    crashed = [(p.name, p.exitcode) for p in processes if p.exitcode != 0]
    if any(code == EXIT_INTERRUPTED for _, code in crashed):
        raise KeyboardInterrupt
    full = [name for name, code in crashed if code == EXIT_WRITE_FAILED]
    if full:  # study.storage.write_failures_reported adds what is kept and how to resume
        raise WriteError(f"{', '.join(full)} could not write (see above)")
    if crashed:
        names = ", ".join(f"{name} (exit code {code})" for name, code in crashed)
        raise StudyError(f"{names} stopped early (see above); run the same command to retry what is left")


def _stop(processes: list) -> None:
    """Ctrl-C: the terminal sent SIGINT to the workers too; make sure, then wait for each to
    mark its trial FAIL and exit."""
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)
    for process in processes:
        process.join(timeout=60)


def _worker_main(config: StudyConfig, worker: int, n_trials: int) -> None:
    """One worker process: pin the GPU first (before TensorFlow builds devices), then search."""
    _die_with_parent()
    sys.stdout = _Prefixed(sys.stdout, f"[worker {worker}] ")
    try:
        start_up(worker)  # TensorFlow loads here, quietly (this module does not import it)
        from study.search._study import run_search

        run_search(dataclasses.replace(config, workers=1, n_trials=n_trials))
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as error:
        problem = write_problem(error)  # a full disk: one line here, the command's summary after it
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(EXIT_WRITE_FAILED)
    finally:
        sys.stdout.flush()


def _die_with_parent() -> None:
    """If the command is killed (kill -9), its workers go too (Linux), so that no orphan keeps
    training; their RUNNING trials are then failed and retried by the next run."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before prctl took effect
        os._exit(EXIT_INTERRUPTED)


class _Prefixed:
    """A text stream that starts every line with the worker's name, so interleaved output reads."""

    def __init__(self, stream: TextIO, prefix: str):
        self._stream = stream
        self._prefix = prefix
        self._line_start = True

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            if self._line_start and piece not in ("\n",):
                out.append(self._prefix)
            out.append(piece)
            self._line_start = piece.endswith("\n")
        self._stream.write("".join(out))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def __getattr__(self, name):
        return getattr(self._stream, name)
