"""Fine-tune one candidate: freeze everything else, add the paper's head, fit, report per epoch."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

import study.progress as progress
from study.cache import Cut, PrefixCache, find_cut, fresh_backbone
from study.candidates import all_layers
from study.compat import SkipOneReplicaAllReduce, adam_slots
from study.config import StudyConfig
from study.process import interrupts_deferred, raise_held_interrupt
from study.records import rounded
from study.strategies import Candidate

STEPS_PER_EXECUTION = 16


@dataclasses.dataclass
class TrainingResult:
    """The fitted model and what the fit measured."""

    model: keras.Model
    history: dict[str, list[float]]
    trainable_params: int
    seconds: float
    cache: str = "off"  # whether the frozen prefix was cached, and why not


@keras.saving.register_keras_serializable(package="study")
class FusedAdam(SkipOneReplicaAllReduce, keras.optimizers.Adam):
    """Keras's Adam, each variable updated by TensorFlow's fused Adam kernel (`ResourceApplyAdam`).

    The same update rule. Keras builds it from about ten element-wise ops per variable: at the
    paper's batch of 4 their launch overhead, and on the 8M-weight head at 224 px their memory
    traffic, cost more than the rest of a head-only training step (a head-only epoch at 224 px: 2.0 s
    with Keras's Adam, 0.68 s with this). Models saved for users carry Keras's own Adam instead
    (`compile_model` before saving), so they load without this package.

    Example:
        >>> model.compile(optimizer=FusedAdam(learning_rate=5e-5), loss="sparse_categorical_crossentropy")  # doctest: +SKIP
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):  # no fused kernel for these
            return super().update_step(gradient, variable, learning_rate)
        momentum, velocity = adam_slots(self, variable)
        dtype = variable.dtype
        step = keras.ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = keras.ops.cast(self.beta_1, dtype), keras.ops.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=momentum.handle,
            v=velocity.handle,
            beta1_power=keras.ops.power(beta_1, step),
            beta2_power=keras.ops.power(beta_2, step),
            lr=keras.ops.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=keras.ops.cast(self.epsilon, dtype),
            grad=keras.ops.cast(gradient, dtype),
        )


def build_head(num_classes: int) -> list[keras.layers.Layer]:
    """The paper's classifier head: Flatten, Dense(128), Dropout(0.5), Dense(64, relu), softmax."""
    return [
        keras.layers.Flatten(name="head_flatten"),
        keras.layers.Dense(128, name="head_dense_128"),
        keras.layers.Dropout(0.5, name="head_dropout"),
        keras.layers.Dense(64, activation="relu", name="head_dense_64"),
        keras.layers.Dense(num_classes, activation="softmax", name="head_classes"),
    ]


def apply_head(head: list[keras.layers.Layer], features):
    for layer in head:
        features = layer(features)
    return features


def build_model(backbone: keras.Model, num_classes: int) -> keras.Model:
    """The backbone (BatchNormalization in inference mode) topped by the paper's classifier head.

    Example:
        >>> model = build_model(keras.applications.VGG16(include_top=False, weights=None,
        ...                                              input_shape=(32, 32, 3)), 5)
        >>> model.output_shape
        (None, 5)
    """
    inputs = keras.Input(shape=backbone.input_shape[1:], name="image")
    # training=False keeps BatchNormalization statistics frozen even in tuned blocks
    # (Keras transfer-learning guide); gradients still reach the tuned kernels.
    outputs = apply_head(build_head(num_classes), backbone(inputs, training=False))
    return keras.Model(inputs, outputs, name="finetune")


def head_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The head layers of a model made by `build_model`, in order."""
    return [layer for layer in model.layers if layer.name.startswith("head_")]


def freeze_all_but(backbone: keras.Model, candidate: Candidate) -> None:
    """Make only the candidate's layers of the backbone trainable."""
    backbone.trainable = True
    selected = set(candidate.layers)
    for layer in all_layers(backbone):
        layer.trainable = layer.name in selected


def count_trainable(model: keras.Model) -> int:
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


@dataclasses.dataclass
class Split:
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


def fine_tune(
    config: StudyConfig,
    build_backbone: Callable[[], keras.Model],
    candidate: Candidate,
    train: Split | tuple[np.ndarray, np.ndarray],
    num_classes: int,
    validation: Split | tuple[np.ndarray, np.ndarray] | None = None,
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
    images (a `Split`'s `source`; for plain arrays `split_names` name them) and training starts from
    their outputs, and the backbone is built once per backbone seed and kept between calls (the
    cache resets what earlier calls tuned); the result is the same.

    Example:
        >>> result = fine_tune(config, lambda: build_backbone(config), candidate,
        ...                    (x, y), num_classes=5, validation=(xv, yv), cache=PrefixCache())  # doctest: +SKIP
        >>> result.history["val_accuracy"][-1], result.cache  # doctest: +SKIP
    """
    started = time.perf_counter()
    seed = config.seed if seed is None else seed
    backbone_seed = seed if backbone_seed is None else backbone_seed
    train, validation = (
        split if split is None or isinstance(split, Split) else Split(name, *split)
        for split, name in zip((train, validation), split_names)
    )
    if cache is None:
        backbone = fresh_backbone(build_backbone, backbone_seed)
    else:
        backbone = cache.backbone(build_backbone, backbone_seed, candidate)
    keras.utils.set_random_seed(seed)  # the same head whether or not the backbone was built just now
    model = build_model(backbone, num_classes)
    freeze_all_but(backbone, candidate)
    trained, cache_state = model, "off"
    inputs = train.take([train.images])
    validation_inputs = None if validation is None else validation.take([validation.images])
    if cache is not None:
        cut = find_cut(backbone, candidate)
        sources = {split.source: len(split.images) for split in (train, validation) if split is not None}
        images = sum(sources.values())
        if cut is None:
            cache_state = "off: the first layer is tuned, nothing below it to cache"
        elif not cache.fits(cut, images):
            cache_state = (
                f"off: {cut.bytes_per_image() * images / 2**30:.2f} GiB of activations "
                f"exceed the {cache.budget_bytes / 2**30:.2f} GiB budget"
            )
        else:
            trained = _model_from_cut(cut, model)
            inputs = train.take(cache.activations(cut, train.source, train.images, backbone_seed))
            if validation is not None:
                validation_inputs = validation.take(
                    cache.activations(cut, validation.source, validation.images, backbone_seed))
            cache_state = f"on: {len(cut.key)} tensor(s) after {cut.key[-1]}, {cut.bytes_per_image() * images / 2**20:.1f} MiB"
    for compiled in {id(m): m for m in (model, trained)}.values():
        compile_model(compiled, FusedAdam(learning_rate=config.learning_rate))
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
        history={key: [rounded(v) for v in values] for key, values in history.history.items()},  # records.DIGITS
        trainable_params=count_trainable(model),
        seconds=time.perf_counter() - started,
        cache=cache_state,
    )


def compile_model(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
    """Compile with the paper's loss and accuracy metric.

    Example:
        >>> compile_model(model, keras.optimizers.Adam(learning_rate=5e-5))  # doctest: +SKIP
    """
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # Several batches per graph call: the same updates in the same order, less Python
        # overhead per step, which dominates with the paper's batch of 4 on a cached prefix.
        steps_per_execution=STEPS_PER_EXECUTION,
    )


def prefix_cache(config: StudyConfig, planned: list[Candidate] = ()) -> PrefixCache | None:
    """The cache of `--prefix-cache` with the budget of `--cache-budget-gb` (None when off).

    `planned`: the candidates to train next, in order (see `PrefixCache`).
    """
    if not config.prefix_cache:
        return None
    return PrefixCache(None if config.cache_budget_gb is None else config.cache_budget_gb * 2**30, planned)


def batches(inputs: list[np.ndarray], labels: np.ndarray, batch_size: int, shuffle_seed: int | None = None):
    """A prefetching tf.data pipeline over arrays already in memory, reshuffled every epoch."""
    features = inputs[0] if len(inputs) == 1 else tuple(inputs)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _traced_model(cache: PrefixCache, trained: keras.Model, candidate: Candidate, learning_rate: float) -> keras.Model:
    """The model to fit: the cache's kept model of the last training if it has the same graph as
    `trained`, restarted from `trained`'s state; else `trained`, kept for the next training.

    Tracing and optimising a training graph costs about as much as a small candidate's whole
    training (1-2 s of 3-4 s at 32 px on a CPU), and the repeats of a candidate (and the seeds of
    the final stage) train the same graph one after another: they trace it once. The kept model
    starts from exactly the state a new one would (weights, dropout seeds, a zeroed optimizer), so
    the result is the same.
    """
    inputs = tuple(tuple(t.shape) for t in trained.inputs)
    key = (trained.name, inputs, tuple(trained.output.shape), tuple(candidate.layers), learning_rate)
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


class CtrlCAtBatchEnd(keras.callbacks.Callback):
    """Inside `interrupts_deferred`, a Ctrl-C stops the fit at the end of the current batch.

    Raised from a callback, the KeyboardInterrupt leaves Keras the way a pruned trial does; raised
    wherever Python happened to be, it could break a TensorFlow device scope or be swallowed.
    `async_safe`: Keras keeps running batch-end callbacks in its thread pool, without waiting
    for each batch's metrics; the interrupt comes back to the fit from there a batch later.

    Example:
        >>> with interrupts_deferred():  # doctest: +SKIP
        ...     model.fit(x, y, callbacks=[CtrlCAtBatchEnd()])
    """

    async_safe = True

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        raise_held_interrupt()

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        raise_held_interrupt()


class EpochProgress(keras.callbacks.Callback):
    """Tells study.progress where a fit is: its live line (trial k/N or seed s/S, epoch, accuracy)."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        progress.train_begin()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        progress.epoch_end(epoch + 1, self.params["epochs"], logs or {})

    def on_train_end(self, logs: dict | None = None) -> None:
        progress.train_end()
