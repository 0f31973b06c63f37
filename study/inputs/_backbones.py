"""The pretrained backbones: constructor, input preprocessing and weights (imagenet, none, a file).

Any `keras.applications` model by name (`BACKBONES`), or a saved `.keras` model (`load_model_file`);
how their input is scaled is `input_map` (study.inputs's preprocessing).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable

import keras
import numpy as np

from study.config import DEFAULT_DELIMITERS, StudyConfig
from study.inputs._model_file import load_model_file, normalise
from study.runtime import StudyError, first_line, network_failure


@dataclasses.dataclass(frozen=True)
class Backbone:
    """How to build one `keras.applications` model without its top, and how to scale its input.

    Blocks: with a `block_pattern` (a regular expression), consecutive weighted layers whose names give
    the same key form one block, the key being the first group of `re.match(block_pattern, name)`; a
    weighted layer whose name does not match is a block of its own. Without one, `delimiters` (layer
    classes) end blocks. `--delimiters` overrides both.
    """

    constructor: Callable[..., keras.Model]
    preprocess_input: Callable[[np.ndarray], np.ndarray]
    delimiters: tuple[str, ...] = DEFAULT_DELIMITERS
    block_pattern: str | None = None
    min_size: int = 32  # smallest --image-size the architecture accepts

    @property
    def module(self) -> str:
        """The keras.applications module of `preprocess_input`, e.g. 'resnet'."""
        return self.preprocess_input.__module__.rsplit(".", 1)[-1]


_apps = keras.applications
# Every layer of an EfficientNet (v1 and v2) is named stem_*, block<stage><letter>_* or top_*:
# one block per MBConv block (EfficientNetB0: 16, plus the stem and the top conv).
_EFFICIENTNET = r"^(stem|top|block\d+[a-z])_"
# ConvNeXt: the stem, each ConvNeXt block (depthwise + 2 pointwise), each downsampling conv.
_CONVNEXT = r"^convnext_[a-z]+_(stem|downsampling_conv_\d+|stage_\d+_block_\d+)"
# DenseNet: one block per dense block with the transition conv after it (pool<N>_conv), and the stem.
_DENSENET = r"^(?:conv|pool)(\d+)_"
# NASNet: one block per cell; every layer name ends with its cell id (stem_1, 0, 1, ..., reduce_4, ...).
_NASNET = r"^.*?_((?:stem_|reduce_)?\d+)$"
# Inception: the convs of each module (its branches all end in one Concatenate) and of each stem stage.
_INCEPTION = ("MaxPooling2D", "Concatenate")


def _efficientnet(constructor, v2: bool = False) -> Backbone:
    module = _apps.efficientnet_v2 if v2 else _apps.efficientnet
    return Backbone(constructor, module.preprocess_input, block_pattern=_EFFICIENTNET)


BACKBONES: dict[str, Backbone] = {
    # The paper's six; their candidate counts are in docs/models.md and in tests/test_candidates.py.
    "vgg16": Backbone(_apps.VGG16, _apps.vgg16.preprocess_input),
    # MobileNet has no pooling or merges inside; its stride-2 paddings separate its 5 stages.
    "mobilenet": Backbone(_apps.MobileNet, _apps.mobilenet.preprocess_input, delimiters=("ZeroPadding2D",)),
    "mobilenet_v2": Backbone(_apps.MobileNetV2, _apps.mobilenet_v2.preprocess_input),
    # MobileNetV3 rescales inside the model; its preprocess_input passes pixels through.
    "mobilenet_v3_small": Backbone(_apps.MobileNetV3Small, _apps.mobilenet_v3.preprocess_input),
    "resnet50": Backbone(_apps.ResNet50, _apps.resnet50.preprocess_input),
    "resnet50_v2": Backbone(_apps.ResNet50V2, _apps.resnet_v2.preprocess_input),
    # The rest of keras.applications.
    "vgg19": Backbone(_apps.VGG19, _apps.vgg19.preprocess_input),
    "mobilenet_v3_large": Backbone(_apps.MobileNetV3Large, _apps.mobilenet_v3.preprocess_input),
    "resnet101": Backbone(_apps.ResNet101, _apps.resnet.preprocess_input),
    "resnet152": Backbone(_apps.ResNet152, _apps.resnet.preprocess_input),
    "resnet101_v2": Backbone(_apps.ResNet101V2, _apps.resnet_v2.preprocess_input),
    "resnet152_v2": Backbone(_apps.ResNet152V2, _apps.resnet_v2.preprocess_input),
    "densenet121": Backbone(_apps.DenseNet121, _apps.densenet.preprocess_input, block_pattern=_DENSENET),
    "densenet169": Backbone(_apps.DenseNet169, _apps.densenet.preprocess_input, block_pattern=_DENSENET),
    "densenet201": Backbone(_apps.DenseNet201, _apps.densenet.preprocess_input, block_pattern=_DENSENET),
    **{f"efficientnet_b{i}": _efficientnet(getattr(_apps, f"EfficientNetB{i}")) for i in range(8)},
    **{f"efficientnet_v2_b{i}": _efficientnet(getattr(_apps, f"EfficientNetV2B{i}"), v2=True) for i in range(4)},
    **{f"efficientnet_v2_{s}": _efficientnet(getattr(_apps, f"EfficientNetV2{s.upper()}"), v2=True) for s in "sml"},
    **{
        f"convnext_{size}": Backbone(
            getattr(_apps, f"ConvNeXt{suffix}"), _apps.convnext.preprocess_input,
            block_pattern=_CONVNEXT,
        )
        for size, suffix in (("tiny", "Tiny"), ("small", "Small"), ("base", "Base"), ("large", "Large"), ("xlarge", "XLarge"))
    },
    "inception_v3": Backbone(_apps.InceptionV3, _apps.inception_v3.preprocess_input, delimiters=_INCEPTION, min_size=75),
    "inception_resnet_v2": Backbone(
        _apps.InceptionResNetV2, _apps.inception_resnet_v2.preprocess_input, delimiters=_INCEPTION, min_size=75
    ),
    # Xception's residual merges (Add) end its 13 blocks.
    "xception": Backbone(_apps.Xception, _apps.xception.preprocess_input, min_size=71),
    "nasnet_mobile": Backbone(_apps.NASNetMobile, _apps.nasnet.preprocess_input, block_pattern=_NASNET),
    "nasnet_large": Backbone(_apps.NASNetLarge, _apps.nasnet.preprocess_input, block_pattern=_NASNET),
}


def build_backbone(config: StudyConfig) -> keras.Model:
    """The configured backbone without its classifier top, with the configured weights.

    A saved model is loaded and normalised by `load_model_file`; `--features-layer`
    cuts any backbone at that layer.

    Example:
        >>> config = StudyConfig(model="vgg16", weights="none", image_size=32).validate()
        >>> build_backbone(config).output_shape
        (None, 1, 1, 512)
    """
    features_layer = config.features_layer
    if config.is_model_file:
        weights = None if config.weights in ("imagenet", "none") else config.weights
        return load_model_file(config.model, config.image_size, features_layer, weights=weights)
    backbone = registered(config)
    if config.image_size < backbone.min_size:
        raise StudyError(
            f"--image-size {config.image_size} is too small for {config.model}, which needs at least "
            f"{backbone.min_size} px; pass --image-size {backbone.min_size} or more"
        )
    weights = None if config.weights == "none" else config.weights
    shape = (config.image_size, config.image_size, 3)
    try:
        model = backbone.constructor(include_top=False, weights=weights, input_shape=shape)
    except Exception as error:  # keras raises ValueError for shapes, others for downloads
        raise StudyError(_weights_problem(config, error)) from None
    if features_layer or any(isinstance(layer, keras.Model) for layer in model.layers):
        # ConvNeXt nests Sequential stems and downsampling layers: opened up, like a saved model's.
        model = normalise(model, config.image_size, features_layer, label=f"--model {config.model}")
    return model


def registered(config: StudyConfig) -> Backbone:
    """The registry entry of `--model`, or a one-line error naming the choices (files: None).

    Example:
        >>> registered(StudyConfig(model="alexnet"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        study.runtime.StudyError: --model 'alexnet' is unknown; choose a keras.applications name (vgg16, ...) or a .keras file
    """
    if config.is_model_file:
        return None
    if config.model not in BACKBONES:
        if os.path.isdir(config.model):  # a bare folder name (paths with a separator: StudyConfig.validate)
            raise StudyError(f"--model {config.model}: is a folder, not a model file; give a saved .keras model "
                             "(model.save('model.keras')) or a keras.applications name")
        names = ", ".join(BACKBONES)
        raise StudyError(f"--model {config.model!r} is unknown; choose a keras.applications name ({names}) "
                         "or a .keras file")
    return BACKBONES[config.model]


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
    """The backbone's block name pattern (see `Backbone`), or None: blocks end at `block_delimiters`.

    `--delimiters` and saved models use delimiters.

    Example:
        >>> block_pattern(StudyConfig(model="efficientnet_b0"))
        '^(stem|top|block\\\\d+[a-z])_'
    """
    if config.delimiters or config.is_model_file:
        return None
    return BACKBONES[config.model].block_pattern


def _weights_problem(config: StudyConfig, error: Exception) -> str:
    if config.weights == "imagenet":
        offline = network_failure(error)
        fetch = re.match(r"URL fetch failure on (\S+): ", str(error))  # keras.utils.get_file's message names the URL
        if offline is not None and fetch:
            url = fetch.group(1)
            return (
                f"cannot download the ImageNet weights of {config.model} from {url} ({first_line(offline)}): no network, "
                f"or the host is unreachable from here; download that file elsewhere and pass --weights PATH, or put it "
                f"in Keras's cache {keras_cache()}"
            )
        return (
            f"cannot build {config.model} with ImageNet weights ({first_line(error)}); "
            "offline, download the no-top weights file elsewhere and pass --weights PATH"
        )
    if config.weights != "none":
        return (
            f"--weights {config.weights} does not fit {config.model_label} at "
            f"{config.image_size} px ({first_line(error)}); give that model's no-top weights file"
        )
    return f"cannot build {config.model} at {config.image_size} px ({first_line(error)})"


def keras_cache() -> str:
    """Where `keras.applications` keeps downloaded weights, by Keras's own rule: $KERAS_HOME/models, else
    ~/.keras/models; /tmp/.keras/models where that folder is not writable.

    Example:
        >>> keras_cache().endswith("models")
        True
    """
    if "KERAS_HOME" in os.environ:
        home = os.environ["KERAS_HOME"]
    else:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    if not os.access(os.path.expanduser(home), os.W_OK):  # keras.utils.get_file falls back the same way
        home = os.path.join("/tmp", ".keras")
    return os.path.join(home, "models")
