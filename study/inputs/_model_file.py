"""A user's saved Keras model as a backbone: load it safely, check it, give it one shape.

`load_model_file` turns any reasonable `.keras` file into the shape the rest of the tool expects:
a flat functional model with one fixed-size image input (`--image-size`, 1 or 3 channels) and one
feature-map output, every weighted layer a direct layer of it (nested models and `Sequential`s are
opened up into one graph that shares the loaded layers and weights). What cannot work is refused with a
one-line `StudyError` that says what was received and what to do, before any study is written.

Accepted: flexible spatial input `(None, None, C)` (built at `--image-size`); a fixed input equal to
`--image-size` (another size: the error names the size to pass); outputs given as a one-element list or
dict; nested models (Keras's transfer-learning guide style, `keras.Model(x, base(rescale(x)))`);
`Sequential` models; preprocessing layers inside; grayscale (1-channel) inputs; a classifier top still
attached. Refused: several inputs, non-image inputs, channels-first images, no weighted layer, a file
that is not a Keras model, unregistered custom layers, Lambda layers with Python code (the file is always
loaded with `safe_mode=True`).

Where the head goes (the *features layer*): `--features-layer NAME`, or else the model's output if it
is a 4-D feature map (N, H, W, C). If the output is not 4-D (a top is still attached: pooling, dropout,
a classifier), the tool walks back from the output through single-input layers to the last 4-D tensor
and drops everything after it; if the top is not a single chain, the error asks for `--features-layer`.

Pixel scaling (the `model` choice of `--input-scaling`, `input_map`): images arrive as
RGB uint8. A model with a Rescaling or Normalization layer before its first weighted layer
(`scales_inside`) scales its own input, so it gets the raw 0..255 pixels and nothing is scaled twice.
Any other model file gets 0..1 (pixels / 255): a model without a scaling layer was trained on pixels
scaled outside it, 0..1 is the most common such convention and the paper's, and a network fed 0..255
where it expects 0..1 sees activations 255 times too large, a far worse mismatch than 0..1 where -1..1 was
expected. `--input-scaling` overrides the rule. A 1-channel model gets the luminance of the RGB pixels
(the weights of `tf.image.rgb_to_grayscale`), scaled the same way.

The private Keras internals this needs are in study.runtime's keras compat (`run_graph`, `is_graph_model`).

Example:
    >>> backbone = load_model_file("my_model.keras", image_size=224)  # doctest: +SKIP
    >>> backbone.input_shape, scales_inside(backbone), input_channels(backbone)  # doctest: +SKIP
    ((None, 224, 224, 3), True, 3)
"""

from __future__ import annotations

import collections
import os
import re
import zipfile

import keras

from study.runtime import StudyError, first_line, is_graph_model, run_graph

SCALING_LAYERS = ("Rescaling", "Normalization")


def load_model_file(
    path: str, image_size: int, features_layer: str | None = None, weights: str | None = None
) -> keras.Model:
    """The saved model at `path` as a flat backbone: one (image_size, image_size, C) input, one output.

    `weights`: a weights file saved from the same model (`--weights PATH`), loaded before anything else.

    Example:
        >>> load_model_file("tiny.keras", 32).input_shape  # doctest: +SKIP
        (None, 32, 32, 3)
    """
    model = read_model(path)
    if weights is not None:
        try:
            model.load_weights(weights)
        except Exception as error:
            raise StudyError(
                f"--weights {weights} does not fit --model {path} ({first_line(error)}); "
                "give a weights file saved from that model (model.save_weights)"
            ) from None
    return normalise(model, image_size, features_layer, label=f"--model {path}")


def read_model(path: str) -> keras.Model:
    """`keras.models.load_model(path, safe_mode=True)`, every failure turned into a one-line StudyError."""
    label = f"--model {path}"
    if not os.path.isfile(path):
        raise StudyError(f"{label}: no such file; give a saved .keras model")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as file:
            head = file.read(8)
        if head.startswith(b"\x89HDF"):
            raise StudyError(
                f"{label} is an HDF5 (.h5) file, not the .keras format; load it in Keras and save it "
                "again with model.save('model.keras')"
            )
        raise StudyError(
            f"{label} is not a Keras model file (a .keras file is a zip archive, this one is not); "
            "save the model with model.save('model.keras')"
        )
    with zipfile.ZipFile(path) as archive:
        if "config.json" not in archive.namelist():
            raise StudyError(
                f"{label} is a zip archive but not a saved Keras model (it has no config.json); "
                "save the model with model.save('model.keras')"
            )
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        raise StudyError(_load_problem(label, error)) from None
    if not isinstance(model, keras.Model):
        raise StudyError(f"{label} holds a {type(model).__name__}, not a model; save a keras.Model")
    return model


def normalise(
    model: keras.Model, image_size: int, features_layer: str | None = None, label: str = "the model"
) -> keras.Model:
    """`model` as one flat graph at `image_size`, cut at its features layer (see the module docstring).

    Layers keep their names; a nested layer whose name is also used elsewhere in the model is named
    `<nested model>.<layer>`, so every name in the flat model is unique.

    Example:
        >>> base = keras.applications.VGG16(include_top=False, weights=None)
        >>> inputs = keras.Input((None, None, 3))
        >>> flat = normalise(keras.Model(inputs, base(inputs)), 32)
        >>> flat.get_layer("block1_conv1") is base.get_layer("block1_conv1")
        True
    """
    inputs = _model_inputs(model, label)
    shape = _input_shape(inputs, image_size, label)
    _rename_nested(model)
    flat_input = keras.Input(shape=shape, name=_input_name(model))
    tracer = _Tracer()
    try:
        outputs = tracer.model(model, flat_input)
    except StudyError:
        raise
    except Exception as error:
        raise StudyError(
            f"{label} cannot be built at {image_size}x{image_size} px ({first_line(error)}); "
            "pass another --image-size"
        ) from None
    features = _features(tracer, outputs, features_layer, label)
    if features is flat_input:
        raise StudyError(f"{label}: its features layer is its input; pass --features-layer NAME of a layer after it")
    flat = keras.Model(flat_input, features, name=model.name)
    if not any(is_weighted(layer) for layer in flat.layers):
        below = f" at or below --features-layer {features_layer}" if features_layer else ""
        raise StudyError(
            f"{label} has no weighted layer (Conv2D, DepthwiseConv2D, SeparableConv2D or Dense){below}, "
            "so there is nothing to fine-tune; give a model with trainable convolution or dense layers"
        )
    return flat


def scales_inside(model: keras.Model) -> bool:
    """True if a Rescaling or Normalization layer comes before the model's first weighted layer.

    Such a model scales its own input: it gets the raw 0..255 pixels.

    Example:
        >>> scales_inside(keras.applications.MobileNetV3Small(include_top=False, weights=None))
        True
    """
    for layer in _leaves(model):
        if type(layer).__name__ in SCALING_LAYERS:
            return True
        if is_weighted(layer):
            return False
    return False


def input_channels(model: keras.Model) -> int:
    """Channels of the model's image input: 3 (RGB) or 1 (grayscale).

    Example:
        >>> input_channels(keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(4, 3)]))
        1
    """
    return int(model.inputs[0].shape[-1])


# ---------------------------------------------------------------------------------------------
# Checks


def _model_inputs(model: keras.Model, label: str) -> list:
    try:
        inputs = list(model.inputs)
    except Exception:  # a Sequential model saved without an input shape
        inputs = []
    if not inputs:
        raise StudyError(
            f"{label} has no defined input (a Sequential model saved before it was built); "
            "add keras.Input((None, None, 3)) as its first layer and save it again"
        )
    if len(inputs) > 1:
        shapes = ", ".join(str(tuple(t.shape[1:])) for t in inputs)
        raise StudyError(
            f"{label} has {len(inputs)} inputs ({shapes}); the tool feeds a model a single batch of "
            "images: give a model with one image input of shape (height, width, channels)"
        )
    return inputs


def _input_shape(inputs: list, image_size: int, label: str) -> tuple[int, int, int]:
    tensor = inputs[0]
    shape = tuple(tensor.shape[1:])
    dtype = str(getattr(tensor, "dtype", "float32"))
    if len(shape) != 3 or not ("float" in dtype or "int" in dtype):
        raise StudyError(
            f"{label} takes inputs of shape {shape} and dtype {dtype}, not images; give a model whose "
            "single input is an image of shape (height, width, channels)"
        )
    height, width, channels = shape
    if channels not in (1, 3):
        if shape[0] in (1, 3):
            raise StudyError(
                f"{label} takes channels-first images {shape}; the tool gives channels-last images "
                "(height, width, channels): save the model with data_format='channels_last'"
            )
        raise StudyError(
            f"{label} takes images with {channels} channels {shape}; the tool gives RGB (3 channels) "
            "or grayscale (1 channel) images: give a model with 3 or 1 input channels"
        )
    fixed = [d for d in (height, width) if d is not None]
    if fixed and any(d != image_size for d in fixed):
        if height is not None and height == width:
            raise StudyError(
                f"{label} takes {height}x{width} images, not {image_size}x{image_size}; "
                f"pass --image-size {height}"
            )
        raise StudyError(
            f"{label} takes {height}x{width} images; the tool gives square images of --image-size "
            f"({image_size}): give a model with a square or flexible input (None, None, {channels})"
        )
    return image_size, image_size, channels


def _load_problem(label: str, error: Exception) -> str:
    text = str(error)
    lambda_code = "Lambda" in text and ("lambda" in text or "safe_mode" in text)
    if lambda_code or ("safe_mode" in text and "deserializ" in text):
        return (
            f"{label} contains a Lambda layer with Python code, which is never loaded (it could run "
            "any code); rebuild the model with built-in layers (e.g. Rescaling instead of a scaling "
            "Lambda) and save it again"
        )
    unknown = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
    if unknown:
        return (
            f"{label} uses '{unknown.group(1)}', which is not a built-in Keras layer and is not "
            "registered; rebuild the model from built-in layers, or register the class with "
            "@keras.saving.register_keras_serializable in a module imported before study.run.main()"
        )
    return (
        f"{label}: cannot load it as a Keras model ({first_line(error)}); "
        "check that it was saved with model.save('model.keras') by Keras 3"
    )


# ---------------------------------------------------------------------------------------------
# Flattening


def is_weighted(layer: keras.layers.Layer) -> bool:
    """A weighted layer has a trainable kernel: Conv2D, DepthwiseConv2D, SeparableConv2D, Dense."""
    return any(weight.name.endswith("kernel") for weight in layer.weights)


def _children(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _leaves(model: keras.Model):
    """Non-model layers in graph order, nested models opened up, each layer once."""
    seen: set[int] = set()

    def walk(container):
        for layer in _children(container):
            if is_graph_model(layer):
                yield from walk(layer)
            elif id(layer) not in seen:
                seen.add(id(layer))
                yield layer

    return walk(model)


def _rename_nested(model: keras.Model) -> None:
    """Give nested layers whose names clash a unique, readable name: `<nested model>.<layer>`."""
    seen: set[int] = set()
    placed: list[tuple[tuple[str, ...], keras.layers.Layer]] = []

    def walk(container, prefix):
        for layer in _children(container):
            if is_graph_model(layer):
                walk(layer, (*prefix, layer.name))
            elif id(layer) not in seen:
                seen.add(id(layer))
                placed.append((prefix, layer))

    walk(model, ())
    counts = collections.Counter(layer.name for _, layer in placed)
    for prefix, layer in placed:
        if prefix and counts[layer.name] > 1:
            layer.name = ".".join((*prefix, layer.name))


def _input_name(model: keras.Model) -> str:
    taken = {layer.name for layer in _leaves(model)}
    return next(name for name in ("image", "image_input", "study_image") if name not in taken)


class _Tracer:
    """Calls every leaf layer of a (nested) model on new tensors, and remembers what each call made."""

    def __init__(self):
        self.outputs: dict[str, object] = {}  # layer name -> outputs of its (last) call
        self.order: list[str] = []  # layer names in call order
        self.made_by: dict[int, tuple[keras.layers.Layer, list]] = {}  # id(tensor) -> (layer, inputs)

    def model(self, model: keras.Model, inputs):
        if isinstance(model, keras.Sequential):
            for layer in _children(model):
                inputs = self.call(layer, (inputs,), {})
            return inputs
        return run_graph(model, inputs, self.call)

    def call(self, layer, args, kwargs):
        if is_graph_model(layer):
            # A nested model's own call arguments (training=False in the transfer-learning guide)
            # are dropped: the tool calls the whole backbone with training=False.
            outputs = self.model(layer, args[0])
            self.outputs[layer.name] = outputs  # --features-layer may name the nested model: its output
            return outputs
        outputs = layer(*args, **kwargs)
        flat_inputs = [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]
        for tensor in keras.tree.flatten(outputs):
            self.made_by[id(tensor)] = (layer, flat_inputs)
        if layer.name not in self.outputs:
            self.order.append(layer.name)
        self.outputs[layer.name] = outputs
        return outputs


def _features(tracer: _Tracer, outputs, features_layer: str | None, label: str):
    """The tensor the head goes on (see the module docstring)."""
    if features_layer:
        if features_layer not in tracer.outputs:
            raise StudyError(
                f"--features-layer {features_layer}: {label} has no layer of that name; "
                f"layers with a 4-D feature map near its output: {', '.join(_last_maps(tracer)) or 'none'}"
            )
        produced = keras.tree.flatten(tracer.outputs[features_layer])
        if len(produced) != 1 or len(produced[0].shape) < 2:
            raise StudyError(
                f"--features-layer {features_layer}: that layer gives {len(produced)} tensors of shapes "
                f"{[tuple(t.shape) for t in produced]}; choose a layer with one output of rank 2 to 4"
            )
        return produced[0]
    tensors = keras.tree.flatten(outputs)
    if len(tensors) != 1:
        raise StudyError(
            f"{label} has {len(tensors)} outputs {[tuple(t.shape) for t in tensors]}; pass "
            "--features-layer NAME to choose the layer the classifier head goes on"
        )
    tensor = tensors[0]
    while len(tensor.shape) != 4:
        layer, inputs = tracer.made_by.get(id(tensor), (None, []))
        if layer is None or len(inputs) != 1:
            where = f" after {layer.name}" if layer is not None else ""
            raise StudyError(
                f"{label} gives outputs of shape {tuple(tensors[0].shape)}, not a 4-D feature map, and "
                f"its top is not a single chain of layers{where}; pass --features-layer NAME to choose "
                f"the layer the classifier head goes on (e.g. {', '.join(_last_maps(tracer)) or 'a conv layer'})"
            )
        tensor = inputs[0]
    return tensor


def _last_maps(tracer: _Tracer, count: int = 3) -> list[str]:
    names = [
        name for name in tracer.order
        if any(len(t.shape) == 4 for t in keras.tree.flatten(tracer.outputs[name]))
    ]
    return names[-count:]


