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

from study.config import StudyConfig, class_names
from study.runtime import StudyError, start_up


def make_config(**options) -> StudyConfig:
    """A validated StudyConfig from keyword options. A bad or unknown one raises StudyError with the
    message the command line prints for it (the option named by its flag, e.g. `--epochs`).

    Example:
        >>> make_config(dataset="synthetic", delimiters="MaxPooling2D,Add").delimiters
        ('MaxPooling2D', 'Add')
        >>> make_config(epoch=3)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        study.runtime.StudyError: unknown option 'epoch' (did you mean 'epochs'?); the options are ...
        >>> make_config(epochs="3")
        Traceback (most recent call last):
        study.runtime.StudyError: --epochs must be an integer (got '3')
    """
    fields = [f.name for f in dataclasses.fields(StudyConfig)]
    unknown = [name for name in options if name not in fields]
    if unknown:
        close = difflib.get_close_matches(unknown[0], fields, n=1)
        raise StudyError(f"unknown option {unknown[0]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                         + "; the options are the flags of python -m study.run --help, with _ for -")
    if "delimiters" in options:
        options["delimiters"] = class_names(options["delimiters"])
    return StudyConfig(**options).validate()


def _config(function: str, config, options: dict) -> StudyConfig:
    """The validated configuration of a call: a StudyConfig, or keyword options, never both."""
    if config is None:
        return make_config(**options)
    if not isinstance(config, StudyConfig):
        raise StudyError(f"{function} takes a StudyConfig or keyword options, not {config!r}; "
                         f"pass options by name, e.g. {function}(model='vgg16', epochs=3)")
    if options:
        raise StudyError(f"{function} takes a StudyConfig or keyword options, not both (got a config and "
                         f"{', '.join(options)}); change a config with dataclasses.replace(config, ...)")
    return config.validate()


def _run(config: StudyConfig):
    start_up(0)  # as the command line does: TensorFlow quietly, one GPU with memory growth
    from study.cli._pipeline import run

    return run(config)


def run_study(config: StudyConfig | None = None, **options):
    """Run (or resume) one study and its final stage; returns a `StudyResult` (study.cli's pipeline):
    `.study` (the optuna.Study), `.winner`, `.test_accuracy`, `.final`, `.model_path`.

    Pass a StudyConfig or the options as keywords (not both); progress and the summary print as on
    the command line. Bad options raise StudyError before anything is created, with the command
    line's message. `strategy="all"` is `run_protocol`.

    Example:
        >>> run_study("vgg16")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        study.runtime.StudyError: run_study takes a StudyConfig or keyword options, not 'vgg16'; pass options by name, ...
    """
    config = _config("run_study", config, options)
    if config.strategy == "all":
        raise StudyError("strategy 'all' runs several studies: use study.run_protocol")
    return _run(config)[0]


def run_protocol(config: StudyConfig | None = None, **options) -> list:
    """The paper's whole protocol (`--strategy all`): one StudyResult per study that ran.

    Example:
        >>> run_protocol(strategy="block")
        Traceback (most recent call last):
        study.runtime.StudyError: run_protocol runs strategy 'all', not 'block'; use run_study for one strategy
    """
    config = _config("run_protocol", config, {"strategy": "all", **options} if config is None else options)
    if config.strategy != "all":
        raise StudyError(f"run_protocol runs strategy 'all', not {config.strategy!r}; use run_study for one strategy")
    return _run(config)
