"""Time one real-size search trial: MobileNetV2 at 224 px on the 10% split of a tf_flowers-sized set.

Uses synthetic images (3670, 5 classes, like tf_flowers) and random weights, so it runs offline;
the cost of a trial does not depend on the weights' values.

    python benchmarks/trial_time.py --epochs 50                      # the default (cached) path
    python benchmarks/trial_time.py --epochs 5 --no-prefix-cache     # the plain way
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from study.backbones import build_backbone, preprocessor  # noqa: E402
from study.candidates import make_candidates  # noqa: E402
from study.config import StudyConfig  # noqa: E402
from study.data import load_splits  # noqa: E402
from study.training import fine_tune, prefix_cache  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--size", type=int, default=3670)
    parser.add_argument("--no-prefix-cache", dest="prefix_cache", action="store_false")
    args = parser.parse_args()
    config = StudyConfig(
        model=args.model, weights="none", dataset="synthetic", synthetic_size=args.size,
        image_size=args.image_size, epochs=args.epochs, prefix_cache=args.prefix_cache,
    ).validate()
    started = time.perf_counter()
    splits = load_splits(config)
    preprocess = preprocessor(config)
    train = splits.arrays("search_train")
    val = splits.arrays("search_val")
    train, val = (preprocess(train[0]), train[1]), (preprocess(val[0]), val[1])
    data_seconds = time.perf_counter() - started
    candidate = make_candidates(config, build_backbone(config))[-1]  # the output-end block
    result = fine_tune(config, lambda: build_backbone(config), candidate, train, splits.num_classes,
                       validation=val, cache=prefix_cache(config), split_names=("search_train", "search_val"))
    figures = {
        "model": args.model,
        "image_size": args.image_size,
        "search_train_images": len(train[1]),
        "search_val_images": len(val[1]),
        "epochs": args.epochs,
        "candidate": candidate.name,
        "prefix_cache": result.cache,
        "data_seconds": round(data_seconds, 1),
        "trial_seconds": round(result.seconds, 1),
        "seconds_per_epoch": round(result.seconds / args.epochs, 2),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
