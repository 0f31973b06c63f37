"""The validated configuration of one study: every choice the command line can make."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from study.errors import StudyError

MODELS = ("vgg16", "mobilenet", "mobilenet_v2", "mobilenet_v3_small", "resnet50", "resnet50_v2")
STRATEGIES = ("layer", "block", "window", "topk", "head", "full", "random", "all")
SAMPLERS = ("grid", "tpe", "random")
PRUNERS = ("median", "halving", "hyperband", "none")
DATASETS = ("tf_flowers", "synthetic")
INPUT_SCALINGS = ("model", "unit")
SELECT_ON = ("val", "test")
# Pooling and residual merges end blocks; each backbone may override (study.backbones).
DEFAULT_DELIMITERS = ("MaxPooling2D", "AveragePooling2D", "Add")

# Fields that do not change what a trial computes, so a resumed study may change them freely.
# The prefix cache does not change results (tests hold it to that), so it is run-only too.
RUN_ONLY_FIELDS = ("n_trials", "skip_final", "storage", "study_name", "artifact_dir", "repeats",
                   "prefix_cache", "cache_budget_gb", "workers")


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Everything one study depends on; `validate()` rejects bad values with a one-line error.

    Example:
        >>> config = StudyConfig(dataset="synthetic", weights="none", image_size=32).validate()
        >>> config.name
        'synthetic-mobilenet_v2-block'
    """

    model: str = "mobilenet_v2"
    weights: str = "imagenet"
    dataset: str = "tf_flowers"
    data_dir: str | None = None
    image_size: int = 224
    strategy: str = "block"
    sampler: str = "grid"
    n_trials: int | None = None
    pruner: str = "median"
    pruner_warmup: int = 5
    epochs: int = 50
    batch_size: int = 4
    learning_rate: float = 5e-5
    storage: str = "sqlite:///storage/studies.db"
    artifact_dir: str = "storage/artifacts"
    study_name: str | None = None
    seed: int = 0
    skip_final: bool = False
    repeats: int = 1
    delimiters: tuple[str, ...] | None = None  # None: the backbone's default
    window_size: int = 3
    random_k: int = 3
    random_draws: int = 5
    top_k: int = 3  # topk: how many of the layer-wise study's best layers are tuned together
    test_fraction: float = 0.3
    search_train_fraction: float = 0.1
    search_val_fraction: float = 0.2
    select_on: str = "val"
    input_scaling: str = "model"
    synthetic_size: int = 250
    prefix_cache: bool = True
    cache_budget_gb: float | None = None  # None: half of the memory available at start
    synthetic_classes: int = 5
    workers: int = 1  # processes sharing the study (study.workers), one GPU each if any

    @property
    def dataset_label(self) -> str:
        """Short name of the data source, used in the default study name."""
        if self.data_dir:
            return Path(self.data_dir).resolve().name or "images"
        return self.dataset.replace("tfds:", "").replace("/", "_")

    @property
    def model_label(self) -> str:
        """Short name of the backbone, used in the default study name."""
        return Path(self.model).stem if self.is_model_file else self.model

    @property
    def is_model_file(self) -> bool:
        return self.model.endswith(".keras")

    @property
    def name(self) -> str:
        """The study name: `--study-name`, or `{dataset}-{model}-{strategy}`."""
        # top-k studies of different K must not share a study: K is part of the name.
        strategy = f"top{self.top_k}" if self.strategy == "topk" else self.strategy
        return self.study_name or f"{self.dataset_label}-{self.model_label}-{strategy}"

    def identity(self) -> dict:
        """The fields that decide what a study computes; a resumed study must match them."""
        values = dataclasses.asdict(self)
        for field in RUN_ONLY_FIELDS:
            values.pop(field)
        if self.strategy != "topk":  # K means nothing elsewhere; older studies do not record it
            values.pop("top_k")
        values["delimiters"] = list(self.delimiters) if self.delimiters else None
        if self.data_dir:
            values["data_dir"] = str(Path(self.data_dir).resolve())
        return values

    def differences(self, stored: dict) -> list[str]:
        """Fields where a stored `identity()` differs from this one, as "field: stored -> wanted".

        Example:
            >>> StudyConfig(epochs=3).differences({**StudyConfig().identity()})
            ['epochs: 50 -> 3']
        """
        wanted = self.identity()
        return [f"{k}: {stored.get(k)!r} -> {wanted.get(k)!r}" for k in wanted if stored.get(k) != wanted.get(k)]

    def validate(self) -> "StudyConfig":
        """Return self if every value is usable, else raise StudyError naming the bad one."""
        _check_choice("--strategy", self.strategy, STRATEGIES)
        _check_choice("--sampler", self.sampler, SAMPLERS)
        _check_choice("--pruner", self.pruner, PRUNERS)
        _check_choice("--input-scaling", self.input_scaling, INPUT_SCALINGS)
        _check_choice("--select-on", self.select_on, SELECT_ON)
        if self.strategy == "all" and self.study_name:
            raise StudyError(
                "--study-name cannot be used with --strategy all: each strategy gets its own study, "
                "named {dataset}-{model}-{strategy}"
            )
        if self.is_model_file:
            if not os.path.isfile(self.model):
                raise StudyError(f"--model {self.model}: no such file; give a saved .keras model")
        elif self.model not in MODELS:
            raise StudyError(
                f"--model {self.model!r} is unknown; choose one of {', '.join(MODELS)} "
                "or give a path to a .keras model"
            )
        if self.weights not in ("imagenet", "none") and not os.path.isfile(self.weights):
            raise StudyError(
                f"--weights {self.weights}: no such file; use 'imagenet', 'none' or a weights file"
            )
        if self.data_dir is None and not (
            self.dataset in DATASETS or (self.dataset.startswith("tfds:") and len(self.dataset) > 5)
        ):
            raise StudyError(
                f"--dataset {self.dataset!r} is unknown; use tf_flowers, synthetic, tfds:NAME "
                "or --data-dir DIR"
            )
        for flag, value, low in (
            ("--image-size", self.image_size, 32),
            ("--epochs", self.epochs, 1),
            ("--batch-size", self.batch_size, 1),
            ("--window-size", self.window_size, 1),
            ("--random-k", self.random_k, 1),
            ("--random-draws", self.random_draws, 1),
            ("--repeats", self.repeats, 1),
            ("--top-k", self.top_k, 1),
            ("--pruner-warmup", self.pruner_warmup, 0),
            ("--synthetic-classes", self.synthetic_classes, 2),
            ("--workers", self.workers, 1),
        ):
            if value < low:
                raise StudyError(f"{flag} must be at least {low} (got {value})")
        if self.cache_budget_gb is not None and self.cache_budget_gb < 0:
            raise StudyError(f"--cache-budget-gb must be 0 or more (got {self.cache_budget_gb})")
        if self.n_trials is not None and self.n_trials < 1:
            raise StudyError(f"--n-trials must be at least 1 (got {self.n_trials})")
        if not 0 < self.learning_rate < 1:
            raise StudyError(f"--learning-rate must be between 0 and 1 (got {self.learning_rate})")
        fractions = (self.test_fraction, self.search_train_fraction, self.search_val_fraction)
        if any(not 0 < f < 1 for f in fractions):
            raise StudyError(f"split fractions must each be between 0 and 1 (got {fractions})")
        if self.search_train_fraction + self.search_val_fraction + self.test_fraction > 1 + 1e-9:
            raise StudyError(
                "split fractions do not add up: --search-train-fraction + --search-val-fraction "
                f"+ --test-fraction = {sum(fractions):g} > 1; the first two are drawn from the "
                "pool left after the test split"
            )
        if self.synthetic_size < 4 * self.synthetic_classes:
            raise StudyError(
                f"--synthetic-size {self.synthetic_size} is too small for "
                f"{self.synthetic_classes} classes; use at least {4 * self.synthetic_classes}"
            )
        if self.delimiters is not None and not self.delimiters:
            raise StudyError("--delimiters needs at least one layer class name, e.g. MaxPooling2D")
        return self


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise StudyError(f"{flag} {value!r} is unknown; choose one of {', '.join(choices)}")
