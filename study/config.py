"""The validated configuration of one study: every choice the command line can make."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from pathlib import Path

from study.runtime import StudyError, images_fit, memory_bytes, process_local

# The paper's six backbones (Table I); study.inputs.BACKBONES has every keras.applications one.
MODELS = ("vgg16", "mobilenet", "mobilenet_v2", "mobilenet_v3_small", "resnet50", "resnet50_v2")
DATASETS = ("tf_flowers", "synthetic")
# The strategies of --strategy (the CLI contract); study.candidates.STRATEGIES says how each makes its
# candidates and holds exactly these keys (tests/test_candidates.py).
STRATEGY_NAMES = ("head", "full", "layer", "block", "window", "topk", "random", "lpft", "autorgn", "greedy")
PER_EPOCH_PRUNERS = ("median", "halving", "hyperband")  # judge one training curve, epoch by epoch
# Pooling and residual merges end blocks; each backbone may override (study.inputs.BACKBONES).
DEFAULT_DELIMITERS = ("MaxPooling2D", "AveragePooling2D", "Add")

# Keras 2's whole-model files: the tool reads the .keras format only; one load and save converts them.
LEGACY_MODEL_SUFFIXES = (".h5", ".hdf5")

# Fields that do not change what a trial computes, so a resumed study may change them freely.
# The prefix cache does not change results (tests hold it to that), so it is run-only too.
# --select changes only which candidate the final stage retrains, never a trial.
RUN_ONLY_FIELDS = ("n_trials", "skip_final", "storage", "study_name", "artifact_dir", "repeats",
                   "prefix_cache", "cache_budget_gb", "workers", "select")
SELECT_RULES = ("best", "simplest")


def _option(default, help: str, *, flag: str | None = None, choices: tuple | None = None,
            metavar: str | None = None, minimum: float | None = None, maximum: float | None = None,
            why: str | None = None, between: tuple[float, float] | None = None):
    """A configuration field with what the command line needs to offer it (study.run builds the parser)
    and the checks `validate` makes: its declared type, its choices, its bounds (`minimum` and
    `maximum` inclusive, `why` the reason for the maximum; `between` an open interval)."""
    return dataclasses.field(
        default=default,
        metadata={"help": help, "flag": flag, "choices": choices, "metavar": metavar, "minimum": minimum,
                  "maximum": maximum, "why": why, "between": between},
    )


MEMORY_GB = memory_bytes() // 2**30
SEED_MAX = 2**32 - 1  # numpy's (np.random.seed, keras.utils.set_random_seed)
TIME = "more is weeks of training"  # the reason for the bounds of counts that multiply the work
LAYER_COUNT = "no backbone has that many weighted layers"


def class_names(value):
    """`--delimiters` as given (comma-separated text, or a list or tuple of names) as the tuple
    StudyConfig holds; anything else is returned as it is, for `validate` to refuse by name.

    Example:
        >>> class_names("MaxPooling2D, Add"), class_names(["Add"]), class_names(3)
        (('MaxPooling2D', 'Add'), ('Add',), 3)
    """
    if isinstance(value, str):
        return tuple(name.strip() for name in value.split(",") if name.strip())
    if isinstance(value, list):
        return tuple(value)
    return value


def study_key(strategy: str, top_k: int) -> str:
    """The strategy as it names a study and a Table I column: `top3` for top-k with K=3.

    Example:
        >>> study_key("topk", 5), study_key("block", 5)
        ('top5', 'block')
    """
    return f"top{top_k}" if strategy == "topk" else strategy


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
    image_size: int = _option(224, "square input size in pixels", metavar="PX", minimum=32, maximum=1024,
                              why="every image is held in memory at this size (3 MiB each at 1024 px)")
    strategy: str = _option("block", "which layer groups to search ('all': the paper's whole protocol)",
                            choices=(*STRATEGY_NAMES, "all"))
    sampler: str = _option("grid", "grid: every candidate once, output end first; tpe/random: Optuna's",
                           choices=("grid", "tpe", "random"))
    n_trials: int | None = _option(None, "trials to run now (default: grid: every candidate left; "
                                         "tpe/random: as many as candidates)", metavar="N",
                                minimum=1, maximum=100_000, why=f"each trial is a training; {TIME}")
    search_repeats: int = _option(3, "trainings per candidate, each on its own paired draw of the search splits and "
                                     "its own seed (1: the paper's single training)", metavar="K", minimum=1,
                                 maximum=100, why=f"every candidate is trained this many times; {TIME}")
    pruner: str = _option("race", "how hopeless candidates stop early: race (paired t-test across repeats), or "
                                  "per epoch (median, halving, hyperband: only with --search-repeats 1)",
                          choices=("race", "median", "halving", "hyperband", "none"))
    search_order: str = _option("rounds", "rounds: every candidate gets repeat r before any gets repeat r+1, output end "
                                          "first within a round (F-Race; grid sampler, more than one repeat); by-candidate: "
                                          "each candidate's repeats back to back", choices=("rounds", "by-candidate"))
    race_alpha: float = _option(0.05, "race and tied set: the chance of stopping, or leaving out of the tied set, "
                                      "the truly best candidate (Bonferroni over the comparisons)",
                                metavar="ALPHA", between=(0, 0.5))
    pruner_warmup: int = _option(5, "epochs of evidence a trial gets before it may be pruned", metavar="EPOCHS",
                                 minimum=0, maximum=10_000, why="it counts epochs, which --epochs bounds")
    epochs: int = _option(50, "training epochs in the final stage, and the most a search repeat trains "
                              "(all of them with --fixed-epochs or --search-repeats 1)", metavar="N", minimum=1,
                          maximum=10_000, why=f"every trial trains this many epochs; {TIME}")
    fixed_epochs: bool = _option(False, "train every search repeat for all --epochs (the paper's protocol), instead of "
                                        "stopping it once its validation accuracy has settled (--patience, --min-delta)")
    patience: int = _option(10, "a search repeat stops after this many epochs without a new best validation accuracy "
                                "(more than --min-delta above the best so far)", metavar="EPOCHS", minimum=1,
                            maximum=10_000, why="it counts epochs, which --epochs bounds")
    min_delta: float = _option(0.01, "the least rise of validation accuracy that counts as progress for --patience "
                                     "(at least 0, below 1)", metavar="ACC")
    batch_size: int = _option(4, "images per training step", metavar="N", minimum=1, maximum=4096,
                              why="a batch and its activations are held in device memory at once")
    learning_rate: float = _option(5e-5, "Adam's learning rate", metavar="LR", between=(0, 1))
    storage: str = _option("sqlite:///storage/studies.db", "any Optuna (SQLAlchemy) storage URL", metavar="URL")
    artifact_dir: str = _option("storage/artifacts", "where saved models and figures go (Optuna artifact store)",
                                metavar="DIR")
    study_name: str | None = _option(None, "study to create or resume (default: {dataset}-{model}-{strategy})",
                                     metavar="NAME")
    seed: int = _option(0, "seeds the splits, the sampler, the synthetic data and training", metavar="N", minimum=0,
                        maximum=SEED_MAX, why="numpy's seed range is 0 to 2**32-1")
    skip_final: bool = _option(False, "search only: no final stage")
    repeats: int = _option(1, "final stage: retrain the winner with this many seeds", metavar="N", minimum=1,
                           maximum=1000, why=f"the final stage trains once per seed; {TIME}")
    delimiters: tuple[str, ...] | None = _option(None, "layer classes that end a block, comma-separated "
                                                       "(default: per model, see docs/models.md)", metavar="CLASS,...")
    window_size: int = _option(3, "window strategy: weighted layers per sliding window", metavar="N", minimum=1,
                               maximum=10_000, why=LAYER_COUNT)
    random_k: int = _option(3, "random strategy: layers per candidate", metavar="K", minimum=1,
                            maximum=10_000, why=LAYER_COUNT)
    random_draws: int = _option(5, "random strategy: number of candidates", metavar="N", minimum=1,
                                maximum=10_000, why=f"each draw is a candidate to train; {TIME}")
    top_k: int = _option(3, "topk strategy: how many of the layer-wise study's best layers to tune together",
                         metavar="K", minimum=1, maximum=10_000, why=LAYER_COUNT)
    greedy_margin: float = _option(0.01, "greedy strategy: stop when the best addition improves the mean validation "
                                         "accuracy by no more than this (at least 0, below 1)", metavar="M")
    test_fraction: float = _option(0.3, "test split, fraction of every class", metavar="F", between=(0, 1))
    search_train_fraction: float = _option(0.1, "search-train split, fraction of every class (from the pool)",
                                           metavar="F", between=(0, 1))
    search_val_fraction: float = _option(0.2, "search-val split, fraction of every class (from the pool)",
                                         metavar="F", between=(0, 1))
    select: str = _option("best", "final stage: retrain the best mean (best, the paper's) or the candidate with the "
                                  "fewest trainable parameters among those statistically tied with it (simplest)",
                          choices=SELECT_RULES)
    select_on: str = _option("val", "the split the search selects on (test: the paper's choice, leaks the test "
                                    "split)", choices=("val", "test"))
    input_scaling: str = _option("model", "model: the backbone's own preprocess_input (a saved model: raw pixels if it "
                                          "scales inside, else 0..1); unit: the paper's 0..1; raw, tf, caffe, torch: "
                                          "force that keras.applications mode",
                                 choices=("model", "unit", "raw", "tf", "caffe", "torch"))
    synthetic_size: int = _option(250, "synthetic data set: number of images", metavar="N",
                                  maximum=1_000_000, why="every image is held in memory")
    prefix_cache: bool = _option(True, "recompute the frozen layers every epoch, the plain way, instead of caching their "
                                       "outputs once per split",
                                 flag="--no-prefix-cache")
    cache_budget_gb: float | None = _option(None, "memory for cached prefix activations (default: half of the "
                                                  "free memory)", metavar="GB", minimum=0, maximum=MEMORY_GB,
                                         why="that is this machine's memory")
    synthetic_classes: int = _option(5, "synthetic data set: number of classes", metavar="N", minimum=2,
                                     maximum=1000, why="more generated classes are too alike to tell apart")
    workers: int = _option(1, "processes sharing the study (one GPU each when there are GPUs)", metavar="N", minimum=1,
                           maximum=64, why="each worker is a process with its own TensorFlow and copy of the images")

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
        return self.study_name or f"{self.dataset_label}-{self.model_label}-{study_key(self.strategy, self.top_k)}"

    @property
    def stops_early(self) -> bool:
        """Whether a search repeat stops once its validation accuracy has settled (Keras's EarlyStopping,
        `--patience`, `--min-delta`), `--epochs` being the cap. Never with one repeat (the paper's
        protocol) or `--fixed-epochs`; the final stage, which has no validation split, always trains
        `--epochs`.

        Example:
            >>> StudyConfig().stops_early, StudyConfig(search_repeats=1).stops_early
            (True, False)
        """
        return self.search_repeats > 1 and not self.fixed_epochs

    @property
    def in_rounds(self) -> bool:
        """Whether the search trains in rounds (`--search-order rounds` with the grid sampler and more
        than one repeat); otherwise candidate by candidate, each with its repeats back to back.

        Example:
            >>> StudyConfig().in_rounds, StudyConfig(sampler="tpe").in_rounds, StudyConfig(search_repeats=1).in_rounds
            (True, False, False)
        """
        return self.search_order == "rounds" and self.sampler == "grid" and self.search_repeats > 1

    def identity(self) -> dict:
        """The fields that decide what a study computes; a resumed study must match them."""
        values = dataclasses.asdict(self)
        for field in RUN_ONLY_FIELDS:
            values.pop(field)
        if self.strategy != "topk":  # K means nothing to the other strategies: it does not tell their studies apart
            values.pop("top_k")
        if not self.in_rounds:  # candidate by candidate: the order of studies made before rounds existed
            values.pop("search_order")
        if not self.stops_early:  # fixed epochs: the protocol of studies made before early stopping existed
            for field in ("fixed_epochs", "patience", "min_delta"):
                values.pop(field)
        if self.strategy != "greedy":  # the margin means nothing to the other strategies
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
        """This configuration if every value is usable (numbers of numpy's types as plain int and
        float), else a StudyError naming the bad one the way the command line does (`--epochs`).

        Every value is checked against its field's declared type, choices and bounds, so the command
        line and the Python API (study.cli) refuse the same things with the same words.

        Example:
            >>> StudyConfig(epochs="3").validate()
            Traceback (most recent call last):
            study.runtime.StudyError: --epochs must be an integer (got '3')
            >>> StudyConfig(seed=2**32).validate()
            Traceback (most recent call last):
            study.runtime.StudyError: --seed must be at most 4294967295 (got 4294967296): numpy's seed range is 0 to 2**32-1
        """
        plain = {field.name: _checked_type(field, getattr(self, field.name)) for field in dataclasses.fields(self)}
        config = self if all(plain[k] is getattr(self, k) for k in plain) else dataclasses.replace(self, **plain)
        config._check_values()
        return config

    def _check_values(self) -> None:
        for field in dataclasses.fields(self):
            if field.metadata.get("choices"):
                _check_choice(flag_of(field), getattr(self, field.name), field.metadata["choices"])
        for field in dataclasses.fields(self):
            _check_bounds(field, getattr(self, field.name))
        if self.strategy == "all" and self.study_name:
            raise StudyError(
                "--study-name cannot be used with --strategy all: each strategy gets its own study, "
                "named {dataset}-{model}-{strategy}"
            )
        _check_model_path(self.model)
        if self.weights not in ("imagenet", "none") and not os.path.isfile(self.weights):
            what = "is a folder" if os.path.isdir(self.weights) else "no such file"
            raise StudyError(f"--weights {self.weights}: {what}; use 'imagenet', 'none' or a weights file")
        if self.data_dir is None and not (
            self.dataset in DATASETS or (self.dataset.startswith("tfds:") and len(self.dataset) > 5)
        ):
            raise StudyError(
                f"--dataset {self.dataset!r} is unknown; use tf_flowers, synthetic, tfds:NAME "
                "or --data-dir DIR"
            )
        if self.search_repeats > 1 and self.pruner in PER_EPOCH_PRUNERS:
            raise StudyError(
                f"--pruner {self.pruner} stops a training by its epochs, which --search-repeats "
                f"{self.search_repeats} does not have one of; use --pruner race or none, or --search-repeats 1"
            )
        trainings = max(self.search_repeats, self.repeats)  # repeat r trains with seed + r
        if self.seed + trainings - 1 > SEED_MAX:
            raise StudyError(
                f"--seed {self.seed} with {trainings} repeats trains with seeds up to {self.seed + trainings - 1}, "
                f"over numpy's seed range (0 to 2**32-1); use --seed {SEED_MAX + 1 - trainings} or less"
            )
        if not 0 <= self.min_delta < 1:  # NaN fails this too
            raise StudyError(f"--min-delta must be at least 0 and below 1, an accuracy (got {self.min_delta})")
        if self.strategy == "greedy" and self.sampler != "grid":
            raise StudyError(f"--strategy greedy trains its rounds in order with the grid sampler, not --sampler "
                             f"{self.sampler}; leave --sampler out")
        if not 0 <= self.greedy_margin < 1:
            raise StudyError(f"--greedy-margin must be at least 0 and below 1 (got {self.greedy_margin})")
        fractions = (self.test_fraction, self.search_train_fraction, self.search_val_fraction)
        if self.search_train_fraction + self.search_val_fraction + self.test_fraction > 1 + 1e-9:
            raise StudyError(
                "split fractions do not add up: --search-train-fraction + --search-val-fraction "
                f"+ --test-fraction = {sum(fractions):g} > 1; the first two are drawn from the "
                "pool left after the test split"
            )
        if self.data_dir is None and self.dataset == "synthetic":
            if self.synthetic_size < 4 * self.synthetic_classes:
                raise StudyError(
                    f"--synthetic-size {self.synthetic_size} is too small for "
                    f"{self.synthetic_classes} classes; use at least {4 * self.synthetic_classes}"
                )
            images_fit(self.synthetic_size, self.image_size, f"--synthetic-size {self.synthetic_size}")
        if self.delimiters is not None and not self.delimiters:
            raise StudyError("--delimiters needs at least one layer class name, e.g. MaxPooling2D")
        if self.workers > 1:
            if process_local(self.storage):
                raise StudyError(
                    f"--workers {self.workers} needs a storage the worker processes can share; "
                    f"{self.storage} lives inside one process; use a file, e.g. sqlite:///storage/studies.db"
                )


def flag_of(field: dataclasses.Field) -> str:
    """The command-line flag of a field, the name its errors use (on the command line and in the API).

    Example:
        >>> flag_of(next(f for f in dataclasses.fields(StudyConfig) if f.name == "prefix_cache"))
        '--no-prefix-cache'
    """
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


# What each declared type accepts, in the words of the error.
_KINDS = {
    "int": ("an integer", lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "bool": ("True or False", lambda v: isinstance(v, bool)),
    "tuple[str, ...]": ("layer class names (comma-separated text or a tuple of strings)",
                        lambda v: isinstance(v, tuple) and all(isinstance(n, str) for n in v)),
}


def _checked_type(field: dataclasses.Field, value):
    """`value` if it has the field's declared type (a numpy number as a plain int or float), else a StudyError."""
    kind = str(field.type)
    optional = kind.endswith(" | None")
    kind = kind.removesuffix(" | None")
    words, accepts = _KINDS[kind]
    if value is None and optional:
        return value
    if not accepts(value):
        raise StudyError(f"{flag_of(field)} must be {words}{' or None' if optional else ''} (got {value!r})")
    if kind == "int" and type(value) is not int:
        return int(value)
    if kind == "float":
        if not math.isfinite(value):
            raise StudyError(f"{flag_of(field)} must be a finite number (got {value!r})")
        return value if type(value) is float else float(value)
    return value


def _check_bounds(field: dataclasses.Field, value) -> None:
    meta = field.metadata
    if value is None:
        return
    low, high, between = meta.get("minimum"), meta.get("maximum"), meta.get("between")
    if low is not None and value < low:
        raise StudyError(f"{flag_of(field)} must be at least {low} (got {value})")
    if high is not None and value > high:
        raise StudyError(f"{flag_of(field)} must be at most {high} (got {value}): {meta['why']}")
    if between is not None and not between[0] < value < between[1]:
        raise StudyError(f"{flag_of(field)} must be between {between[0]} and {between[1]} (got {value})")


def bounds_text(field: dataclasses.Field) -> str | None:
    """The bounds of a field as `--help` states them, with its metavar: `1 <= N <= 10000`, `0 < LR < 1`.

    Example:
        >>> bounds_text(next(f for f in dataclasses.fields(StudyConfig) if f.name == "image_size"))
        '32 <= PX <= 1024'
    """
    meta = field.metadata
    name = meta.get("metavar") or "N"
    if meta.get("between"):
        return f"{meta['between'][0]} < {name} < {meta['between'][1]}"
    low, high = meta.get("minimum"), meta.get("maximum")
    if low is None and high is None:
        return None
    return " <= ".join(str(part) for part in (low, name, high) if part is not None)


def _check_model_path(model: str) -> None:
    """Refuse a `--model` that is meant as a path (a separator or a model suffix in it) but is not a
    .keras file, saying what it is instead: a folder, nothing, a legacy HDF5 model, another file.

    Example:
        >>> _check_model_path("vgg16")  # a keras.applications name: study.inputs checks it
        >>> _check_model_path("old/model.h5")
        Traceback (most recent call last):
        study.runtime.StudyError: --model old/model.h5: no such file; give a saved .keras model
    """
    path = Path(model)
    suffix = path.suffix.lower()
    if os.sep not in model and "/" not in model and suffix not in (".keras", *LEGACY_MODEL_SUFFIXES):
        return
    if path.is_dir():
        raise StudyError(f"--model {model}: is a folder, not a model file; give a saved .keras model "
                         "(model.save('model.keras'))")
    if not path.is_file():
        raise StudyError(f"--model {model}: no such file; give a saved .keras model")
    if path.name.lower().endswith(".weights.h5"):
        raise StudyError(f"--model {model}: a weights file, not a model; pass it as --weights with the model it "
                         "was saved from (--model NAME or a .keras file)")
    if suffix in LEGACY_MODEL_SUFFIXES:
        converted = str(path.with_suffix(".keras"))
        raise StudyError(f"--model {model}: legacy HDF5 models are not accepted; convert it once with "
                         f"keras.models.load_model({model!r}).save({converted!r}) and pass {converted}")
    if suffix != ".keras":
        raise StudyError(f"--model {model}: not a .keras model file; save the model with model.save('model.keras')")


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise StudyError(f"{flag} {value!r} is unknown; choose one of {', '.join(choices)}")
