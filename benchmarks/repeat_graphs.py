"""Three ways to train a candidate's K repeats, timed in one run on the same data and checked equal.

1. `graph per repeat`: every repeat compiles its own model and traces its own training graph (the
   tool before it kept the traced model between trainings);
2. `kept graph` (what the tool does): the repeats follow each other on the one model the first
   traced, restarted from a new model's state (study.training, `PrefixCache.kept_model`);
3. `replicas`: the K repeats as K replicas in one model and one graph (each replica its own copy of
   the tuned layers, head, optimizer state, batches and seed), the issue's stretch. Built here only,
   to measure it: it needs a learning rate per replica for ReduceLROnPlateau, and a race cannot stop
   a replica, so a candidate always costs all K repeats.

All three use the same prefix cache (one forward pass per cut) and give the same accuracies, which
the script checks. It prints seconds per candidate for each way and the totals against one training
per candidate (K=1). The last line is JSON.

    python benchmarks/repeat_graphs.py                        # MobileNetV2 blocks, 32 px, 4 epochs
    python benchmarks/repeat_graphs.py --image-size 96 --epochs 8 --candidates 3
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from search_speed import pretrain  # noqa: E402  (this folder's script)

from study.candidates import make_candidates  # noqa: E402
from study.config import StudyConfig  # noqa: E402
from study.inputs import (
    build_backbone,  # noqa: E402
    load_splits,  # noqa: E402
)
from study.runtime import batches  # noqa: E402
from study.search import repeat_splits  # noqa: E402
from study.storage import rounded  # noqa: E402
from study.training import STEPS_PER_EXECUTION, FusedAdam, PrefixCache, apply_head, build_head, find_cut, fine_tune, freeze_all_but  # noqa: E402  # noqa: E402


class GraphPerRepeat(PrefixCache):
    """The prefix cache without the kept model: every training traces its own graph."""

    def kept_model(self, key: tuple) -> None:
        return None


def one_by_one(config, candidate, draws, num_classes, cache) -> list[float]:
    """The repeats one after another, as study.search trains them: final validation accuracies."""
    return [fine_tune(config, lambda: build_backbone(config), candidate, train, num_classes, validation=val,
                      seed=config.seed + r, backbone_seed=config.seed, cache=cache).history["val_accuracy"][-1]
            for r, (train, val) in enumerate(draws)]


def replicas(config, candidate, draws, num_classes, cache) -> list[float]:
    """The K repeats as K replicas of the trainable part in one model, fitted together."""
    backbone = cache.backbone(lambda: build_backbone(config), config.seed, candidate)
    freeze_all_but(backbone, candidate)
    cut = find_cut(backbone, candidate)
    inputs, outputs, train_sets, val_sets = [], [], [], []
    for r, (train, val) in enumerate(draws):
        seed = config.seed + r
        features = [keras.Input(shape=t.shape[1:]) for t in cut.inputs]
        inputs += features
        x = features[0] if len(features) == 1 else features
        if cut.suffix is not None:  # the replica's own copy of the tuned layers, from the pretrained weights
            suffix = keras.models.clone_model(cut.suffix)
            suffix.set_weights(cut.suffix.get_weights())
            suffix.name = f"tuned_{r}"  # one graph: every replica's layers need their own name
            freeze_all_but(suffix, candidate)
            x = suffix(x, training=False)
        keras.utils.set_random_seed(seed)  # then the head and its batches exactly as repeat r alone
        head_input = keras.Input(shape=x.shape[1:])
        head = keras.Model(head_input, apply_head(build_head(num_classes), head_input), name=f"replica_{r}")
        outputs.append(head(x))
        activations = cache.activations(cut, train.source, train.images, config.seed)
        train_sets.append(batches(train.take(activations), *train.take([train.labels]), config.batch_size, shuffle_seed=seed))
        val_sets.append(batches(val.take(activations), *val.take([val.labels]), max(config.batch_size, 32)))
    model = keras.Model(inputs, outputs)
    k = len(draws)  # compile_model's loss and metric, once per replica
    model.compile(optimizer=FusedAdam(learning_rate=config.learning_rate), loss=["sparse_categorical_crossentropy"] * k,
                  metrics=[["accuracy"]] * k, steps_per_execution=STEPS_PER_EXECUTION)
    joined = lambda *pairs: (tuple(x for x, _ in pairs), tuple(y for _, y in pairs))  # noqa: E731
    history = model.fit(tf.data.Dataset.zip(tuple(train_sets)).map(joined), epochs=config.epochs, verbose=0,
                        validation_data=tf.data.Dataset.zip(tuple(val_sets)).map(joined)).history
    return [rounded(history[f"val_replica_{r}_accuracy"][-1]) for r in range(len(draws))]  # as fine_tune stores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--strategy", default="block")
    parser.add_argument("--candidates", type=int, default=5, help="from the output end")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=1000, help="synthetic images")
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    parser.add_argument("--pretrain-images", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        weights = pretrain(args.model, args, folder) if args.pretrain_epochs else "none"
        config = StudyConfig(model=args.model, weights=weights, dataset="synthetic", synthetic_size=args.size,
                             image_size=args.image_size, epochs=args.epochs, strategy=args.strategy,
                             learning_rate=1e-3, search_repeats=args.repeats).validate()
        splits = load_splits(config)
        draws, num_classes = repeat_splits(config, splits), splits.num_classes
        candidates = list(reversed(make_candidates(config, build_backbone(config))))[:args.candidates]
        ways = {"K=1": lambda c, cache: one_by_one(config, c, draws[:1], num_classes, cache),
                "graph per repeat": lambda c, cache: one_by_one(config, c, draws, num_classes, cache),
                "kept graph": lambda c, cache: one_by_one(config, c, draws, num_classes, cache),
                "replicas": lambda c, cache: replicas(config, c, draws, num_classes, cache)}
        caches = {"K=1": GraphPerRepeat(), "graph per repeat": GraphPerRepeat(), "kept graph": PrefixCache(),
                  "replicas": PrefixCache()}
        for cache in caches.values():  # every prefix computed before the clock starts
            for candidate in candidates:
                cut = find_cut(cache.backbone(lambda: build_backbone(config), config.seed, candidate), candidate)
                if cut is not None:
                    cache.activations(cut, "search", draws[0][0].images, config.seed)
        seconds = {way: 0.0 for way in ways}
        for candidate in candidates:
            values, line = {}, []
            for way, train in ways.items():
                started = time.perf_counter()
                values[way] = train(candidate, caches[way])
                took = time.perf_counter() - started
                seconds[way] += took
                line.append(f"{way} {took:5.2f} s")
            same = values["graph per repeat"] == values["kept graph"] == values["replicas"]
            print(f"{candidate.name[:40]:40s} " + "  ".join(line) + f"  same accuracies: {same}", flush=True)
            if not same:
                raise SystemExit(f"the three ways differ: {values}")
    one = seconds["K=1"]
    summary = {way: {"seconds": round(s, 1), "against_k1": round(s / one, 2)} for way, s in seconds.items()}
    print("  ".join(f"{way}: {s['seconds']} s (x{s['against_k1']})" for way, s in summary.items()))
    print(json.dumps({"model": args.model, "repeats": args.repeats, "candidates": len(candidates), **summary}))


if __name__ == "__main__":
    main()
