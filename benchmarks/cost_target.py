"""Issue 21's target: the new default search (early stopping + the race in rounds) against today's
single pass and today's default, in one run on the same data, at the paper's batch 4 and 50 epochs.

Three searches through the real search path (`study.search.run_search`, a temporary SQLite storage):

1. single pass: `--search-repeats 1` (fixed epochs, the paper's protocol);
2. K=3, fixed epochs, raced candidate by candidate (`--fixed-epochs --search-order by-candidate`: the
   default before issue 21);
3. the new default: K=3, each repeat stops once settled (`--patience 10 --min-delta 0.01`), raced in rounds.

On two kinds of data:

- real: the real ImageNet MobileNet alpha 0.25 (`../shared/assets/`, flattened, Rescaling(1/127.5,
  offset=-1) in front, saved as a .keras file) on real images (`sklearn.datasets.load_digits`, 1,797
  digits as a folder, upsampled by the tool), block strategy (5 blocks, `--delimiters ZeroPadding2D`);
- synthetic, where the truth is known: the same searches with the training replaced by simulated
  learning curves (candidate c: true accuracy mu_c approached as mu_c - (mu_c - 0.2) exp(-epoch / tau_c),
  plus the repeat's draw effect and per-epoch noise), fed epoch by epoch to the real callbacks
  (ReduceLROnPlateau is not simulated, the stopping rule is the product's). The true best is the
  highest expected 50-epoch accuracy. Wall time there is not a cost (no training): epochs are.

It prints for each search: wall time, trainings, epochs trained, winner and tied set (and, synthetic,
whether the tied set holds the true best); then the cost ratios. The last line is JSON.

    python benchmarks/cost_target.py                     # real (64 px) and synthetic
    python benchmarks/cost_target.py --image-size 96 --skip-synthetic
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
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import optuna  # noqa: E402

import study.search._objective as objective_module  # noqa: E402
from study.config import StudyConfig  # noqa: E402
from study.search import record_tied_set, run_search  # noqa: E402
from study.storage import PARAM, REPEAT_EPOCHS, REPEAT_VALUES, TIED_WITH_WINNER, finished_trials  # noqa: E402
from study.training import TrainingResult  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# ../shared/assets next to the checkout (or next to the folder of worktrees).
WEIGHTS = next((path for path in (folder / "shared" / "assets" / "mobilenet_2_5_224_tf_no_top.h5"
                                  for folder in (REPO.parent, REPO.parent.parent)) if path.exists()),
               REPO.parent / "shared" / "assets" / "mobilenet_2_5_224_tf_no_top.h5")
SEARCHES = (
    ("single pass (K=1)", dict(search_repeats=1, pruner="none")),
    ("K=3 fixed, raced by candidate", dict(search_repeats=3, pruner="race", fixed_epochs=True,
                                           search_order="by-candidate")),
    ("new default (K=3, stop, rounds)", dict(search_repeats=3, pruner="race")),
)
# Synthetic truth, 5 candidates (input end first): final accuracy and time constant (epochs).
TRUTH = {"block-01": (0.80, 12.0), "block-02": (0.84, 9.0), "block-03": (0.86, 15.0), "block-04": (0.85, 5.0),
         "block-05": (0.82, 3.0)}


def make_assets(folder: Path, weights: Path) -> tuple[str, str]:
    """The digits as a folder of PNGs and the real MobileNet alpha 0.25 as a flat .keras model."""
    import keras
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        (folder / "digits" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image * 16, 0, 255).astype(np.uint8)).save(folder / "digits" / str(label) / f"{i:04d}.png")
    inputs = keras.Input((None, None, 3), name="image")
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inputs)  # MobileNet expects [-1, 1]
    flat = keras.applications.MobileNet(input_tensor=scaled, alpha=0.25, include_top=False, weights=None)
    base = keras.applications.MobileNet(input_shape=(None, None, 3), alpha=0.25, include_top=False, weights=None)
    base.load_weights(str(weights))
    by_name = {layer.name: layer for layer in base.layers}
    for layer in flat.layers:
        if layer.weights:
            layer.set_weights(by_name[layer.name].get_weights())
    flat.save(folder / "mobilenet025.keras")
    return str(folder / "digits"), str(folder / "mobilenet025.keras")


def run(config: StudyConfig) -> dict:
    """One search: wall time, trainings, epochs trained, winner and the tied set."""
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        outcome = run_search(config)
    wall = time.perf_counter() - started
    record_tied_set(outcome, config)
    trials = finished_trials(outcome.study.get_trials(deepcopy=False)).values()
    best = outcome.study.best_trial
    return {
        "seconds": round(wall, 1),
        "trainings": sum(len(t.user_attrs[REPEAT_VALUES]) for t in trials),
        "epochs": sum(sum(t.user_attrs[REPEAT_EPOCHS]) for t in trials),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
        "winner": best.params[PARAM].split(":")[0],
        "winner_value": round(best.value, 4),
        "tied": [name.split(":")[0] for name in outcome.study.user_attrs[TIED_WITH_WINNER]],
    }


class SimulatedFit:
    """`fine_tune` replaced by a learning curve with known truth, fed epoch by epoch to the real callbacks."""

    def __init__(self, noise_seed: int, draw_sd: float = 0.01, epoch_sd: float = 0.01):
        self.noise_seed, self.draw_sd, self.epoch_sd = noise_seed, draw_sd, epoch_sd

    def __call__(self, config, build, candidate, train, num_classes, validation=None, callbacks=(), seed=0, **kwargs):
        name = candidate.name.split(":")[0]
        mu, tau = TRUTH[name]
        rng = np.random.default_rng([self.noise_seed, seed, sum(map(ord, name))])
        draw = np.random.default_rng([self.noise_seed, seed]).normal(0, self.draw_sd)  # shared by all candidates
        model = type("Model", (), {"stop_training": False})()
        for callback in callbacks:
            callback.set_model(model)
            callback.on_train_begin()
        curve = []
        for epoch in range(config.epochs):
            expected = mu - (mu - 0.2) * np.exp(-(epoch + 1) / tau)
            curve.append(round(float(np.clip(expected + draw + rng.normal(0, self.epoch_sd), 0, 1)), 6))
            for callback in callbacks:
                callback.on_epoch_end(epoch, {"val_accuracy": curve[-1]})
            if model.stop_training:
                break
        history = {"val_accuracy": curve, "accuracy": [min(1.0, v + 0.1) for v in curve]}
        return TrainingResult(model=None, history=history, trainable_params=1, seconds=0.0, cache="off: simulated")


def true_best(epochs: int) -> str:
    return max(TRUTH, key=lambda name: TRUTH[name][0] - (TRUTH[name][0] - 0.2) * np.exp(-epochs / TRUTH[name][1]))


def show(label: str, r: dict, best: str | None = None) -> None:
    holds = "" if best is None else f"; true best {best} {'in' if best in r['tied'] else 'NOT in'} the tied set"
    print(f"  {label:32s} {r['seconds']:7.1f} s  {r['trainings']:3d} trainings ({r['pruned']} pruned)  "
          f"{r['epochs']:5d} epochs  winner {r['winner']} {r['winner_value']:.4f}  tied {r['tied']}{holds}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--weights-file", default=str(WEIGHTS), help="mobilenet_2_5_224_tf_no_top.h5")
    parser.add_argument("--synthetic-runs", type=int, default=10, help="noise draws of the synthetic truth")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--only", type=int, choices=range(len(SEARCHES)), help="run only this search (0, 1, 2)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    summary: dict = {"epochs": args.epochs, "batch_size": 4}
    searches = SEARCHES if args.only is None else SEARCHES[args.only:args.only + 1]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if not args.skip_real:
            data_dir, model = make_assets(folder, Path(args.weights_file))
            base = StudyConfig(data_dir=data_dir, model=model, delimiters=("ZeroPadding2D",), image_size=args.image_size,
                               epochs=args.epochs, storage=f"sqlite:///{folder}/real.db", skip_final=True)
            print(f"real: MobileNet alpha 0.25 (ImageNet), digits at {args.image_size} px, 5 blocks, batch 4, "
                  f"{args.epochs} epochs", flush=True)
            real = {}
            for label, changes in searches:
                real[label] = run(dataclasses.replace(base, study_name=label, **changes).validate())
                show(label, real[label])
            summary["real"] = real
        if not args.skip_synthetic:
            base = StudyConfig(dataset="synthetic", synthetic_size=100, model="vgg16", weights="none", image_size=32,
                               epochs=args.epochs, storage=f"sqlite:///{folder}/synthetic.db", skip_final=True)
            best = true_best(args.epochs)
            print(f"synthetic truth (simulated curves, 5 candidates, true best {best}), {args.synthetic_runs} noise draws:",
                  flush=True)
            original = objective_module.fine_tune
            synthetic = {label: [] for label, _ in searches}
            try:
                for draw in range(args.synthetic_runs):
                    objective_module.fine_tune = SimulatedFit(draw)
                    for label, changes in searches:
                        config = dataclasses.replace(base, study_name=f"{label} {draw}", **changes).validate()
                        synthetic[label].append(run(config))
                        if draw == 0:
                            show(label, synthetic[label][-1], best)
            finally:
                objective_module.fine_tune = original
            summary["synthetic"] = {
                label: {"trainings": float(np.mean([r["trainings"] for r in runs])),
                        "epochs": float(np.mean([r["epochs"] for r in runs])),
                        "winner_is_best": float(np.mean([r["winner"] == best for r in runs])),
                        "best_in_tied": float(np.mean([best in r["tied"] for r in runs])),
                        "tied_size": float(np.mean([len(r["tied"]) for r in runs]))}
                for label, runs in synthetic.items()
            }
            for label, rates in summary["synthetic"].items():
                print(f"  mean over {args.synthetic_runs}: {label:32s} {rates['trainings']:5.1f} trainings "
                      f"{rates['epochs']:6.1f} epochs, winner is the true best {rates['winner_is_best']:.2f}, "
                      f"true best in the tied set {rates['best_in_tied']:.2f}, tied {rates['tied_size']:.1f}")
    if "real" in summary and SEARCHES[0][0] in summary["real"]:
        one = summary["real"][SEARCHES[0][0]]
        for label, r in summary["real"].items():
            print(f"real cost against the single pass: {label}: x{r['seconds'] / one['seconds']:.2f} wall, "
                  f"x{r['epochs'] / one['epochs']:.2f} epochs")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
