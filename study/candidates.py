"""Which layers a trial fine-tunes: each strategy turns a backbone into an ordered list of candidates.

Candidates are listed from the input end to the output end; the grid sampler visits them output
end first, as the paper does.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from study.backbones import block_delimiters
from study.config import StudyConfig
from study.errors import StudyError


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A named group of backbone layers that are fine-tuned together with the classifier head."""

    name: str
    layers: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "layers": list(self.layers)}


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of the model in graph order, nested models opened up."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layers.extend(all_layers(layer))
        else:
            layers.append(layer)
    return layers


def is_weighted(layer: keras.layers.Layer) -> bool:
    """A weighted layer has a trainable kernel: Conv2D, DepthwiseConv2D, SeparableConv2D, Dense."""
    return any(weight.name.endswith("kernel") for weight in layer.weights)


def weighted_layers(model: keras.Model) -> list[str]:
    """Names of the weighted layers, input end first.

    Example:
        >>> weighted_layers(keras.applications.VGG16(include_top=False, weights=None))[:2]
        ['block1_conv1', 'block1_conv2']
    """
    return [layer.name for layer in all_layers(model) if is_weighted(layer)]


def blocks(model: keras.Model, delimiters: tuple[str, ...]) -> list[list[str]]:
    """Weighted layers grouped into blocks: a layer whose class is a delimiter ends a block.

    Example:
        >>> vgg = keras.applications.VGG16(include_top=False, weights=None)
        >>> len(blocks(vgg, ("MaxPooling2D",)))
        5
    """
    unknown = [name for name in delimiters if not hasattr(keras.layers, name)]
    if unknown:
        raise StudyError(
            f"--delimiters: {', '.join(unknown)} is not a Keras layer class; "
            "use class names such as MaxPooling2D,ZeroPadding2D,Add"
        )
    groups: list[list[str]] = [[]]
    for layer in all_layers(model):
        if type(layer).__name__ in delimiters:
            if groups[-1]:
                groups.append([])
        elif is_weighted(layer):
            groups[-1].append(layer.name)
    return [group for group in groups if group]


def windows(names: list[str], size: int) -> list[list[str]]:
    """Every run of `size` consecutive weighted layers (stride 1).

    Example:
        >>> windows(["a", "b", "c", "d"], 3)
        [['a', 'b', 'c'], ['b', 'c', 'd']]
    """
    return [names[i : i + size] for i in range(max(0, len(names) - size) + 1)] if names else []


def make_candidates(
    config: StudyConfig, model: keras.Model, ranked_layers: list[str] | None = None
) -> list[Candidate]:
    """The ordered candidates of the configured strategy for this backbone.

    `ranked_layers` (best first, from the layer-wise study: study.ranking) is needed by `topk` only.

    Example:
        >>> config = StudyConfig(model="vgg16", strategy="block").validate()
        >>> [c.name for c in make_candidates(config, keras.applications.VGG16(include_top=False, weights=None))][0]
        'block-01:block1_conv1..block1_conv2'
    """
    names = weighted_layers(model)
    if not names:
        raise StudyError(f"--model {config.model}: the model has no weighted (kernel) layers to tune")
    strategy = config.strategy
    if strategy == "layer":
        return [Candidate(f"layer-{i:03d}:{name}", (name,)) for i, name in enumerate(names, 1)]
    if strategy == "block":
        groups = blocks(model, block_delimiters(config))
        return [_group("block", i, group, 2) for i, group in enumerate(groups, 1)]
    if strategy == "window":
        groups = windows(names, config.window_size)
        return [_group("window", i, group, 3) for i, group in enumerate(groups, 1)]
    if strategy == "head":
        return [Candidate("head", ())]
    if strategy == "full":
        return [Candidate("full", tuple(layer.name for layer in all_layers(model) if layer.weights))]
    if strategy == "random":
        return random_candidates(names, config.random_k, config.random_draws, config.seed)
    if strategy == "topk":
        return [top_k_candidate(ranked_layers or [], config.top_k, names)]
    raise StudyError(f"--strategy {strategy!r} has no candidate generator")


def top_k_candidate(ranked: list[str], k: int, names: list[str]) -> Candidate:
    """The `k` best layers of a layer-wise ranking, tuned together (the paper's BWT3 and BWT5).

    Example:
        >>> top_k_candidate(["c", "a", "b"], 2, ["a", "b", "c"])
        Candidate(name='top-2:c+a', layers=('c', 'a'))
    """
    unknown = [name for name in ranked if name not in names]
    if unknown:
        raise StudyError(f"the layer ranking names layers this model does not have: {', '.join(unknown[:3])}")
    if k > len(ranked):
        raise StudyError(f"--top-k {k} is more than the {len(ranked)} ranked layers of the layer-wise study")
    return Candidate(f"top-{k}:" + "+".join(ranked[:k]), tuple(ranked[:k]))


def layer_summary(model: keras.Model, delimiters: tuple[str, ...]) -> list[dict]:
    """Every layer in graph order with its class, parameter count and whether it ends a block.

    Stored in the study so a report can draw parameters per layer without building the model.

    Example:
        >>> layer_summary(keras.applications.VGG16(include_top=False, weights=None), ("MaxPooling2D",))[1]
        {'name': 'block1_conv1', 'class': 'Conv2D', 'params': 1792, 'weighted': True, 'ends_block': False}
    """
    return [
        {
            "name": layer.name,
            "class": type(layer).__name__,
            "params": int(sum(np.prod(weight.shape) for weight in layer.weights)),
            "weighted": is_weighted(layer),
            "ends_block": type(layer).__name__ in delimiters,
        }
        for layer in all_layers(model)
    ]


def random_candidates(names: list[str], k: int, draws: int, seed: int) -> list[Candidate]:
    """`draws` sets of `k` weighted layers picked at random (the paper's random-3 baseline)."""
    if k > len(names):
        raise StudyError(f"--random-k {k} is more than the model's {len(names)} weighted layers")
    rng = np.random.default_rng(seed)
    picks = [sorted(rng.choice(len(names), size=k, replace=False)) for _ in range(draws)]
    return [
        Candidate(f"random-{i:02d}:" + "+".join(names[j] for j in pick), tuple(names[j] for j in pick))
        for i, pick in enumerate(picks, 1)
    ]


def _group(kind: str, index: int, group: list[str], width: int) -> Candidate:
    label = group[0] if len(group) == 1 else f"{group[0]}..{group[-1]}"
    return Candidate(f"{kind}-{index:0{width}d}:{label}", tuple(group))
