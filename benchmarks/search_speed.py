"""How much the prefix cache and the default pruner save, measured in one run on this machine.

For each model, on synthetic data of the tf_flowers size (3670 images, 5 classes) at a small
resolution, three layer-wise grid studies run through the real search path (`study.search.run_search`,
a temporary SQLite storage). A backbone with BatchNormalization is first pretrained for a few epochs
on another synthetic task (10 other classes, other seed), as ImageNet weights would be: with random
weights MobileNetV2's features collapse (BatchNormalization in inference mode with untrained
statistics), every candidate scores chance, and winners, ranks and pruning would mean nothing.
VGG16 keeps its random weights: its features do not collapse, and three epochs from scratch at this
learning rate leave it at chance on the other task. The studies:

1. plain: no cache, no pruner: the paper's exhaustive protocol, every epoch through every layer;
2. cached: the prefix cache, no pruner: same seeds and epochs, so results must match plain;
3. default: the prefix cache with the median pruner (the default before --search-repeats; one
   repeat each, as the other two: benchmarks/repeats_cost.py measures the repeats).

It prints the wall time of each, the speedup per candidate against its depth, whether the winners
agree and the Spearman rank correlation of the candidates' accuracies. Next to each speedup is its
bound: the ratio of an epoch's multiply-adds without and with the cache, what a cache that cost
nothing would give. The last line is JSON.

    python benchmarks/search_speed.py                       # MobileNetV2 and VGG16, 32 px, 6 epochs
    python benchmarks/search_speed.py --models vgg16 --epochs 4 --pretrain-epochs 0   # random weights
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

import keras  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402

from study.candidates import (  # noqa: E402
    Candidate,  # noqa: E402
    all_layers,
    make_candidates,
)
from study.config import StudyConfig  # noqa: E402
from study.inputs import (  # noqa: E402
    build_backbone,
    is_weighted,  # noqa: E402
    preprocessor,
    synthetic_images,  # noqa: E402
)
from study.search import run_search  # noqa: E402
from study.storage import PARAM, score  # noqa: E402
from study.training import find_cut  # noqa: E402


def run_grid(config: StudyConfig) -> tuple[float, dict[str, float], dict[str, float], str, int, dict[str, int]]:
    """Wall time, value and seconds per candidate, winner, pruned count and images per split of one grid study."""
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        outcome = run_search(config)
    wall = time.perf_counter() - started
    trials = outcome.study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    values = {t.params[PARAM]: score(t) for t in trials}
    seconds = {t.params[PARAM]: t.user_attrs["seconds"] for t in trials}
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    sizes = {split: len(index) for split, index in outcome.splits.indices.items()}
    return wall, values, seconds, outcome.study.best_trial.params[PARAM], pruned, sizes


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho with average ranks for ties."""
    ranks = [_average_ranks(np.asarray(x, float)) for x in (a, b)]
    if np.std(ranks[0]) == 0 or np.std(ranks[1]) == 0:
        return 1.0 if np.array_equal(ranks[0], ranks[1]) else 0.0
    return float(np.corrcoef(*ranks)[0, 1])


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def multiply_adds(layers) -> int:
    """Forward multiply-adds of the weighted layers among `layers`: kernel sizes times output positions."""
    return sum(
        int(np.prod(layer.output.shape[1:-1])) * sum(int(np.prod(w.shape)) for w in layer.weights if "kernel" in w.path)
        for layer in layers if is_weighted(layer)
    )


def epoch_work(
    config: StudyConfig, train_images: int, all_images: int, candidates: list[Candidate] | None = None
) -> dict[str, tuple[int, int]]:
    """Multiply-adds of one epoch per candidate (default: the strategy's), (plain, cached): what a free cache would save.

    Plain runs every image forward through the whole backbone, cached only through the layers above
    the cut; both run the training images backward through those layers, about one forward of them
    (the tuned kernels' gradients and the input gradients of the layers above). The head's two large
    layers (forward, and backward at about twice that) are the same in both.
    """
    backbone = build_backbone(dataclasses.replace(config, weights="none"))
    total = multiply_adds(all_layers(backbone))
    head = int(np.prod(backbone.output_shape[1:])) * 128 + 128 * 64
    work = {}
    for candidate in candidates or make_candidates(config, backbone):
        cut = find_cut(backbone, candidate)
        above = total if cut is None else 0 if cut.suffix is None else multiply_adds(cut.suffix.layers)
        backward = train_images * (above + 2 * head)
        work[candidate.name] = (all_images * (total + head) + backward, all_images * (above + head) + backward)
    return work


def pretrain(model: str, args: argparse.Namespace, folder: str) -> str:
    """A weights file of `model` trained briefly on another synthetic task (10 classes, seed 1)."""
    config = StudyConfig(model=model, weights="none", image_size=args.image_size).validate()
    keras.utils.set_random_seed(1)
    backbone = build_backbone(config)
    for layer in backbone.layers:  # moving statistics that settle within a few epochs (Keras: 0.99/0.999)
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    images, labels, _ = synthetic_images(args.pretrain_images, 10, args.image_size, seed=1)
    inputs = keras.Input(backbone.input_shape[1:])
    features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    classifier = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(features))
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = classifier.fit(preprocessor(config)(images), labels, batch_size=32, epochs=args.pretrain_epochs, verbose=0)
    path = f"{folder}/{model}-pretrained.weights.h5"
    backbone.save_weights(path)
    print(f"{model} pretrained {args.pretrain_epochs} epochs on the other task: "
          f"accuracy {history.history['accuracy'][-1]:.3f}", flush=True)
    return path


def _has_batch_norm(model: str, args: argparse.Namespace) -> bool:
    backbone = build_backbone(StudyConfig(model=model, weights="none", image_size=args.image_size).validate())
    return any(isinstance(layer, keras.layers.BatchNormalization) for layer in backbone.layers)


def benchmark_model(model: str, args: argparse.Namespace, folder: str) -> dict:
    weights = pretrain(model, args, folder) if args.pretrain_epochs and _has_batch_norm(model, args) else "none"
    base = StudyConfig(
        model=model, weights=weights, dataset="synthetic", synthetic_size=args.size,
        image_size=args.image_size, epochs=args.epochs, strategy="layer", learning_rate=args.learning_rate,
        storage=f"sqlite:///{folder}/{model}.db", skip_final=True, search_repeats=1,
    ).validate()
    runs = {}
    for label, changes in (
        ("plain", dict(prefix_cache=False, pruner="none")),
        ("cached", dict(prefix_cache=True, pruner="none")),
        ("default", dict(prefix_cache=True, pruner="median", pruner_warmup=args.pruner_warmup)),
    ):
        config = dataclasses.replace(base, study_name=f"{model}-{label}", **changes)
        runs[label] = run_grid(config)
        print(f"{model} {label:8s} {runs[label][0]:8.1f} s  winner {runs[label][3]}", flush=True)
    plain, cached, default = runs["plain"], runs["cached"], runs["default"]
    names = list(plain[1])  # output end first
    depth_order = sorted(names)  # names start with the layer index, input end first
    sizes = plain[5]
    work = epoch_work(base, sizes["search_train"], sizes["search_train"] + sizes["search_val"])
    print(f"{model}: speedup per candidate (cached vs plain), input end first; bound: the multiply-adds ratio")
    for name in depth_order:
        print(f"  {name:45s} {plain[2][name]:7.2f} s -> {cached[2][name]:6.2f} s  x{plain[2][name] / cached[2][name]:.2f}"
              f"  bound x{work[name][0] / work[name][1]:.2f}")
    top_third = depth_order[-max(1, len(depth_order) // 3):]
    top_speedup = sum(plain[2][n] for n in top_third) / sum(cached[2][n] for n in top_third)
    top_bound = sum(work[n][0] for n in top_third) / sum(work[n][1] for n in top_third)
    grid_bound = sum(plain for plain, _ in work.values()) / sum(cached for _, cached in work.values())
    same_default = default[3] == plain[3] or abs(default[1][default[3]] - plain[1][plain[3]]) <= 0.01
    return {
        "model": model,
        "candidates": len(names),
        "plain_seconds": round(plain[0], 1),
        "cached_seconds": round(cached[0], 1),
        "default_seconds": round(default[0], 1),
        "grid_speedup": round(plain[0] / cached[0], 2),
        "grid_bound": round(grid_bound, 2),
        "top_third_speedup": round(top_speedup, 2),
        "top_third_bound": round(top_bound, 2),
        "default_speedup": round(plain[0] / default[0], 2),
        "same_winner_grid": cached[3] == plain[3],
        "same_winner_default": same_default,
        "spearman_grid": round(spearman([plain[1][n] for n in names], [cached[1][n] for n in names]), 4),
        "winners": {"plain": plain[3], "cached": cached[3], "default": default[3]},
        # Each winner's validation accuracy in its own run, and in the plain run.
        "winner_values": {label: round(run[1][run[3]], 4) for label, run in runs.items()},
        "winner_values_in_plain": {label: round(plain[1][run[3]], 4) for label, run in runs.items()},
        "pruned_default": default[4],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v2,vgg16")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", type=int, default=3670, help="synthetic images (tf_flowers: 3670)")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    # The default warm-up, 5 of 50 epochs, scaled to 6 epochs is 0.6: round up to 1 (pruning from epoch 2).
    parser.add_argument("--pruner-warmup", type=int, default=1)
    parser.add_argument("--pretrain-epochs", type=int, default=3, help="for backbones with BatchNormalization; 0: random weights")
    parser.add_argument("--pretrain-images", type=int, default=2000)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        results = [benchmark_model(m, args, folder) for m in args.models.split(",")]
    for result in results:
        print(json.dumps(result))
    summary = {
        "grid_speedup": min(r["grid_speedup"] for r in results),
        "top_third_speedup": min(r["top_third_speedup"] for r in results),
        "default_speedup": min(r["default_speedup"] for r in results),
        "same_winner_grid": all(r["same_winner_grid"] for r in results),
        "same_winner_default": all(r["same_winner_default"] for r in results),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
