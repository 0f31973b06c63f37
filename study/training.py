"""Fine-tune one candidate: freeze everything else, add the paper's head, fit, report per epoch."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Callable

import keras
import numpy as np

from study.candidates import Candidate, all_layers
from study.config import StudyConfig


@dataclasses.dataclass
class TrainingResult:
    """The fitted model and what the fit measured."""

    model: keras.Model
    history: dict[str, list[float]]
    trainable_params: int
    seconds: float


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
    features = backbone(inputs, training=False)
    x = keras.layers.Flatten(name="head_flatten")(features)
    x = keras.layers.Dense(128, name="head_dense_128")(x)
    x = keras.layers.Dropout(0.5, name="head_dropout")(x)
    x = keras.layers.Dense(64, activation="relu", name="head_dense_64")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="head_classes")(x)
    return keras.Model(inputs, outputs, name="finetune")


def freeze_all_but(backbone: keras.Model, candidate: Candidate) -> None:
    """Make only the candidate's layers of the backbone trainable."""
    backbone.trainable = True
    selected = set(candidate.layers)
    for layer in all_layers(backbone):
        layer.trainable = layer.name in selected


def count_trainable(model: keras.Model) -> int:
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


def fine_tune(
    config: StudyConfig,
    build_backbone: Callable[[], keras.Model],
    candidate: Candidate,
    train: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks: list[keras.callbacks.Callback] = (),
    seed: int | None = None,
    batch_size: int | None = None,
    before_fit: Callable[[keras.Model], None] | None = None,
) -> TrainingResult:
    """Train `candidate` plus the head on preprocessed `train` images for `config.epochs` epochs.

    The learning rate drops on a plateau of validation accuracy (training accuracy when there is
    no validation set). Everything is seeded, so the same call gives the same weights.

    Example:
        >>> result = fine_tune(config, lambda: build_backbone(config), candidate,
        ...                    (x, y), num_classes=5, validation=(xv, yv))
        >>> result.history["val_accuracy"][-1]
    """
    started = time.perf_counter()
    keras.backend.clear_session(free_memory=True)
    keras.utils.set_random_seed(config.seed if seed is None else seed)
    backbone = build_backbone()
    model = build_model(backbone, num_classes)
    freeze_all_but(backbone, candidate)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    if before_fit is not None:
        before_fit(model)
    monitor = "val_accuracy" if validation is not None else "accuracy"
    history = model.fit(
        train[0],
        train[1],
        batch_size=batch_size or config.batch_size,
        epochs=config.epochs,
        validation_data=validation,
        shuffle=True,
        verbose=0,
        callbacks=[keras.callbacks.ReduceLROnPlateau(monitor=monitor), *callbacks, EpochProgress()],
    )
    return TrainingResult(
        model=model,
        history={key: [float(v) for v in values] for key, values in history.history.items()},
        trainable_params=count_trainable(model),
        seconds=time.perf_counter() - started,
    )


class EpochProgress(keras.callbacks.Callback):
    """One status line per trial on a terminal, rewritten after every epoch."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not sys.stdout.isatty():
            return
        shown = " ".join(f"{k}={v:.3f}" for k, v in (logs or {}).items() if "acc" in k)
        print(f"\r    epoch {epoch + 1}/{self.params['epochs']} {shown}   ", end="", flush=True)

    def on_train_end(self, logs: dict | None = None) -> None:
        if sys.stdout.isatty():
            print("\r" + " " * 70 + "\r", end="", flush=True)
