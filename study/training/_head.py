"""The paper's classifier head on a backbone, and which layers train."""

from __future__ import annotations

import keras
import numpy as np

from study.candidates import Candidate, all_layers


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
