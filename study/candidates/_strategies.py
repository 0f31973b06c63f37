"""The strategies: how a backbone's layers become candidates, one registry like `BACKBONES`.

A strategy works on the backbone's layer records (`layer_summary`: name, class,
parameters, weighted, block end), not on a Keras model, so it is plain Python: the configuration
validates names against this registry and the report takes labels from it without building anything.
Candidates are listed from the input end to the output end; the grid visits them output end first.

Example:
    >>> layers = [{"name": n, "weighted": True, "ends_block": False, "params": 1} for n in "abcd"]
    >>> [c.name for c in STRATEGIES["window"].generate(layers, _Options(window_size=3))]
    ['window-001:a..c', 'window-002:b..d']
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Callable

import numpy as np

from study.candidates._greedy import greedy_slots
from study.runtime import StudyError
from study.storage import CLASS, ENDS_BLOCK, LAYERS, NAME, PARAMS, RECIPE, WEIGHTED

# How a candidate's layers are trained (study.training.fine_tune): plainly (Adam, one fit), LP-FT (the head
# alone first, then every layer from that head) or Auto-RGN (each layer's step scaled by its relative
# gradient norm).
RECIPES = ("plain", "lpft", "autorgn")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A named group of backbone layers that are fine-tuned together with the classifier head, and
    the recipe that trains them (`RECIPES`)."""

    name: str
    layers: tuple[str, ...]
    recipe: str = "plain"

    def to_dict(self) -> dict:
        return {NAME: self.name, LAYERS: list(self.layers), **({RECIPE: self.recipe} if self.recipe != "plain" else {})}


@dataclasses.dataclass(frozen=True)
class Strategy:
    """One way of choosing candidates; `generate(layers, options, ranked)` lists them.

    `options` is anything with the configuration's fields (window_size, random_k, random_draws,
    seed, top_k, greedy_margin); `ranked` is the layer-wise study's ranking, best first (top-k), or the
    greedy study's own finished slots and their values (greedy); `pattern` is
    the backbone's block name pattern (block only, see `block_groups`).
    """

    key: str
    label: str  # the paper's name (Table I column)
    description: str
    generate: Callable[..., list[Candidate]]


def weighted_names(layers: list[dict]) -> list[str]:
    """Names of the weighted layers, input end first."""
    return [layer[NAME] for layer in layers if layer[WEIGHTED]]


def block_groups(layers: list[dict], pattern: str | None = None) -> list[list[str]]:
    """Weighted layers grouped into blocks.

    Without `pattern`, a layer that ends a block (a delimiter class) closes the current group.
    With `pattern` (a regex), consecutive weighted layers whose names give the same key (the first
    group of `re.match(pattern, name)` that matched) form one block; a layer that does not match is a
    block of its own.

    Example:
        >>> layers = [{"name": n, "weighted": True, "ends_block": False} for n in ("s1_a", "s1_b", "s2_a", "top")]
        >>> block_groups(layers, r"(s\\d+)_")
        [['s1_a', 's1_b'], ['s2_a'], ['top']]
    """
    groups: list[list[str]] = [[]]
    previous = None
    for layer in layers:
        if pattern is None:
            if layer[ENDS_BLOCK] and groups[-1]:
                groups.append([])
            if layer[WEIGHTED] and not layer[ENDS_BLOCK]:
                groups[-1].append(layer[NAME])
            continue
        if not layer[WEIGHTED]:
            continue
        match = re.match(pattern, layer[NAME])
        # The key: the first group that matched (a pattern may have alternatives), else the match.
        key = next((g for g in match.groups() if g is not None), match.group(0)) if match else ("own", layer[NAME])
        if key != previous and groups[-1]:
            groups.append([])
        groups[-1].append(layer[NAME])
        previous = key
    return [group for group in groups if group]


def windows(names: list[str], size: int) -> list[list[str]]:
    """Every run of `size` consecutive weighted layers (stride 1).

    Example:
        >>> windows(["a", "b", "c", "d"], 3)
        [['a', 'b', 'c'], ['b', 'c', 'd']]
    """
    if size > len(names):
        raise StudyError(
            f"--window-size {size} is more than the model's {len(names)} weighted layers; "
            f"use at most {len(names)}"
        )
    return [names[i : i + size] for i in range(len(names) - size + 1)]


def top_k_candidate(ranked: list[str], k: int, names: list[str]) -> Candidate:
    """The `k` best layers of a layer-wise ranking, tuned together (the paper's BWT3 and BWT5).

    Example:
        >>> top_k_candidate(["c", "a", "b"], 2, ["a", "b", "c"])
        Candidate(name='top-2:c+a', layers=('c', 'a'), recipe='plain')
    """
    unknown = [name for name in ranked if name not in names]
    if unknown:
        raise StudyError(f"the layer ranking names layers this model does not have: {', '.join(unknown[:3])}")
    if k > len(ranked):
        raise StudyError(f"--top-k {k} is more than the {len(ranked)} ranked layers of the layer-wise study")
    return Candidate(f"top-{k}:" + "+".join(ranked[:k]), tuple(ranked[:k]))


def random_candidates(names: list[str], k: int, draws: int, seed: int) -> list[Candidate]:
    """`draws` sets of `k` weighted layers picked at random (the paper's random-3 baseline).

    Example:
        >>> [c.layers for c in random_candidates(["a", "b", "c"], 2, 1, seed=0)]
        [('b', 'c')]
        >>> random_candidates(["a", "b", "c"], 2, 4, seed=0)
        Traceback (most recent call last):
        study.runtime.StudyError: --random-draws 4 is more than the 3 different sets of 2 of the model's 3 weighted layers; use at most 3
    """
    if k > len(names):
        raise StudyError(f"--random-k {k} is more than the model's {len(names)} weighted layers")
    distinct = math.comb(len(names), k)
    if draws > distinct:  # more draws could only repeat a set: refused before any is drawn
        raise StudyError(f"--random-draws {draws} is more than the {distinct} different sets of {k} of the model's "
                         f"{len(names)} weighted layers; use at most {distinct}")
    rng = np.random.default_rng(seed)
    picks = [sorted(rng.choice(len(names), size=k, replace=False)) for _ in range(draws)]
    return [
        Candidate(f"random-{i:02d}:" + "+".join(names[j] for j in pick), tuple(names[j] for j in pick))
        for i, pick in enumerate(picks, 1)
    ]


def _group(kind: str, index: int, group: list[str], width: int) -> Candidate:
    label = group[0] if len(group) == 1 else f"{group[0]}..{group[-1]}"
    return Candidate(f"{kind}-{index:0{width}d}:{label}", tuple(group))


def _layer(layers, options, ranked=None, pattern=None):
    return [Candidate(f"layer-{i:03d}:{name}", (name,)) for i, name in enumerate(weighted_names(layers), 1)]


def _block(layers, options, ranked=None, pattern=None):
    groups = block_groups(layers, pattern)
    return [_group("block", i, group, 2) for i, group in enumerate(groups, 1)]


def _window(layers, options, ranked=None, pattern=None):
    groups = windows(weighted_names(layers), options.window_size)
    return [_group("window", i, group, 3) for i, group in enumerate(groups, 1)]


def _head(layers, options, ranked=None, pattern=None):
    return [Candidate("head", ())]


def _full(layers, options, ranked=None, pattern=None):
    return [Candidate("full", tuple(layer[NAME] for layer in layers if layer[PARAMS]))]


def _lpft(layers, options, ranked=None, pattern=None):
    return [Candidate("lpft", _full(layers, options)[0].layers, recipe="lpft")]


def _autorgn(layers, options, ranked=None, pattern=None):
    # As the authors' code: BatchNormalization's scale and offset are not trained (their RGN skips "bn").
    tuned = tuple(layer[NAME] for layer in layers if layer[PARAMS] and layer.get(CLASS) != "BatchNormalization")
    return [Candidate("autorgn", tuned, recipe="autorgn")]


def _greedy(layers, options, ranked=None, pattern=None):
    # `ranked`: here the values of the greedy study's own finished slots (None or {} before any).
    slots, _ = greedy_slots(block_groups(layers, pattern), ranked, options.greedy_margin)
    return [Candidate(name, tuned) for name, tuned in slots]


def _random(layers, options, ranked=None, pattern=None):
    return random_candidates(weighted_names(layers), options.random_k, options.random_draws, options.seed)


def _topk(layers, options, ranked=None, pattern=None):
    return [top_k_candidate(ranked or [], options.top_k, weighted_names(layers))]


STRATEGIES: dict[str, Strategy] = {
    s.key: s
    for s in (
        Strategy("head", "Baseline I", "the classifier head only (Baseline I)", _head),
        Strategy("full", "Baseline II", "every layer (Baseline II)", _full),
        Strategy("layer", "LW", "one weighted layer at a time (layer-wise, LW)", _layer),
        Strategy("block", "BW", "one block of weighted layers at a time (block-wise, BW)", _block),
        Strategy("window", "BWSW", "one sliding window of consecutive weighted layers at a time (BWSW)", _window),
        Strategy("topk", "BWT", "the top-ranked layers of the layer-wise study together", _topk),
        Strategy("random", "Random", "randomly drawn sets of weighted layers", _random),
        Strategy("lpft", "LP-FT", "the head alone, then every layer from that head (LP-FT, Kumar et al. 2022)", _lpft),
        Strategy("autorgn", "Auto-RGN", "every layer but BatchNormalization, each layer's step scaled by its relative "
                                        "gradient norm (Auto-RGN, Lee et al. 2023)", _autorgn),
        Strategy("greedy", "Greedy", "blocks added one at a time while the best addition improves by more than "
                                     "--greedy-margin (greedy subsets, SubTuning, Kaplun et al. 2023)", _greedy),
    )
}
# Table I's columns, the paper's order, then the rivals; top-k appears once per K (top3, top5).
COLUMNS = ("head", "full", "layer", "block", "top3", "top5", "window", "random", "lpft", "autorgn", "greedy")


def column_label(key: str, random_k: int = 3) -> str:
    """The paper's label of a study key: `BWT3` for top3, `Random-3` for random, `LW` for layer.

    Example:
        >>> column_label("top5"), column_label("head"), column_label("random")
        ('BWT5', 'Baseline I', 'Random-3')
    """
    if key.startswith("top") and key[3:].isdigit():
        return f"BWT{key[3:]}"
    if key == "random":
        return f"Random-{random_k}"
    return STRATEGIES[key].label if key in STRATEGIES else key


def column_position(key: str) -> int:
    """Where a study key sorts in Table I (unknown keys last)."""
    return COLUMNS.index(key) if key in COLUMNS else len(COLUMNS)


@dataclasses.dataclass
class _Options:
    """Options for the examples above (the real ones come from StudyConfig)."""

    window_size: int = 3
    random_k: int = 3
    random_draws: int = 5
    seed: int = 0
    top_k: int = 3
    greedy_margin: float = 0.01
