"""`python -m study.run`: the command line. It turns arguments into a StudyConfig and runs it (study.cli's pipeline).

Example:
    python -m study.run --dataset synthetic --weights none --image-size 32 --epochs 5
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from study.runtime import quiet_tensorflow

quiet_tensorflow()  # before anything imports TensorFlow

from study.config import StudyConfig, bounds_text, class_names, flag_of  # noqa: E402
from study.runtime import (  # noqa: E402
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_WRITE_FAILED,
    OneLineParser,
    StudyError,
    WriteError,
    start_up,
)

DESCRIPTION = """\
Find which layers of a pretrained Keras image model to fine-tune for your images: every candidate
group of layers is fine-tuned with a new classifier head on a small search split and scored on a
validation split, as a resumable Optuna study; the winner is then retrained on 70% of the images and
tested on the other 30%. Run the same command again to resume.
"""
EXAMPLES = """\
examples:
  offline demo (synthetic images, random weights, about two minutes on a laptop CPU):
    python -m study.run --dataset synthetic --weights none --image-size 32 --epochs 3
  your own model and photos, layer by layer, 3 repeats of the final stage:
    python -m study.run --model my_model.keras --data-dir photos/ --strategy layer --repeats 3

afterwards (the run ends with these commands for its storage):
  optuna-dashboard sqlite:///storage/studies.db --artifact-dir storage/artifacts
  python -m study.report --output storage/reports/report.html
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one flag per StudyConfig field (its help, default and choices).

    Example:
        >>> "--search-train-fraction" in build_parser().format_help()
        True
    """
    parser = OneLineParser(
        prog="python -m study.run",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for field in dataclasses.fields(StudyConfig):
        meta = field.metadata
        flag = flag_of(field)
        help_text = meta["help"]
        if bounds_text(field):  # what validate accepts, before the default; the error says why a larger value is refused
            words, default_words = help_text.split(" (default:", 1) if "(default:" in help_text else (help_text, None)
            help_text = f"{words} ({bounds_text(field)})" + (f" (default:{default_words}" if default_words else "")
        if "(default:" not in help_text:  # some say their default in words
            # A switch is off unless given (--no-prefix-cache switches the cache off).
            shown = "off" if isinstance(field.default, bool) else "none" if field.default is None else field.default
            help_text += f" (default: {shown})"
        if isinstance(field.default, bool):
            action = "store_false" if field.default else "store_true"
            parser.add_argument(flag, dest=field.name, action=action, help=help_text)
            continue
        kind = {"int": int, "float": float, "int | None": int, "float | None": float}.get(str(field.type), str)
        # Choices are shown here and checked by StudyConfig.validate, which names the flag.
        metavar = "{" + ",".join(meta["choices"]) + "}" if meta.get("choices") else meta.get("metavar")
        parser.add_argument(flag, dest=field.name, type=kind, default=field.default, metavar=metavar, help=help_text)
    return parser


def parse_args(argv: list[str] | None = None) -> StudyConfig:
    """Command-line arguments to a validated StudyConfig (StudyError on bad values).

    Example:
        >>> parse_args(["--dataset", "synthetic", "--epochs", "3"]).epochs
        3
    """
    args = vars(build_parser().parse_args(argv))
    return StudyConfig(**{**args, "delimiters": class_names(args["delimiters"])}).validate()


def main(argv: list[str] | None = None) -> int:
    """Run the search and, unless skipped or unfinished, the final stage. Returns the exit code."""
    config = None
    try:
        config = parse_args(argv)
        start_up(0)  # TensorFlow quietly, one GPU with memory growth; --help and bad flags never load it
        from study.cli._pipeline import run

        run(config)
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except WriteError as error:  # a full disk midway: finished trials are kept (study.storage's recovery)
        print(f"error: {error}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    except KeyboardInterrupt:
        from study.storage import interruption_note

        print("\n" + interruption_note(config, sys.argv[1:] if argv is None else argv), file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
