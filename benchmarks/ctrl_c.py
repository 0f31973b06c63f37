"""How reliably Ctrl-C stops a training run: the real command, one SIGINT at a random moment of
training per run, and what each run did with it.

Each run is `python -m study.run` on the test suite's tiny study (a saved 5-conv-layer model, 60
synthetic images, the head alone, 200 epochs of a few milliseconds, the per-epoch median pruner
reporting every epoch). Once the first epoch is in the storage, it waits a random 0-0.5 s and sends
SIGINT, then classifies the run:
- clean: exit code 130, no traceback (what the README promises);
- ignored: the run went on to the end (exit code 0): the KeyboardInterrupt was swallowed;
- traceback: another exit code with a traceback (e.g. "database is locked", a broken device scope);
- aborted: killed by a signal (e.g. glibc's "free(): invalid next size").
The last line is one JSON object with the counts. About 7 s per run on 2 cores.

    python benchmarks/ctrl_c.py --runs 100
"""

import argparse
import collections
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tiny_model(path: Path) -> None:
    """The test suite's tiny model (tests/conftest.py), saved to `path`."""
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for name, filters in (("conv1", 8), ("conv2", 8), ("pool1", 0), ("conv3", 16), ("conv4", 16), ("pool2", 0), ("conv5", 16)):
        x = keras.layers.MaxPooling2D(name=name)(x) if not filters else keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=name)(x)
    keras.Model(inputs, x, name="tiny").save(path)


def epochs_reported(db: Path) -> int:
    """Epochs trial 0 has reported while RUNNING (read-only; 0 before the tables exist)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute(
                "SELECT COUNT(*) FROM trials t JOIN trial_intermediate_values v ON v.trial_id = t.trial_id "
                "WHERE t.number = 0 AND t.state = 'RUNNING'").fetchone()[0]
    except sqlite3.Error:
        return 0


def interrupted_run(model: Path, folder: Path, rng: random.Random) -> str:
    """One run stopped by one SIGINT during training; its outcome."""
    command = [
        sys.executable, "-m", "study.run", "--dataset", "synthetic", "--synthetic-size", "60",
        "--synthetic-classes", "3", "--weights", "none", "--image-size", "32", "--model", str(model),
        "--epochs", "200", "--search-repeats", "1", "--pruner", "median", "--strategy", "head", "--skip-final",
        "--storage", f"sqlite:///{folder}/studies.db", "--artifact-dir", str(folder / "artifacts"),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not epochs_reported(folder / "studies.db"):
            if process.poll() is not None:
                return "never trained"
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.5))
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=300)
    finally:
        process.kill()
    if process.returncode == 130 and "Traceback" not in err:
        return "clean"
    if process.returncode == 0:
        return "ignored"
    return "aborted" if process.returncode < 0 else "traceback"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng, outcomes = random.Random(args.seed), collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tiny.keras"
        tiny_model(model)
        for run in range(args.runs):
            folder = Path(tmp) / f"run{run}"
            folder.mkdir()
            outcome = interrupted_run(model, folder, rng)
            outcomes[outcome] += 1
            print(f"run {run + 1}/{args.runs}: {outcome}", flush=True)
    print(json.dumps({"runs": args.runs, **{k: outcomes[k] for k in ("clean", "ignored", "traceback", "aborted")},
                      "never_trained": outcomes["never trained"]}))


if __name__ == "__main__":
    main()
