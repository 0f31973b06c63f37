"""`--strategy all`: the paper's whole protocol for one model, each strategy its own study.

Baselines I and II, layer-wise, block-wise, sliding window, the top-3 and top-5 layers of the
layer-wise study, one random set of `--random-k` layers, then the rivals LP-FT, Auto-RGN and greedy subsets; then the
final stage of each. Every
step is an ordinary study in the same storage, so running the same command again resumes it
(study.cli runs the steps).
"""

from __future__ import annotations

import dataclasses

from study.config import StudyConfig

# (strategy, fields it overrides), the paper's order; layer comes before the top-k studies that use it.
PROTOCOL: tuple[tuple[str, dict], ...] = (
    ("head", {}),
    ("full", {}),
    ("layer", {}),
    ("block", {}),
    ("window", {}),
    ("topk", {"top_k": 3}),
    ("topk", {"top_k": 5}),
    ("random", {"random_draws": 1}),  # the paper's random-3 baseline is a single draw
    ("lpft", {}),  # what a practitioner would try instead (issue 20): LP-FT, Auto-RGN, greedy subsets
    ("autorgn", {}),
    ("greedy", {"sampler": "grid"}),  # its rounds are visited in order, whatever sampler the others use
)


def protocol_configs(config: StudyConfig) -> list[StudyConfig]:
    """One validated configuration per step of the protocol, everything else as given.

    Example:
        >>> [c.name for c in protocol_configs(StudyConfig(dataset="synthetic", strategy="all").validate())][:3]
        ['synthetic-mobilenet_v2-head', 'synthetic-mobilenet_v2-full', 'synthetic-mobilenet_v2-layer']
    """
    return [dataclasses.replace(config, strategy=s, study_name=None, **extra).validate() for s, extra in PROTOCOL]
