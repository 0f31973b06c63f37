"""The inputs of a study: images in stratified splits (tf_flowers, a folder, synthetic), the backbone
(a keras.applications model by name, or a user's .keras file) and its input preprocessing.

Example:
    >>> from study.config import StudyConfig
    >>> config = StudyConfig(dataset="synthetic", model="vgg16", weights="none", image_size=32).validate()
    >>> load_splits(config).num_classes, build_backbone(config).output_shape  # doctest: +SKIP
    (5, (None, 1, 1, 512))
"""

from study.inputs._backbones import BACKBONES, Backbone, block_delimiters, block_pattern, build_backbone, keras_cache, registered
from study.inputs._data import (
    FLOWER_PHOTOS_URL,
    IMAGE_SUFFIXES,
    SPLIT_NAMES,
    Splits,
    load_image_folder,
    load_images,
    load_splits,
    load_tfds,
    rgb_pixels,
    stratified_split,
    tfds_problem,
)
from study.inputs._model_file import input_channels, is_weighted, load_model_file, normalise, read_model, scales_inside
from study.inputs._preprocessing import LUMINANCE, SCALINGS, InputMap, affine_of, input_map, preprocessor
from study.inputs._synthetic import synthetic_images

__all__ = [
    "BACKBONES", "Backbone", "FLOWER_PHOTOS_URL", "IMAGE_SUFFIXES", "InputMap", "LUMINANCE", "SCALINGS", "SPLIT_NAMES",
    "Splits", "affine_of", "block_delimiters", "block_pattern", "build_backbone", "input_channels", "input_map",
    "is_weighted", "keras_cache", "load_image_folder", "load_images", "load_model_file", "load_splits", "load_tfds",
    "normalise", "preprocessor", "read_model", "registered", "rgb_pixels", "scales_inside", "stratified_split",
    "synthetic_images", "tfds_problem"
]
