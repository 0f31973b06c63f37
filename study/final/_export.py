"""The model a user gets back: raw pixels in, class probabilities out, usable without this package.

The trained fine-tune model expects preprocessed floats; the exported model puts the study's
preprocessing in front of it as built-in layers, is saved uncompiled (no optimizer to warn about on
load) and carries its class names, so `keras.models.load_model(path).predict(images)` is all a user
needs.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import keras

from study.config import StudyConfig
from study.inputs import input_map
from study.runtime import writing
from study.storage import safe_name


def standalone_model(config: StudyConfig, trained: keras.Model, backbone: keras.Model | None = None) -> keras.Model:
    """`trained` (preprocessed floats in) behind the study's preprocessing: raw RGB pixels in.

    pixels (any size, RGB, 0..255) -> Resizing to --image-size (a no-op at that size) -> the input map
    as a frozen Dense on the channel axis (`input_map`: the same numbers as `preprocessor`) -> `trained`.
    Built-in layers only, so `keras.models.load_model` opens it in safe mode without this package.

    Example:
        >>> model = standalone_model(config, result.model)  # doctest: +SKIP
        >>> model.predict(uint8_images).sum(axis=1)  # class probabilities  # doctest: +SKIP
    """
    mapping = input_map(config, backbone)
    if mapping.channels != trained.input_shape[-1]:
        raise ValueError(f"the preprocessing gives {mapping.channels} channels, the model takes {trained.input_shape}")
    size = config.image_size
    pixels = keras.Input((None, None, 3), name="pixels")
    x = keras.layers.Resizing(size, size, interpolation="bilinear", antialias=True, name="resize")(pixels)
    x = mapping.layer("preprocess")(x)
    # A new, uncompiled view of the same layers: a compiled nested model would be saved with its
    # optimizer (FusedAdam, which needs this package to load).
    view = keras.Model(trained.inputs, trained.outputs, name=trained.name)
    return keras.Model(pixels, view(x), name=safe_name(config.name))


def save_standalone(model: keras.Model, path: str | Path, metadata: dict) -> Path:
    """Save `model` uncompiled (no optimizer, so nothing to warn about on load) with its metadata.

    `metadata` (JSON: at least `classes`, the class names in output order) goes to a sidecar
    `<path>.json` and into the .keras archive as `study.json` (read it back with `saved_metadata`).

    Example:
        >>> save_standalone(model, "storage/models/flowers.keras", {"classes": ["daisy", "rose"]})  # doctest: +SKIP
    """
    path = Path(path)
    text = json.dumps(metadata, indent=2, default=str)
    sidecar = path.with_suffix(".json")
    # Written under names of this process, then renamed into place: commands that share a study may
    # finish at once and save the same model, and a reader (or an upload) must never meet a half-written
    # or just-removed file. Keras needs the .keras suffix.
    tmp_model = path.with_name(f".{path.stem}.{os.getpid()}.keras")
    tmp_sidecar = path.with_name(f".{path.stem}.{os.getpid()}.json")
    with writing(path, partial=(tmp_model, tmp_sidecar)):  # a full disk: one line, no half-written model left
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(tmp_model)
        with zipfile.ZipFile(tmp_model, "a") as archive:
            archive.writestr("study.json", text)
        tmp_sidecar.write_text(text + "\n")
        os.replace(tmp_sidecar, sidecar)
        os.replace(tmp_model, path)
    return path


def saved_metadata(path: str | Path) -> dict:
    """The metadata `save_standalone` stored in a .keras file (class names: `["classes"]`).

    Example:
        >>> saved_metadata("storage/models/flowers.keras")["classes"]  # doctest: +SKIP
        ['daisy', 'rose']
    """
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("study.json"))


