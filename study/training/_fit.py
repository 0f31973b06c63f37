"""Fine-tune one candidate: freeze everything else, add the paper's head, fit, report per epoch."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import keras
import numpy as np

from study.candidates import Candidate
from study.config import StudyConfig
from study.runtime import batches, interrupts_deferred
from study.storage import rounded
from study.training._autorgn import AutoRGNAdam
from study.training._cache import Cut, PrefixCache, find_cut, fresh_backbone
from study.training._callbacks import CtrlCAtBatchEnd, EpochProgress
from study.training._head import apply_head, build_model, count_trainable, freeze_all_but, head_layers
from study.training._optimizer import FusedAdam, compile_model

HEAD_ONLY = Candidate("head", ())


@dataclasses.dataclass
class TrainingResult:
    """The fitted model and what the fit measured."""

    model: keras.Model
    history: dict[str, list[float]]
    trainable_params: int
    seconds: float
    cache: str = "off"  # whether the frozen prefix was cached, and why not


@dataclasses.dataclass
class SplitRows:
    """The images of one split, as rows of a source array that several splits share.

    The prefix cache computes a source's activations once (keyed by `source`), and each split
    indexes its rows: the repeats of a search, each with its own draw, share one forward pass.
    """

    source: str  # the cache's name for `images`
    images: np.ndarray  # preprocessed images of the whole source
    labels: np.ndarray  # labels of the whole source
    rows: np.ndarray | None = None  # this split's rows of the source (None: all of them)

    def take(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """This split's rows of arrays that have one row per source image."""
        return arrays if self.rows is None else [array[self.rows] for array in arrays]

    @property
    def size(self) -> int:
        return len(self.labels) if self.rows is None else len(self.rows)


# Over 60 lines with its docstring and 13 parameters: one training, seeded end to end, whose steps share
# the seed, the backbone, the cache and the model; the cache's part is `_fit_inputs`.
def fine_tune(
    config: StudyConfig,
    build_backbone: Callable[[], keras.Model],
    candidate: Candidate,
    train: SplitRows | tuple[np.ndarray, np.ndarray],
    num_classes: int,
    validation: SplitRows | tuple[np.ndarray, np.ndarray] | None = None,
    callbacks: list[keras.callbacks.Callback] = (),
    seed: int | None = None,
    batch_size: int | None = None,
    before_fit: Callable[[keras.Model], None] | None = None,
    cache: PrefixCache | None = None,
    split_names: tuple[str, str] = ("train", "validation"),
    backbone_seed: int | None = None,
) -> TrainingResult:
    """Train `candidate` plus the head on preprocessed `train` images for `config.epochs` epochs.

    The learning rate drops on a plateau of validation accuracy (training accuracy when there is
    no validation set). Everything is seeded, so the same call gives the same weights: `seed` seeds
    the head and the order of batches, `backbone_seed` (default: `seed`) the backbone's build (random
    weights only). With a `cache`, the frozen layers below the candidate run once per source of
    images (a `SplitRows`'s `source`; for plain arrays `split_names` name them) and training starts from
    their outputs, and the backbone is built once per backbone seed and kept between calls (the
    cache resets what earlier calls tuned); the result is the same.

    The candidate's recipe: `plain`; `autorgn` (`AutoRGNAdam`: each layer's step scaled by its relative
    gradient norm); `lpft` (LP-FT: first the head alone, the backbone frozen, for `config.epochs` epochs
    with the same seed and data, then the candidate's layers from that head, a fresh optimizer, another
    `config.epochs` epochs; the history is the second phase's, the seconds both).

    Example:
        >>> result = fine_tune(config, lambda: build_backbone(config), candidate,
        ...                    (x, y), num_classes=5, validation=(xv, yv), cache=PrefixCache())  # doctest: +SKIP
        >>> result.history["val_accuracy"][-1], result.cache  # doctest: +SKIP
    """
    started = time.perf_counter()
    seed = config.seed if seed is None else seed
    backbone_seed = seed if backbone_seed is None else backbone_seed
    train, validation = (
        split if split is None or isinstance(split, SplitRows) else SplitRows(name, *split)
        for split, name in zip((train, validation), split_names)
    )
    probed = None
    if candidate.recipe == "lpft":  # the linear probe: the head trained on the frozen backbone's features
        probe = fine_tune(config, build_backbone, HEAD_ONLY, train, num_classes, validation, seed=seed,
                          batch_size=batch_size, cache=cache, backbone_seed=backbone_seed)
        probed = [layer.get_weights() for layer in head_layers(probe.model)]
    if cache is None:
        backbone = fresh_backbone(build_backbone, backbone_seed)
    else:
        backbone = cache.backbone(build_backbone, backbone_seed, candidate)
    keras.utils.set_random_seed(seed)  # the same head whether or not the backbone was built just now
    model = build_model(backbone, num_classes)
    for layer, weights in zip(head_layers(model), probed or []):  # LP-FT tunes from the probed head
        layer.set_weights(weights)
    freeze_all_but(backbone, candidate)
    trained, inputs, validation_inputs, cache_state = _fit_inputs(cache, backbone, candidate, model, train, validation,
                                                                  backbone_seed)
    optimizer = AutoRGNAdam if candidate.recipe == "autorgn" else FusedAdam
    for compiled in {id(m): m for m in (model, trained)}.values():
        compile_model(compiled, optimizer(learning_rate=config.learning_rate))
    fitted = trained if cache is None else _traced_model(cache, trained, candidate, config.learning_rate)
    if before_fit is not None:
        before_fit(model)
    batch_size = batch_size or config.batch_size
    monitor = "val_accuracy" if validation is not None else "accuracy"
    train_labels, = train.take([train.labels])
    with interrupts_deferred():  # Ctrl-C stops the fit at a batch end (CtrlCAtBatchEnd), not inside Keras
        history = fitted.fit(
            batches(inputs, train_labels, batch_size, shuffle_seed=seed),
            epochs=config.epochs,
            shuffle=False,  # `batches` shuffles, seeded, so plain and cached trials see the same order
            validation_data=None if validation is None else batches(
                validation_inputs, *validation.take([validation.labels]), max(batch_size, 32)),
            verbose=0,
            callbacks=[keras.callbacks.ReduceLROnPlateau(monitor=monitor), *callbacks, EpochProgress(),
                       CtrlCAtBatchEnd()],
        )
    if fitted is not trained:
        _copy_state(fitted, trained)  # the caller's model holds what was trained
    return TrainingResult(
        model=model,
        history={key: [rounded(v) for v in values] for key, values in history.history.items()},  # storage.DIGITS
        trainable_params=count_trainable(model),
        seconds=time.perf_counter() - started,
        cache=cache_state,
    )


def _fit_inputs(cache: PrefixCache | None, backbone: keras.Model, candidate: Candidate, model: keras.Model,
                train: SplitRows, validation: SplitRows | None, backbone_seed: int):
    """(the model to train, its train inputs, its validation inputs, the cache's state): `model` on the
    images, or with the cache its part above the cut on the cached activations of the frozen prefix."""
    plain = (model, train.take([train.images]), None if validation is None else validation.take([validation.images]))
    if cache is None:
        return (*plain, "off")
    cut = find_cut(backbone, candidate)
    images = sum({split.source: len(split.images) for split in (train, validation) if split is not None}.values())
    if cut is None:
        return (*plain, "off: the first layer is tuned, nothing below it to cache")
    if not cache.fits(cut, images):
        return (*plain, f"off: {cut.bytes_per_image() * images / 2**30:.2f} GiB of activations "
                        f"exceed the {cache.budget_bytes / 2**30:.2f} GiB budget")
    inputs = train.take(cache.activations(cut, train.source, train.images, backbone_seed))
    validation_inputs = None if validation is None else validation.take(
        cache.activations(cut, validation.source, validation.images, backbone_seed))
    state = f"on: {len(cut.key)} tensor(s) after {cut.key[-1]}, {cut.bytes_per_image() * images / 2**20:.1f} MiB"
    return _model_from_cut(cut, model), inputs, validation_inputs, state


def prefix_cache(config: StudyConfig, planned: list[Candidate] = (), kept_models: int = 1) -> PrefixCache | None:
    """The cache of `--prefix-cache` with the budget of `--cache-budget-gb` (None when off).

    `planned`: the candidates to train next, in order; `kept_models`: how many traced models to keep
    (see `PrefixCache`).
    """
    if not config.prefix_cache:
        return None
    return PrefixCache(None if config.cache_budget_gb is None else config.cache_budget_gb * 2**30, planned,
                       kept_models)


def _traced_model(cache: PrefixCache, trained: keras.Model, candidate: Candidate, learning_rate: float) -> keras.Model:
    """The model to fit: the cache's kept model of the last training if it has the same graph as
    `trained`, restarted from `trained`'s state; else `trained`, kept for the next training.

    The repeats of a candidate (and the seeds of the final stage) train the same graph one after
    another: they trace it once (tracing costs about as much as a small candidate's training). The kept model
    starts from exactly the state a new one would (weights, dropout seeds, a zeroed optimizer), so
    the result is the same.
    """
    inputs = tuple(tuple(t.shape) for t in trained.inputs)
    key = (trained.name, inputs, tuple(trained.output.shape), tuple(candidate.layers), candidate.recipe, learning_rate)
    kept = cache.kept_model(key)
    if kept is None:
        cache.keep_model(key, trained)
        return trained
    _copy_state(trained, kept)
    for variable in kept.optimizer.variables:  # Adam's step count and moments start again from zero
        variable.assign(keras.ops.zeros(variable.shape, variable.dtype))
    kept.optimizer.learning_rate = learning_rate  # ReduceLROnPlateau may have lowered it
    return kept


def _copy_state(source: keras.Model, target: keras.Model) -> None:
    """Copy every variable of `source` (weights, BatchNormalization statistics, seed states) into
    `target`, a model built by the same code; variables both share are left alone."""
    for variable, into in zip(source.variables, target.variables, strict=True):
        if variable is not into:
            into.assign(variable)


def _model_from_cut(cut: Cut, model: keras.Model) -> keras.Model:
    """The trainable rest of `model`: cached tensors in, the same layers (same weights) above."""
    inputs = [keras.Input(shape=t.shape[1:], name=f"cached_{i}") for i, t in enumerate(cut.inputs)]
    features = inputs[0] if len(inputs) == 1 else inputs
    if cut.suffix is not None:
        features = cut.suffix(features, training=False)
    return keras.Model(inputs, apply_head(head_layers(model), features), name="finetune_from_cache")


