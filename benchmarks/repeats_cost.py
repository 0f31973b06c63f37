"""What `--search-repeats` costs and what it buys, measured in one run on the same data.

Three searches of the same grid, through the real search path (`study.search.run_search`, a
temporary SQLite storage), on synthetic images with a backbone briefly pretrained on another
synthetic task (benchmarks/search_speed.py's `pretrain`: with random weights MobileNetV2's features
collapse and every candidate would tie at chance):

1. K=1: one training per candidate (the paper's protocol);
2. K=3 without racing (`--pruner none`): every candidate trained three times, paired draws;
3. K=3 raced (`--pruner race`, the default): a candidate stops once a paired t-test shows it worse.

It prints, for each: wall time, trainings run, the winner with its mean and 95% interval, and the
tied set (candidates not significantly worse than the winner); then the cost ratios against K=1.
The last line is JSON.

    python benchmarks/repeats_cost.py                                 # MobileNetV2 blocks, 32 px
    python benchmarks/repeats_cost.py --model vgg16 --pretrain-epochs 0 --strategy layer
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import optuna  # noqa: E402
from search_speed import _has_batch_norm, pretrain  # noqa: E402  (this folder's script)

from study.config import StudyConfig  # noqa: E402
from study.search import record_tied_set, run_search  # noqa: E402
from study.storage import INTERVAL_95, PARAM, REPEAT_VALUES, TIED_WITH_WINNER, finished_trials  # noqa: E402

SEARCHES = (
    ("K=1", dict(search_repeats=1, pruner="none")),
    ("K=3", dict(search_repeats=3, pruner="none")),
    ("K=3 raced", dict(search_repeats=3, pruner="race")),
)


def run(config: StudyConfig) -> dict:
    """One search: wall time, trainings, winner, its interval and the tied set."""
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        outcome = run_search(config)
    wall = time.perf_counter() - started
    record_tied_set(outcome, config)
    trials = finished_trials(outcome.study.get_trials(deepcopy=False))
    best = outcome.study.best_trial
    return {
        "seconds": round(wall, 1),
        "trainings": sum(len(t.user_attrs[REPEAT_VALUES]) for t in trials.values()),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials.values()),
        "winner": best.params[PARAM],
        "winner_value": round(best.value, 4),
        "winner_interval": [round(v, 4) for v in best.user_attrs[INTERVAL_95]],
        "tied": outcome.study.user_attrs[TIED_WITH_WINNER],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--strategy", default="block")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=1000, help="synthetic images")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-epochs", type=int, default=3, help="for backbones with BatchNormalization; 0: random weights")
    parser.add_argument("--pretrain-images", type=int, default=2000)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        weights = pretrain(args.model, args, folder) if args.pretrain_epochs and _has_batch_norm(args.model, args) else "none"
        base = StudyConfig(
            model=args.model, weights=weights, dataset="synthetic", synthetic_size=args.size, seed=args.seed,
            image_size=args.image_size, epochs=args.epochs, strategy=args.strategy, learning_rate=args.learning_rate,
            storage=f"sqlite:///{folder}/studies.db", skip_final=True,
        )
        for label, changes in SEARCHES:
            config = dataclasses.replace(base, study_name=label, **changes).validate()
            results[label] = run(config)
            r = results[label]
            print(f"{label:10s} {r['seconds']:7.1f} s  {r['trainings']:3d} trainings ({r['pruned']} pruned)  "
                  f"winner {r['winner']} {r['winner_value']:.4f} [{r['winner_interval'][0]:.4f}, "
                  f"{r['winner_interval'][1]:.4f}]  tied with it: {len(r['tied']) - 1}", flush=True)
    one = results["K=1"]["seconds"]
    summary = {
        "model": args.model, "strategy": args.strategy, "candidates": results["K=1"]["trainings"],
        "k3_cost": round(results["K=3"]["seconds"] / one, 2),
        "k3_raced_cost": round(results["K=3 raced"]["seconds"] / one, 2),
        "k3_raced_trainings_saved": round(1 - results["K=3 raced"]["trainings"] / results["K=3"]["trainings"], 3),
        "same_winner_k3_raced_vs_k3": results["K=3 raced"]["winner"] == results["K=3"]["winner"],
        "winners": {label: r["winner"] for label, r in results.items()},
        "tied": {label: r["tied"] for label, r in results.items()},
    }
    print(f"cost against K=1: K=3 x{summary['k3_cost']}, K=3 raced x{summary['k3_raced_cost']} "
          f"({summary['k3_raced_trainings_saved']:.0%} of the trainings saved by the race)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
