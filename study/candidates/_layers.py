"""A backbone's layers as the strategies see them, and the candidates of the configured strategy.

Everything here walks a Keras model (nested models opened up); the strategies themselves
(study.candidates's strategies) work on the resulting layer records only.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from study.candidates._strategies import STRATEGIES, Candidate, block_groups
from study.config import StudyConfig
from study.inputs import block_delimiters, block_pattern, build_backbone, is_weighted
from study.runtime import StudyError
from study.storage import CLASS, ENDS_BLOCK, NAME, PARAMS, WEIGHTED


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of the model in graph order, nested models opened up."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layers.extend(all_layers(layer))
        else:
            layers.append(layer)
    return layers


def weighted_layers(model: keras.Model) -> list[str]:
    """Names of the weighted layers, input end first.

    Example:
        >>> weighted_layers(keras.applications.VGG16(include_top=False, weights=None))[:2]
        ['block1_conv1', 'block1_conv2']
    """
    return [layer.name for layer in all_layers(model) if is_weighted(layer)]


def check_delimiters(delimiters: tuple[str, ...]) -> None:
    """Refuse layer class names Keras does not have (every strategy, not only block, uses them)."""
    unknown = [name for name in delimiters if not hasattr(keras.layers, name)]
    if unknown:
        raise StudyError(
            f"--delimiters: {', '.join(unknown)} is not a Keras layer class; "
            "use class names such as MaxPooling2D,ZeroPadding2D,Add"
        )


def layer_summary(model: keras.Model, delimiters: tuple[str, ...], pattern: str | None = None) -> list[dict]:
    """Every layer in graph order with its class, parameter count and whether it ends a block.

    Stored in the study so a report can draw parameters per layer without building the model, and
    the input of every strategy (study.candidates's strategies). With a block name `pattern` (a backbone such as
    EfficientNet), the last weighted layer of each block but the last ends it.

    Example:
        >>> layer_summary(keras.applications.VGG16(include_top=False, weights=None), ("MaxPooling2D",))[1]
        {'name': 'block1_conv1', 'class': 'Conv2D', 'params': 1792, 'weighted': True, 'ends_block': False}
    """
    check_delimiters(delimiters)
    layers = [
        {
            NAME: layer.name,
            CLASS: type(layer).__name__,
            PARAMS: int(sum(np.prod(weight.shape) for weight in layer.weights)),
            WEIGHTED: is_weighted(layer),
            ENDS_BLOCK: type(layer).__name__ in delimiters,
        }
        for layer in all_layers(model)
    ]
    if pattern is not None:
        ends = {group[-1] for group in block_groups(layers, pattern)[:-1]}
        for layer in layers:
            layer[ENDS_BLOCK] = layer[NAME] in ends
    return layers


def make_candidates(
    config: StudyConfig, model: keras.Model, ranked_layers: list[str] | None = None
) -> list[Candidate]:
    """The ordered candidates of the configured strategy for this backbone.

    `ranked_layers` (best first, from the layer-wise study: `layer_ranking`) is needed by `topk` only.

    Example:
        >>> config = StudyConfig(model="vgg16", strategy="block").validate()
        >>> [c.name for c in make_candidates(config, keras.applications.VGG16(include_top=False, weights=None))][0]
        'block-01:block1_conv1..block1_conv2'
    """
    layers = layer_summary(model, block_delimiters(config), block_pattern(config))
    if not any(layer[WEIGHTED] for layer in layers):
        raise StudyError(f"--model {config.model}: the model has no weighted (kernel) layers to tune")
    return STRATEGIES[config.strategy].generate(layers, config, ranked_layers, block_pattern(config))


def check_strategies(configs: list[StudyConfig]) -> None:
    """Make the candidates of every configuration (top-k from a stand-in ranking) and throw them
    away: with `--strategy all`, an option no step can use (a window wider than the model, a K
    larger than its layers) is refused before the first study starts, not hours later.

    Example:
        >>> check_strategies([StudyConfig(model="vgg16", weights="none", image_size=32, strategy="window",
        ...                               window_size=99).validate()])
        Traceback (most recent call last):
        study.runtime.StudyError: --window-size 99 is more than the model's 13 weighted layers; use at most 13
    """
    first = configs[0]
    # The architecture is what matters here: keras.applications models are built without weights.
    model = build_backbone(first if first.is_model_file else dataclasses.replace(first, weights="none"))
    for config in configs:
        ranked = weighted_layers(model) if config.strategy == "topk" else None
        make_candidates(config, model, ranked_layers=ranked)
