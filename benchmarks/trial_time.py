"""Time search trials at real size: where a trial's time goes, with and without the prefix cache.

MobileNetV2 at 224 px on the 10% split of a tf_flowers-sized set, using synthetic images (3670, 5
classes, like tf_flowers) and random weights, so it runs offline; the cost of a trial does not depend
on the weights' values. Each trial's time is split into set-up (build, and the prefix pass when
cached), the first epoch (which also traces the training graph) and the median later epoch.
`multiply_adds_ratio` is what a cache that cost nothing would give if time followed arithmetic
(see `search_speed.epoch_work`).

With `--compare`, each candidate runs the plain way and then cached, and the run also trains the
head alone from cached backbone features (Baseline I): every trial trains the head, so no candidate's
cached epoch can be cheaper, and the plain epoch over it bounds the speedup any candidate can get.

    python benchmarks/trial_time.py --epochs 50                      # the default (cached) path
    python benchmarks/trial_time.py --epochs 5 --no-prefix-cache     # the plain way
    python benchmarks/trial_time.py --compare --strategy layer --epochs 3 \\
        --candidates block_16_project,block_13_expand,block_11_expand
"""

import argparse
import dataclasses
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from search_speed import epoch_work  # noqa: E402  (this folder is on the path when run as a script)

from study.candidates import (
    Candidate,  # noqa: E402
    make_candidates,  # noqa: E402
)
from study.config import StudyConfig  # noqa: E402
from study.inputs import (  # noqa: E402
    build_backbone,
    load_splits,  # noqa: E402
    preprocessor,
)
from study.training import fine_tune, prefix_cache  # noqa: E402


class EpochClock(keras.callbacks.Callback):
    """The time at the start of training and at the end of every epoch."""

    def on_train_begin(self, logs=None):
        self.marks = [time.perf_counter()]

    def on_epoch_end(self, epoch, logs=None):
        self.marks.append(time.perf_counter())


def time_trial(config: StudyConfig, candidate: Candidate, splits, train, val) -> dict:
    """One trial of `candidate` on the path `config.prefix_cache` chooses, its time split in parts."""
    clock = EpochClock()
    started = time.perf_counter()
    result = fine_tune(config, lambda: build_backbone(config), candidate, train, splits.num_classes,
                       validation=val, cache=prefix_cache(config), callbacks=[clock],
                       split_names=("search_train", "search_val"))
    epochs = [end - start for start, end in zip(clock.marks, clock.marks[1:])]
    return {
        "candidate": candidate.name,
        "path": "cached" if config.prefix_cache else "plain",
        "prefix_cache": result.cache,
        "setup_seconds": round(clock.marks[0] - started, 2),
        "first_epoch_seconds": round(epochs[0], 2),
        "epoch_seconds": round(statistics.median(epochs[1:] or epochs), 3),
        "trial_seconds": round(result.seconds, 1),
        "seconds_per_epoch": round(result.seconds / config.epochs, 2),
    }


def pick(candidates: list[Candidate], wanted: str) -> Candidate:
    """The candidate whose name is `wanted` or ends with ':`wanted`'."""
    for candidate in candidates:
        if candidate.name == wanted or candidate.name.endswith(f":{wanted}"):
            return candidate
    raise SystemExit(f"no candidate {wanted!r}: choose from {', '.join(c.name for c in candidates)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--size", type=int, default=3670)
    parser.add_argument("--strategy", default="block")
    parser.add_argument("--candidates", default="", help="comma-separated names (default: the output end)")
    parser.add_argument("--no-prefix-cache", dest="prefix_cache", action="store_false")
    parser.add_argument("--compare", action="store_true", help="plain and cached, plus the head-only floor")
    args = parser.parse_args()
    config = StudyConfig(
        model=args.model, weights="none", dataset="synthetic", synthetic_size=args.size,
        image_size=args.image_size, epochs=args.epochs, prefix_cache=args.prefix_cache,
        strategy=args.strategy,
    ).validate()
    started = time.perf_counter()
    splits = load_splits(config)
    preprocess = preprocessor(config)
    train = splits.arrays("search_train")
    val = splits.arrays("search_val")
    train, val = (preprocess(train[0]), train[1]), (preprocess(val[0]), val[1])
    print(json.dumps({"model": args.model, "image_size": args.image_size, "search_train_images": len(train[1]),
                      "search_val_images": len(val[1]), "epochs": args.epochs,
                      "data_seconds": round(time.perf_counter() - started, 1)}), flush=True)
    candidates = make_candidates(config, build_backbone(config))
    chosen = [pick(candidates, name) for name in args.candidates.split(",") if name] or candidates[-1:]
    if not args.compare:
        for candidate in chosen:
            print(json.dumps(time_trial(config, candidate, splits, train, val)), flush=True)
        return
    speedups = {}
    compared = [*chosen, Candidate("head", ())]
    work = epoch_work(config, len(train[1]), len(train[1]) + len(val[1]), compared)
    for candidate in compared:
        plain, cached = (
            time_trial(dataclasses.replace(config, prefix_cache=on), candidate, splits, train, val)
            for on in (False, True)
        )
        print(json.dumps(plain), flush=True)
        print(json.dumps(cached), flush=True)
        speedups[candidate.name] = {
            "epoch_speedup": round(plain["epoch_seconds"] / cached["epoch_seconds"], 2),
            "trial_speedup": round(plain["trial_seconds"] / cached["trial_seconds"], 2),
            "multiply_adds_ratio": round(work[candidate.name][0] / work[candidate.name][1], 2),
        }
    # The head trains in every trial, so its cached epoch is the cheapest any candidate's can be.
    print(json.dumps({"speedups": speedups, "epoch_speedup_bound": speedups["head"]["epoch_speedup"]}))


if __name__ == "__main__":
    main()
