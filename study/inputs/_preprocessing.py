"""Input preprocessing: how uint8 RGB pixels become a backbone's input, as one per-pixel affine map.

The input preprocessing of every choice is a per-pixel affine map of the RGB vector (`input_map`): the
search applies it to the uint8 images in NumPy (`preprocessor`), and the model a user gets back carries
it inside as a frozen Dense layer (study.final's `standalone_model`), so both see the same numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable

import keras
import numpy as np

from study.config import StudyConfig
from study.inputs._backbones import BACKBONES
from study.inputs._model_file import input_channels, load_model_file, scales_inside
from study.runtime import StudyError

_apps = keras.applications

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

    `function` computes the same in NumPy (a backbone's `preprocess_input`, or `/ 255.0`), to the last
    bit as the search always did; without one the matrix is applied.
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
    """How RGB uint8 pixels become this backbone's input, for `--input-scaling` (see study.inputs's model file).

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
