"""The pretrained backbones: constructor, input preprocessing and weights (imagenet, none, a file)."""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras
import numpy as np

from study.config import DEFAULT_DELIMITERS, StudyConfig
from study.errors import StudyError


@dataclasses.dataclass(frozen=True)
class Backbone:
    """How to build one `keras.applications` model without its top, and how to scale its input."""

    constructor: Callable[..., keras.Model]
    preprocess_input: Callable[[np.ndarray], np.ndarray]
    delimiters: tuple[str, ...] = DEFAULT_DELIMITERS


BACKBONES = {
    "vgg16": Backbone(keras.applications.VGG16, keras.applications.vgg16.preprocess_input),
    # MobileNet has no pooling or merges inside; its stride-2 paddings separate its 5 stages.
    "mobilenet": Backbone(
        keras.applications.MobileNet,
        keras.applications.mobilenet.preprocess_input,
        delimiters=("ZeroPadding2D",),
    ),
    "mobilenet_v2": Backbone(
        keras.applications.MobileNetV2, keras.applications.mobilenet_v2.preprocess_input
    ),
    # MobileNetV3 rescales inside the model; its preprocess_input passes pixels through.
    "mobilenet_v3_small": Backbone(
        keras.applications.MobileNetV3Small, keras.applications.mobilenet_v3.preprocess_input
    ),
    "resnet50": Backbone(keras.applications.ResNet50, keras.applications.resnet50.preprocess_input),
    "resnet50_v2": Backbone(
        keras.applications.ResNet50V2, keras.applications.resnet_v2.preprocess_input
    ),
}


def build_backbone(config: StudyConfig) -> keras.Model:
    """The configured backbone without its classifier top, with the configured weights.

    Example:
        >>> config = StudyConfig(model="vgg16", weights="none", image_size=32).validate()
        >>> build_backbone(config).output_shape
        (None, 1, 1, 512)
    """
    if config.is_model_file:
        return _load_model_file(config)
    weights = None if config.weights == "none" else config.weights
    shape = (config.image_size, config.image_size, 3)
    try:
        return BACKBONES[config.model].constructor(
            include_top=False, weights=weights, input_shape=shape
        )
    except Exception as error:  # keras raises ValueError for shapes, others for downloads
        raise StudyError(_weights_problem(config, error)) from None


def block_delimiters(config: StudyConfig) -> tuple[str, ...]:
    """`--delimiters`, or the backbone's default: the layer classes that end a block.

    Example:
        >>> block_delimiters(StudyConfig(model="vgg16").validate())
        ('MaxPooling2D', 'AveragePooling2D', 'Add')
    """
    if config.delimiters:
        return config.delimiters
    return DEFAULT_DELIMITERS if config.is_model_file else BACKBONES[config.model].delimiters


def block_pattern(config: StudyConfig) -> str | None:
    """The backbone's block name pattern (study.strategies.block_groups), or None: delimiters decide.

    Example:
        >>> block_pattern(StudyConfig(model="vgg16").validate()) is None
        True
    """
    return None if config.is_model_file else getattr(BACKBONES[config.model], "block_pattern", None)


def preprocessor(config: StudyConfig) -> Callable[[np.ndarray], np.ndarray]:
    """The function that turns uint8 images into the backbone's float input.

    `--input-scaling unit` gives the paper's 0..1 scaling for every model; a saved .keras
    model gets raw 0..255 pixels and is expected to scale its own input.

    Example:
        >>> scale = preprocessor(StudyConfig(model="mobilenet_v2").validate())
        >>> float(scale(np.full((1, 2, 2, 3), 255, np.uint8)).max())
        1.0
    """
    if config.input_scaling == "unit":
        return lambda images: images.astype(np.float32) / 255.0
    if config.is_model_file:
        return lambda images: images.astype(np.float32)
    preprocess_input = BACKBONES[config.model].preprocess_input
    return lambda images: np.asarray(preprocess_input(images.astype(np.float32)), np.float32)


def _load_model_file(config: StudyConfig) -> keras.Model:
    try:
        model = keras.models.load_model(config.model, compile=False)
    except Exception as error:
        raise StudyError(f"--model {config.model}: cannot load it as a Keras model ({_first_line(error)})") from None
    expected = (config.image_size, config.image_size, 3)
    if tuple(model.input_shape[1:]) not in (expected, (None, None, 3)):
        raise StudyError(
            f"--model {config.model} takes inputs of shape {model.input_shape[1:]}, not {expected}; "
            "set --image-size to match"
        )
    if config.weights not in ("imagenet", "none"):
        try:
            model.load_weights(config.weights)
        except Exception as error:
            raise StudyError(_weights_problem(config, error)) from None
    return model


def _weights_problem(config: StudyConfig, error: Exception) -> str:
    if config.weights == "imagenet":
        return (
            f"cannot build {config.model} with ImageNet weights ({_first_line(error)}); "
            "offline, download the no-top weights file elsewhere and pass --weights PATH"
        )
    if config.weights != "none":
        return (
            f"--weights {config.weights} does not fit {config.model_label} at "
            f"{config.image_size} px ({_first_line(error)}); give that model's no-top weights file"
        )
    return f"cannot build {config.model} at {config.image_size} px ({_first_line(error)})"


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]
