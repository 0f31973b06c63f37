"""The Python API for notebooks and scripts: the same run as `python -m study.run`, from keyword
arguments named like StudyConfig's fields (the flags without `--`, `_` for `-`).

Example:
    >>> from study import run_study
    >>> result = run_study(dataset="synthetic", weights="none", image_size=32, epochs=2,
    ...                    storage="sqlite:///storage/demo.db")  # doctest: +SKIP
    >>> result.winner, result.test_accuracy  # doctest: +SKIP
    ('block-11:block_16_expand..block_16_project', 0.4)
    >>> result.study.trials_dataframe()[["number", "value", "params_candidate"]]  # doctest: +SKIP
    >>> run_protocol(dataset="synthetic", weights="none", image_size=32, epochs=2)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import difflib

from study.config import StudyConfig, parse_delimiters
from study.runtime import StudyError, start_up


def make_config(**options) -> StudyConfig:
    """A validated StudyConfig from keyword options (StudyError names a bad or unknown one).

    Example:
        >>> make_config(dataset="synthetic", delimiters="MaxPooling2D,Add").delimiters
        ('MaxPooling2D', 'Add')
        >>> make_config(epoch=3)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        study.runtime.StudyError: unknown option 'epoch' (did you mean 'epochs'?); the options are ...
    """
    fields = [f.name for f in dataclasses.fields(StudyConfig)]
    unknown = [name for name in options if name not in fields]
    if unknown:
        close = difflib.get_close_matches(unknown[0], fields, n=1)
        raise StudyError(f"unknown option {unknown[0]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                         + "; the options are the flags of python -m study.run --help, with _ for -")
    if isinstance(options.get("delimiters"), str):
        options["delimiters"] = parse_delimiters(options["delimiters"])
    return StudyConfig(**options).validate()


def _run(config: StudyConfig):
    start_up(0)  # as the command line does: TensorFlow quietly, one GPU with memory growth
    from study.cli._pipeline import run

    return run(config)


def run_study(config: StudyConfig | None = None, **options):
    """Run (or resume) one study and its final stage; returns a `study.cli.StudyResult`:
    `.study` (the optuna.Study), `.winner`, `.test_accuracy`, `.final`, `.model_path`.

    Pass a StudyConfig or the options as keywords; progress and the summary print as on the
    command line. `strategy="all"` is `run_protocol`.
    """
    config = config or make_config(**options)
    if config.strategy == "all":
        raise StudyError("strategy 'all' runs several studies: use study.run_protocol")
    return _run(config)[0]


def run_protocol(config: StudyConfig | None = None, **options) -> list:
    """The paper's whole protocol (`--strategy all`): one StudyResult per study that ran."""
    config = config or make_config(**{**options, "strategy": "all"})
    return _run(config)
