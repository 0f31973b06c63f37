"""The frozen-prefix cache: run the layers below a candidate once, then train from their outputs.

Frozen layers that no tuned layer feeds give the same outputs in every epoch (BatchNormalization
runs in inference mode), so a trial computes them once per split and trains a model that starts
from those activations. In residual networks every tensor that crosses the cut is cached, not only
one layer's output. Trials that cut at the same place share the activations.
"""

from __future__ import annotations

import collections
import dataclasses
import os

import keras
import numpy as np

from keras.src.ops.function import make_node_key

from study.candidates import Candidate


@dataclasses.dataclass
class Cut:
    """A backbone split into a frozen prefix and the trainable rest.

    `prefix` maps the backbone input to the crossing tensors; `suffix` maps them to the backbone
    output (None when nothing is tuned: the head trains on the backbone's features directly).
    """

    key: tuple[str, ...]  # the layers whose outputs cross the cut: equal keys, equal activations
    prefix: keras.Model
    suffix: keras.Model | None
    inputs: list  # KerasTensors of the crossing tensors, in the order the prefix returns them

    def bytes_per_image(self) -> int:
        return sum(int(np.prod(t.shape[1:])) * 4 for t in self.inputs)


def find_cut(backbone: keras.Model, candidate: Candidate) -> Cut | None:
    """The cut below the candidate, or None when the first layer is tuned (nothing to cache).

    Example:
        >>> vgg = keras.applications.VGG16(include_top=False, weights=None)
        >>> find_cut(vgg, Candidate("b5", ("block5_conv1",))).key
        ('block4_pool',)
    """
    tuned = set(candidate.layers)
    live: set[int] = set()  # ids of layers that a tuned layer feeds, directly or not
    crossing: dict[int, object] = {}
    for layer in backbone.layers:
        node = _node_in(backbone, layer)
        if node is None:
            continue
        producers = [t._keras_history[0] for t in node.input_tensors]
        if _is_tuned(layer, tuned) or any(id(p) in live for p in producers):
            live.add(id(layer))
            for tensor, producer in zip(node.input_tensors, producers):
                if id(producer) not in live:
                    crossing.setdefault(id(tensor), tensor)
    if not live:  # nothing tuned: the whole backbone is the prefix
        outputs = list(backbone.outputs)
        return Cut(tuple(t._keras_history[0].name for t in outputs), keras.Model(backbone.inputs, outputs), None, outputs)
    tensors = list(crossing.values())
    if all(isinstance(t._keras_history[0], keras.layers.InputLayer) for t in tensors):
        return None
    prefix = keras.Model(backbone.inputs, tensors)
    suffix = keras.Model(tensors[0] if len(tensors) == 1 else tensors, backbone.output)
    return Cut(tuple(t._keras_history[0].name for t in tensors), prefix, suffix, tensors)


class PrefixCache:
    """Keeps the prefix activations of recent cuts in host memory, within a byte budget.

    Example:
        >>> cache = PrefixCache(budget_bytes=2 * 2**30)
        >>> activations = cache.activations(cut, "search_train", images, seed=0)
    """

    def __init__(self, budget_bytes: int | None = None):
        self.budget_bytes = default_budget() if budget_bytes is None else int(budget_bytes)
        self._entries: collections.OrderedDict[tuple, list[np.ndarray]] = collections.OrderedDict()

    @property
    def used_bytes(self) -> int:
        return sum(a.nbytes for arrays in self._entries.values() for a in arrays)

    def fits(self, cut: Cut, images: int) -> bool:
        return cut.bytes_per_image() * images <= self.budget_bytes

    def activations(self, cut: Cut, split: str, images: np.ndarray, seed: int) -> list[np.ndarray]:
        """The crossing tensors for `images`, computed once per (cut, split, seed)."""
        key = (cut.key, split, seed)  # seed: random-init backbones differ between seeds
        if key not in self._entries:
            outputs = cut.prefix.predict(images, batch_size=64, verbose=0)
            arrays = [np.asarray(a, np.float32) for a in (outputs if isinstance(outputs, list) else [outputs])]
            self._entries[key] = arrays
            while self.used_bytes > self.budget_bytes and len(self._entries) > 1:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        return self._entries[key]


def default_budget() -> int:
    """Half of the memory available now: the rest is for the model, the images and the system."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        available = 8 * 2**30
    return int(available * 0.5)


def _is_tuned(layer: keras.layers.Layer, tuned: set[str]) -> bool:
    if isinstance(layer, keras.Model):
        return any(_is_tuned(inner, tuned) for inner in layer.layers)
    return layer.name in tuned


def _node_in(model: keras.Model, layer: keras.layers.Layer):
    """The node through which `layer` takes part in `model`'s graph (None for input layers)."""
    if isinstance(layer, keras.layers.InputLayer):
        return None
    for index, node in enumerate(layer._inbound_nodes):
        if make_node_key(layer, index) in model._nodes:
            return node
    return None
