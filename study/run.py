"""`python -m study.run`: the command line. It turns arguments into a StudyConfig and runs it.

Example:
    python -m study.run --dataset synthetic --weights none --image-size 32 --epochs 5
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from study.config import PRUNERS, SAMPLERS, STRATEGIES, StudyConfig  # noqa: E402
from study.errors import StudyError  # noqa: E402

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise StudyError(f"{message} (see --help)")


def parse_args(argv: list[str] | None = None) -> StudyConfig:
    """Command-line arguments to a validated StudyConfig (StudyError on bad values)."""
    defaults = StudyConfig()
    parser = _OneLineParser(prog="python -m study.run", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--model", default=defaults.model, help="backbone name or path to a .keras model")
    add("--weights", default=defaults.weights, help="imagenet, none, or a weights file")
    add("--dataset", default=defaults.dataset, help="tf_flowers, synthetic, or tfds:NAME")
    add("--data-dir", help="folder of class sub-folders of images (replaces --dataset)")
    add("--image-size", type=int, default=defaults.image_size, help="square input size in pixels")
    add("--strategy", default=defaults.strategy, help=", ".join(STRATEGIES))
    add("--sampler", default=defaults.sampler, help=", ".join(SAMPLERS))
    add("--n-trials", type=int, help="trials to run now (grid: at most the candidates left)")
    add("--pruner", default=defaults.pruner, help=", ".join(PRUNERS))
    add("--pruner-warmup", type=int, default=defaults.pruner_warmup, help="epochs before pruning")
    add("--epochs", type=int, default=defaults.epochs)
    add("--batch-size", type=int, default=defaults.batch_size)
    add("--learning-rate", type=float, default=defaults.learning_rate)
    add("--storage", default=defaults.storage, help="Optuna storage URL")
    add("--artifact-dir", default=defaults.artifact_dir, help="where saved models go")
    add("--study-name", help="default: {dataset}-{model}-{strategy}")
    add("--seed", type=int, default=defaults.seed)
    add("--skip-final", action="store_true", help="search only, no final stage")
    add("--repeats", type=int, default=defaults.repeats, help="final-stage seeds")
    add("--top-k", type=int, default=defaults.top_k, help="topk: best layers of the layer-wise study")
    add("--delimiters", help="layer classes that end a block, comma-separated (default: per model)")
    add("--window-size", type=int, default=defaults.window_size)
    add("--random-k", type=int, default=defaults.random_k, help="layers per random candidate")
    add("--random-draws", type=int, default=defaults.random_draws, help="random candidates")
    add("--test-fraction", type=float, default=defaults.test_fraction)
    add("--search-train-fraction", type=float, default=defaults.search_train_fraction)
    add("--search-val-fraction", type=float, default=defaults.search_val_fraction)
    add("--select-on", default=defaults.select_on, help="val (default) or test (as the paper)")
    add("--input-scaling", default=defaults.input_scaling, help="model (default) or unit (0..1)")
    add("--synthetic-size", type=int, default=defaults.synthetic_size, help="synthetic images")
    add("--synthetic-classes", type=int, default=defaults.synthetic_classes)
    add("--workers", type=int, default=defaults.workers, help="processes sharing the study (one GPU each)")
    add("--no-prefix-cache", dest="prefix_cache", action="store_false",
        help="recompute the frozen layers every epoch (the plain way)")
    add("--cache-budget-gb", type=float, help="memory for cached activations (default: half of free RAM)")
    args = vars(parser.parse_args(argv))
    if args["delimiters"] is not None:
        args["delimiters"] = tuple(n.strip() for n in args["delimiters"].split(",") if n.strip())
    return StudyConfig(**args).validate()


def main(argv: list[str] | None = None) -> int:
    """Run the search and, unless skipped or unfinished, the final stage. Returns the exit code."""
    config = None
    try:
        config = parse_args(argv)
        _quiet_libraries()
        from study.devices import pin_worker

        pin_worker(0)  # before any model: memory growth on, one GPU (workers pin their own)
        from study.dashboard import publish
        from study.final import run_final
        from study.protocol import run_protocol
        from study.search import run_search

        if config.strategy == "all":
            run_protocol(config)
            return 0
        outcome = run_search(config)
        if outcome.left:
            print(f"search unfinished: {len(outcome.left)} candidate(s) left; run the same command to continue")
        elif not config.skip_final:
            run_final(config, outcome)
        publish([outcome.study], config.artifact_dir)  # the optuna-dashboard note and figures
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        from study.recovery import interruption_note

        print("\n" + interruption_note(config, sys.argv[1:] if argv is None else argv), file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _quiet_libraries() -> None:
    """Our own one line per trial replaces Optuna's log; experimental-API notices are not news."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


if __name__ == "__main__":
    sys.exit(main())
