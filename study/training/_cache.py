"""The frozen-prefix cache: run the layers below a candidate once, then train from their outputs.

Frozen layers that no tuned layer feeds give the same outputs in every epoch (BatchNormalization
runs in inference mode), so a trial computes them once per split and trains a model that starts
from those activations. In residual networks every tensor that crosses the cut is cached, not only
one layer's output. Trials that cut at the same place share the activations, and the cuts of the
candidates still to come are computed in the same forward pass while they fit the budget (the cuts of
a layer-wise grid are nested, so the whole grid's prefixes cost one pass instead of one per trial).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
from typing import Callable

import keras
import numpy as np

from study.candidates import Candidate, all_layers
from study.runtime import layer_node_in, producer_of

PREFIX_BATCH = 64  # images per forward pass of the frozen prefix


@dataclasses.dataclass
class Cut:
    """A backbone split into a frozen prefix and the trainable rest.

    `inputs` are the tensors of `backbone` that cross the cut; `suffix` maps them to the backbone
    output (None when nothing is tuned: the head trains on the backbone's features directly).
    """

    key: tuple[str, ...]  # the layers whose outputs cross the cut: equal keys, equal activations
    inputs: list  # KerasTensors of the crossing tensors
    backbone: keras.Model

    def bytes_per_image(self) -> int:
        return sum(int(np.prod(t.shape[1:])) * 4 for t in self.inputs)

    @functools.cached_property
    def suffix(self) -> keras.Model | None:
        """Built only for the trial's own cut: planned cuts need just their key and size."""
        if all(any(t is output for output in self.backbone.outputs) for t in self.inputs):
            return None
        return keras.Model(self.inputs[0] if len(self.inputs) == 1 else self.inputs, self.backbone.output)


def find_cut(backbone: keras.Model, candidate: Candidate) -> Cut | None:
    """The cut below the candidate, or None when the first layer is tuned (nothing to cache).

    Example:
        >>> vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
        >>> find_cut(vgg, Candidate("b5", ("block5_conv1",))).key
        ('block4_pool',)
    """
    tuned = set(candidate.layers)
    live: set[int] = set()  # ids of layers that a tuned layer feeds, directly or not
    crossing: dict[int, object] = {}
    for layer in backbone.layers:
        node = layer_node_in(backbone, layer)
        if node is None:
            continue
        producers = [producer_of(t) for t in node.input_tensors]
        if _is_tuned(layer, tuned) or any(id(p) in live for p in producers):
            live.add(id(layer))
            for tensor, producer in zip(node.input_tensors, producers):
                if id(producer) not in live:
                    crossing.setdefault(id(tensor), tensor)
    if not live:  # nothing tuned: the whole backbone is the prefix
        outputs = list(backbone.outputs)
        return Cut(tuple(producer_of(t).name for t in outputs), outputs, backbone)
    tensors = list(crossing.values())
    if all(isinstance(producer_of(t), keras.layers.InputLayer) for t in tensors):
        return None
    return Cut(tuple(producer_of(t).name for t in tensors), tensors, backbone)


class PrefixCache:
    """Keeps the prefix activations of recent cuts in host memory, within a byte budget.

    `planned` are the candidates a study will train next, in order: when a cut is computed, as many
    of their cuts as fit in the free budget are computed in the same forward pass. It also keeps
    what consecutive trainings can share besides activations: the backbone (`backbone`) and
    compiled models with their traced training graphs (`kept_model`, study.training's fit): the
    last one, or up to `kept_models` of them.

    Example:
        >>> cache = PrefixCache(budget_bytes=2 * 2**30, planned=[])
        >>> activations = cache.activations(cut, "search_train", images, seed=0)  # doctest: +SKIP
    """

    def __init__(self, budget_bytes: int | None = None, planned: list[Candidate] = (), kept_models: int = 1):
        self.budget_bytes = default_budget() if budget_bytes is None else int(budget_bytes)
        self.kept_models = kept_models
        self.planned = list(planned)
        self._entries: collections.OrderedDict[tuple, list[np.ndarray]] = collections.OrderedDict()
        self._footprints: dict[str, tuple[tuple[str, ...] | None, int]] = {}
        self._backbone: keras.Model | None = None
        self._backbone_seed: int | None = None
        self._tuned: dict[str, list[np.ndarray]] = {}  # the last trial's layers, as built
        self._kept: dict[tuple, keras.Model] = {}  # compiled models with their traced graphs, by `keep_model` key

    def backbone(self, build: Callable[[], keras.Model], seed: int, candidate: Candidate) -> keras.Model:
        """The backbone built by `build` for `seed`, kept between trials for `candidate` to tune.

        Frozen layers never change, so instead of rebuilding the backbone every trial only the
        layers the previous trial tuned get their built weights back. Another seed builds another one.

        Example:
            >>> backbone = cache.backbone(lambda: build_backbone(config), seed=0, candidate=candidate)  # doctest: +SKIP
        """
        if self._backbone is None or self._backbone_seed != seed:
            self._backbone, self._backbone_seed, self._tuned = fresh_backbone(build, seed), seed, {}
            self._kept = {}  # they were built on the layers of the backbone just replaced
        layers = {layer.name: layer for layer in all_layers(self._backbone)}
        for name, weights in self._tuned.items():
            layers[name].set_weights(weights)
        self._tuned = {name: layers[name].get_weights() for name in candidate.layers}
        # A new view of the same layers for each trial: the trial's model connects to the view, so the
        # kept backbone does not collect every earlier trial's head and graphs (which made each
        # trial's garbage collection slower than the last).
        return keras.Model(self._backbone.input, self._backbone.output, name=self._backbone.name)

    def kept_model(self, key: tuple) -> keras.Model | None:
        """The compiled model kept by `keep_model` under `key`, if it is still kept."""
        return self._kept.get(key)

    def keep_model(self, key: tuple, model: keras.Model) -> None:
        """Keep `model` (compiled, its training graph traced) for the next training with the same `key`.

        With `kept_models` 1 (candidate by candidate) the last one: the repeats of a candidate and the
        seeds of the final stage follow each other, and a traced graph holds memory. With more (the
        search in rounds, which trains every candidate once per round) the first `kept_models`: the
        rounds visit the candidates in a cycle, where replacing the oldest would always miss. `key`
        must name everything the graph depends on; a new backbone (another seed) drops them all, as
        they were built on the old one's layers.
        """
        if self.kept_models == 1:
            self._kept = {key: model}
        elif len(self._kept) < self.kept_models:
            self._kept[key] = model

    @property
    def used_bytes(self) -> int:
        arrays = {id(a): a for entry in self._entries.values() for a in entry}  # cuts share tensors
        return sum(a.nbytes for a in arrays.values())

    def fits(self, cut: Cut, images: int) -> bool:
        return cut.bytes_per_image() * images <= self.budget_bytes

    def activations(self, cut: Cut, split: str, images: np.ndarray, seed: int) -> list[np.ndarray]:
        """The crossing tensors for `images`, computed once per (cut, split, seed)."""
        key = (cut.key, split, seed)  # seed: random-init backbones differ between seeds
        # A requested cut is no longer planned: its trial is running now.
        self.planned = [c for c in self.planned if self._footprint(c, cut.backbone)[0] != cut.key]
        if key not in self._entries:
            self._evict(cut.bytes_per_image() * len(images))
            self._compute([cut, *self._planned_cuts(cut, split, seed, len(images))], split, images, seed)
        self._entries.move_to_end(key)
        return self._entries[key]

    def _evict(self, needed: int) -> None:
        """Make room: least recently used first, cuts that planned candidates still need last."""
        planned = {self._footprints[c.name][0] for c in self.planned if c.name in self._footprints}
        while self._entries and self.used_bytes + needed > self.budget_bytes:
            victim = next((key for key in self._entries if key[0] not in planned), next(iter(self._entries)))
            del self._entries[victim]

    def _planned_cuts(self, cut: Cut, split: str, seed: int, images: int) -> list[Cut]:
        """Cuts of planned candidates not cached yet, in plan order, that fit next to `cut`."""
        free = self.budget_bytes - self.used_bytes - cut.bytes_per_image() * images
        chosen, keys = [], {cut.key}
        for candidate in self.planned:
            key, per_image = self._footprint(candidate, cut.backbone)
            if key is None or key in keys or (key, split, seed) in self._entries or per_image * images > free:
                continue
            chosen.append(find_cut(cut.backbone, candidate))
            keys.add(key)
            free -= per_image * images
        return chosen

    def _footprint(self, candidate: Candidate, backbone: keras.Model) -> tuple[tuple[str, ...] | None, int]:
        """The key and bytes per image of a candidate's cut (layer names do not change between builds)."""
        if candidate.name not in self._footprints:
            cut = find_cut(backbone, candidate)
            self._footprints[candidate.name] = (None, 0) if cut is None else (cut.key, cut.bytes_per_image())
        return self._footprints[candidate.name]

    def _compute(self, cuts: list[Cut], split: str, images: np.ndarray, seed: int) -> None:
        """One forward pass that returns every tensor crossing any of `cuts`."""
        tensors = list({id(t): t for cut in cuts for t in cut.inputs}.values())
        position = {id(t): i for i, t in enumerate(tensors)}
        prefix = keras.Model(cuts[0].backbone.inputs, tensors)
        # Written batch by batch into arrays of the final size: `predict` would hold every batch's
        # outputs and their concatenation at once, twice the budget at the peak.
        arrays = [np.empty((len(images), *t.shape[1:]), np.float32) for t in tensors]
        for start in range(0, len(images), PREFIX_BATCH):
            outputs = prefix.predict_on_batch(images[start:start + PREFIX_BATCH])
            for array, output in zip(arrays, outputs if isinstance(outputs, list) else [outputs]):
                array[start:start + PREFIX_BATCH] = output
        for cut in reversed(cuts):  # the trial's own cut ends up most recent
            self._entries[(cut.key, split, seed)] = [arrays[position[id(t)]] for t in cut.inputs]


def fresh_backbone(build: Callable[[], keras.Model], seed: int) -> keras.Model:
    """`build()` in a new Keras session with every random generator seeded: the same seed, the same backbone."""
    keras.backend.clear_session(free_memory=True)
    keras.utils.set_random_seed(seed)
    return build()


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
