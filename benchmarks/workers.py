"""Wall time of one grid study with 1 worker and with 2 worker processes, on this machine.

Each run is the real command (`python -m study.run ... --workers N --skip-final`) on a fresh SQLite
storage, synthetic images and random weights, so it runs offline in a few minutes. Process start
(TensorFlow import, model build) is included: it is part of what a user waits for.

    python benchmarks/workers.py --model mobilenet_v2 --epochs 3
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna


def run_study(workers: int, args: argparse.Namespace, folder: Path) -> dict:
    """Run the study once with `workers` processes; its wall time and trial counts."""
    storage = f"sqlite:///{folder}/workers-{workers}.db"
    command = [
        sys.executable, "-m", "study.run", "--dataset", "synthetic", "--weights", "none",
        "--model", args.model, "--strategy", args.strategy, "--image-size", str(args.image_size),
        "--epochs", str(args.epochs), "--synthetic-size", str(args.size), "--pruner", "none",
        "--storage", storage, "--artifact-dir", str(folder / "artifacts"), "--skip-final",
        "--workers", str(workers),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    (summary,) = optuna.get_all_study_summaries(storage, include_best_trial=False)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    return {
        "seconds": round(seconds, 1),
        "trials": len(trials),
        "finished": sum(t.state.is_finished() and t.state.name != "FAIL" for t in trials),
        "processes": len({t.system_attrs.get("owner", {}).get("pid") for t in trials}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--strategy", default="block")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--size", type=int, default=250)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        one = run_study(1, args, Path(folder))
        print(f"1 worker:  {one['seconds']:.1f} s for {one['finished']} candidates", flush=True)
        two = run_study(2, args, Path(folder))
        print(f"2 workers: {two['seconds']:.1f} s for {two['finished']} candidates "
              f"({two['processes']} processes trained)", flush=True)
    figures = {
        "model": args.model, "strategy": args.strategy, "image_size": args.image_size,
        "epochs": args.epochs, "synthetic_size": args.size, "cpu_cores": os.cpu_count(),
        "workers_1_seconds": one["seconds"], "workers_2_seconds": two["seconds"],
        "speedup": round(one["seconds"] / two["seconds"], 2),
        "candidates": one["finished"], "workers_2_processes": two["processes"],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
