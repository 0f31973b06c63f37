"""The pretrained backbones: constructor, input preprocessing and weights (imagenet, none, a file).

Any `keras.applications` model by name (`BACKBONES`), or a saved `.keras` model (study.models). The
input preprocessing of every choice is a per-pixel affine map of the RGB vector (`input_map`): the
search applies it to the uint8 images in NumPy (`preprocessor`), and the model a user gets back carries
it inside as a frozen Dense layer (`standalone_model`), so both see the same numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from typing import Callable

import keras
import numpy as np

from study.config import DEFAULT_DELIMITERS, StudyConfig
from study.data import first_line, network_failure
from study.errors import StudyError
from study.models import input_channels, load_model_file, normalise, scales_inside


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
    # The paper's six; their candidate counts are in the README and in tests/test_candidates.py.
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

    A saved model is loaded and normalised by study.models.load_model_file; `--features-layer`
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
        study.errors.StudyError: --model 'alexnet' is unknown; choose a keras.applications name (vgg16, ...) or a .keras file
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


# ---------------------------------------------------------------------------------------------
# Input preprocessing

# tf.image.rgb_to_grayscale's luminance weights: how RGB images become a 1-channel model's input.
LUMINANCE = np.array([0.2989, 0.5870, 0.1140])
# --input-scaling choices besides `model` (the backbone's own): name -> (description, NumPy function).
SCALINGS = {
    "unit": ("pixels / 255 (0..1)", lambda x: x / 255.0),
    "raw": ("raw pixels (0..255)", lambda x: x),
    "tf": ("pixels / 127.5 - 1 (-1..1)", lambda x: _apps.imagenet_utils.preprocess_input(x, mode="tf")),
    "caffe": ("RGB to BGR, ImageNet mean subtracted", lambda x: _apps.imagenet_utils.preprocess_input(x, mode="caffe")),
    "torch": ("pixels / 255, ImageNet mean and std", lambda x: _apps.imagenet_utils.preprocess_input(x, mode="torch")),
}


@dataclasses.dataclass(frozen=True)
class InputMap:
    """A model's input preprocessing: RGB pixels (0..255) `x` -> `x @ matrix + bias`, per pixel.

    `function` computes the same in NumPy exactly as before this class existed (a backbone's
    `preprocess_input`, or `/ 255.0`); without one the matrix is applied.
    """

    matrix: np.ndarray  # (3, channels)
    bias: np.ndarray  # (channels,)
    description: str
    function: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def channels(self) -> int:
        return int(self.matrix.shape[1])

    def apply(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) RGB images -> float32 model input (N, H, W, channels)."""
        pixels = images.astype(np.float32)
        if self.function is not None:
            return np.asarray(self.function(pixels), np.float32)
        return (pixels @ self.matrix.astype(np.float32) + self.bias.astype(np.float32)).astype(np.float32)

    def layer(self, name: str = "preprocess") -> keras.layers.Layer:
        """The map as a frozen Dense layer on the channel axis (built-in, loads in safe mode)."""
        dense = keras.layers.Dense(self.channels, name=name, trainable=False)
        dense.build((None, 3))
        dense.set_weights([self.matrix.astype(np.float32), self.bias.astype(np.float32)])
        return dense


def affine_of(function: Callable[[np.ndarray], np.ndarray], label: str = "preprocess_input") -> tuple[np.ndarray, np.ndarray]:
    """The (matrix, bias) of a per-pixel affine map of RGB vectors, measured on probe pixels and checked.

    Every `keras.applications` preprocess_input is one (caffe: RGB->BGR minus the mean; tf: x/127.5-1;
    torch: x/255 then mean and std; pass-through). Probed in float64, so the coefficients are exact.

    Example:
        >>> affine_of(keras.applications.resnet_v2.preprocess_input)[1]
        array([-1., -1., -1.])
    """
    probe = np.zeros((1, 1, 4, 3))
    probe[0, 0, 1:] = 255 * np.eye(3)
    out = np.asarray(function(probe.copy()), np.float64).reshape(4, -1)
    bias, matrix = out[0], (out[1:] - out[0]) / 255
    check = np.random.default_rng(0).uniform(0, 255, (1, 4, 4, 3))
    expected = np.asarray(function(check.copy()), np.float64)
    if expected.shape[:-1] != check.shape[:-1] or not np.allclose(expected, check @ matrix + bias, rtol=1e-6, atol=1e-6):
        raise StudyError(f"{label} is not a per-pixel affine map of the RGB values; it cannot be built into the saved model")
    return matrix, bias


def input_map(config: StudyConfig, backbone: keras.Model | None = None) -> InputMap:
    """How RGB uint8 pixels become this backbone's input, for `--input-scaling` (see study.models).

    `model`: a keras.applications backbone's own `preprocess_input`; a saved model gets raw 0..255 if
    it scales inside (Rescaling/Normalization before its first weighted layer), else 0..1. `unit`: 0..1
    for every model (the paper's). A 1-channel model gets the luminance, scaled the same way.
    `backbone`: the built backbone, if at hand (saves loading a model file again).

    Example:
        >>> input_map(StudyConfig(model="vgg16")).bias
        array([-103.939, -116.779, -123.68 ])
    """
    scaling = config.input_scaling
    if config.is_model_file:
        channels, inside = (
            (input_channels(backbone), scales_inside(backbone)) if backbone is not None
            else _file_facts(config.model, config.image_size, config.features_layer,
                             os.path.getmtime(config.model))
        )
        if scaling == "model":
            scaling = "raw" if inside else "unit"
    else:
        channels = 3
    if scaling == "model":
        module = BACKBONES[config.model].module
        description, function = f"keras.applications.{module}.preprocess_input", BACKBONES[config.model].preprocess_input
    elif scaling in SCALINGS:
        description, function = SCALINGS[scaling]
    else:
        raise StudyError(f"--input-scaling {scaling!r} is unknown; choose one of model, {', '.join(SCALINGS)}")
    matrix, bias = affine_of(function, description)
    if channels == 3:
        return InputMap(matrix, bias, description, function)
    if not (np.allclose(matrix, matrix[0, 0] * np.eye(3)) and np.allclose(bias, bias[0])):
        raise StudyError(
            f"--input-scaling {config.input_scaling} ({description}) treats the colour channels differently "
            "and cannot scale the 1-channel input of this model; use --input-scaling unit"
        )
    gray = LUMINANCE[:, None] * matrix[0, 0]
    return InputMap(gray, bias[:1], f"luminance (tf.image.rgb_to_grayscale), {description}")


def preprocessor(config: StudyConfig) -> Callable[[np.ndarray], np.ndarray]:
    """The function that turns uint8 RGB images (N, H, W, 3) into the backbone's float input.

    Example:
        >>> scale = preprocessor(StudyConfig(model="mobilenet_v2").validate())
        >>> float(scale(np.full((1, 2, 2, 3), 255, np.uint8)).max())
        1.0
    """
    return input_map(config).apply


@functools.lru_cache(maxsize=8)
def _file_facts(path: str, image_size: int, features_layer: str | None, mtime: float) -> tuple[int, bool]:
    """(input channels, scales inside) of a saved model; `mtime`: a rewritten file is read again."""
    backbone = load_model_file(path, image_size, features_layer)
    return input_channels(backbone), scales_inside(backbone)


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
