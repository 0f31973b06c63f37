"""The validated configuration of one study: every choice the command line can make."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from study.runtime import StudyError

# The paper's six backbones (Table I); study.inputs.BACKBONES has every keras.applications one.
MODELS = ("vgg16", "mobilenet", "mobilenet_v2", "mobilenet_v3_small", "resnet50", "resnet50_v2")
DATASETS = ("tf_flowers", "synthetic")
# The strategies of --strategy (the CLI contract); study.candidates.STRATEGIES says how each makes its
# candidates and holds exactly these keys (tests/test_candidates.py).
STRATEGY_NAMES = ("head", "full", "layer", "block", "window", "topk", "random", "lpft", "autorgn", "greedy")
PER_EPOCH_PRUNERS = ("median", "halving", "hyperband")  # judge one training curve, epoch by epoch
# Pooling and residual merges end blocks; each backbone may override (study.inputs.BACKBONES).
DEFAULT_DELIMITERS = ("MaxPooling2D", "AveragePooling2D", "Add")

# Fields that do not change what a trial computes, so a resumed study may change them freely.
# The prefix cache does not change results (tests hold it to that), so it is run-only too.
# --select changes only which candidate the final stage retrains, never a trial.
RUN_ONLY_FIELDS = ("n_trials", "skip_final", "storage", "study_name", "artifact_dir", "repeats",
                   "prefix_cache", "cache_budget_gb", "workers", "select")
SELECT_RULES = ("best", "simplest")


def _option(default, help: str, *, flag: str | None = None, choices: tuple | None = None,
            metavar: str | None = None, minimum: int | None = None):
    """A configuration field with what the command line needs to offer it (study.run builds the parser)
    and the checks `validate` makes (its choices, its minimum)."""
    return dataclasses.field(
        default=default,
        metadata={"help": help, "flag": flag, "choices": choices, "metavar": metavar, "minimum": minimum},
    )


def parse_delimiters(text: str) -> tuple[str, ...]:
    """`--delimiters` as given on the command line or to the Python API: comma-separated class names.

    Example:
        >>> parse_delimiters("MaxPooling2D, Add,")
        ('MaxPooling2D', 'Add')
    """
    return tuple(name.strip() for name in text.split(",") if name.strip())


def choices(field: str) -> tuple:
    """The allowed values of a field that has a fixed set of them.

    Example:
        >>> choices("sampler")
        ('grid', 'tpe', 'random')
    """
    return next(f for f in dataclasses.fields(StudyConfig) if f.name == field).metadata["choices"]


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Everything one study depends on; `validate()` rejects bad values with a one-line error.

    Example:
        >>> config = StudyConfig(dataset="synthetic", weights="none", image_size=32).validate()
        >>> config.name
        'synthetic-mobilenet_v2-block'
    """

    model: str = _option("mobilenet_v2", "backbone: a keras.applications name or a saved .keras model",
                         metavar="NAME|PATH")
    features_layer: str | None = _option(None, "a saved model with its classifier still on top: the layer whose "
                                               "output feeds the new head", metavar="NAME")
    weights: str = _option("imagenet", "'imagenet', 'none' (random), or a weights file", metavar="imagenet|none|PATH")
    dataset: str = _option("tf_flowers", "tf_flowers, synthetic (built in, offline) or tfds:NAME", metavar="NAME")
    data_dir: str | None = _option(None, "a folder with one sub-folder of images per class (replaces --dataset)",
                                   metavar="DIR")
    image_size: int = _option(224, "square input size in pixels (at least 32)", metavar="PX", minimum=32)
    strategy: str = _option("block", "which layer groups to search ('all': the paper's whole protocol)",
                            choices=(*STRATEGY_NAMES, "all"))
    sampler: str = _option("grid", "grid: every candidate once, output end first; tpe/random: Optuna's",
                           choices=("grid", "tpe", "random"))
    n_trials: int | None = _option(None, "trials to run now (default: grid: every candidate left; "
                                         "tpe/random: as many as candidates)", metavar="N")
    search_repeats: int = _option(3, "trainings per candidate, each on its own paired draw of the search splits and "
                                     "its own seed (1: the paper's single training)", metavar="K", minimum=1)
    pruner: str = _option("race", "how hopeless candidates stop early: race (paired t-test across repeats), or "
                                  "per epoch (median, halving, hyperband: only with --search-repeats 1)",
                          choices=("race", "median", "halving", "hyperband", "none"))
    race_alpha: float = _option(0.05, "race and tied set: the chance of stopping, or leaving out of the tied set, "
                                      "the truly best candidate (Bonferroni over the comparisons)",
                                metavar="ALPHA")
    pruner_warmup: int = _option(5, "epochs of evidence a trial gets before it may be pruned", metavar="EPOCHS", minimum=0)
    epochs: int = _option(50, "training epochs per trial and in the final stage", metavar="N", minimum=1)
    batch_size: int = _option(4, "images per training step", metavar="N", minimum=1)
    learning_rate: float = _option(5e-5, "Adam's learning rate", metavar="LR")
    storage: str = _option("sqlite:///storage/studies.db", "any Optuna (SQLAlchemy) storage URL", metavar="URL")
    artifact_dir: str = _option("storage/artifacts", "where saved models and figures go (Optuna artifact store)",
                                metavar="DIR")
    study_name: str | None = _option(None, "study to create or resume (default: {dataset}-{model}-{strategy})",
                                     metavar="NAME")
    seed: int = _option(0, "seeds the splits, the sampler, the synthetic data and training", metavar="N", minimum=0)
    skip_final: bool = _option(False, "search only: no final stage")
    repeats: int = _option(1, "final stage: retrain the winner with this many seeds", metavar="N", minimum=1)
    delimiters: tuple[str, ...] | None = _option(None, "layer classes that end a block, comma-separated "
                                                       "(default: per model, see README)", metavar="CLASS,...")
    window_size: int = _option(3, "window strategy: weighted layers per sliding window", metavar="N", minimum=1)
    random_k: int = _option(3, "random strategy: layers per candidate", metavar="K", minimum=1)
    random_draws: int = _option(5, "random strategy: number of candidates", metavar="N", minimum=1)
    top_k: int = _option(3, "topk strategy: how many of the layer-wise study's best layers to tune together",
                         metavar="K", minimum=1)
    greedy_margin: float = _option(0.01, "greedy strategy: stop when the best addition improves the mean validation "
                                         "accuracy by no more than this", metavar="M")
    test_fraction: float = _option(0.3, "test split, fraction of every class", metavar="F")
    search_train_fraction: float = _option(0.1, "search-train split, fraction of every class (from the pool)",
                                           metavar="F")
    search_val_fraction: float = _option(0.2, "search-val split, fraction of every class (from the pool)",
                                         metavar="F")
    select: str = _option("best", "final stage: retrain the best mean (best, the paper's) or the candidate with the "
                                  "fewest trainable parameters among those statistically tied with it (simplest)",
                          choices=SELECT_RULES)
    select_on: str = _option("val", "the split the search selects on (test: the paper's choice, leaks the test "
                                    "split)", choices=("val", "test"))
    input_scaling: str = _option("model", "model: the backbone's own preprocess_input (a saved model: raw pixels if it "
                                          "scales inside, else 0..1); unit: the paper's 0..1; raw, tf, caffe, torch: "
                                          "force that keras.applications mode",
                                 choices=("model", "unit", "raw", "tf", "caffe", "torch"))
    synthetic_size: int = _option(250, "synthetic data set: number of images", metavar="N")
    prefix_cache: bool = _option(True, "recompute the frozen layers every epoch, the plain way, instead of caching their "
                                       "outputs once per split",
                                 flag="--no-prefix-cache")
    cache_budget_gb: float | None = _option(None, "memory for cached prefix activations (default: half of the "
                                                  "free memory)", metavar="GB")
    synthetic_classes: int = _option(5, "synthetic data set: number of classes", metavar="N", minimum=2)
    workers: int = _option(1, "processes sharing the study (one GPU each when there are GPUs)", metavar="N", minimum=1)

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
        if self.strategy != "greedy":  # the same for the greedy margin
            values.pop("greedy_margin")
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
        for field in dataclasses.fields(self):
            if field.metadata.get("choices"):
                _check_choice(f"--{field.name.replace('_', '-')}", getattr(self, field.name), field.metadata["choices"])
        if self.strategy == "all" and self.study_name:
            raise StudyError(
                "--study-name cannot be used with --strategy all: each strategy gets its own study, "
                "named {dataset}-{model}-{strategy}"
            )
        if self.is_model_file and not os.path.isfile(self.model):
            raise StudyError(f"--model {self.model}: no such file; give a saved .keras model")
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
        for field in dataclasses.fields(self):
            low, value = field.metadata.get("minimum"), getattr(self, field.name)
            if low is not None and value < low:
                raise StudyError(f"--{field.name.replace('_', '-')} must be at least {low} (got {value})")
        if self.search_repeats > 1 and self.pruner in PER_EPOCH_PRUNERS:
            raise StudyError(
                f"--pruner {self.pruner} stops a training by its epochs, which --search-repeats "
                f"{self.search_repeats} does not have one of; use --pruner race or none, or --search-repeats 1"
            )
        if self.strategy == "greedy" and self.sampler != "grid":
            raise StudyError(f"--strategy greedy trains its rounds in order with the grid sampler, not --sampler "
                             f"{self.sampler}; leave --sampler out")
        if not 0 <= self.greedy_margin < 1:
            raise StudyError(f"--greedy-margin must be at least 0 and below 1 (got {self.greedy_margin})")
        if not 0 < self.race_alpha < 0.5:
            raise StudyError(f"--race-alpha must be between 0 and 0.5 (got {self.race_alpha})")
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
