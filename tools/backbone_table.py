"""Print the README's table of candidates per backbone: model | layer | block | window (3).

Builds every backbone of study.inputs.BACKBONES (or the ones named) with random weights at the
smallest size it accepts (at least 32 px; counts do not depend on the size) and counts the candidates
of the layer, block and window strategies with study.candidates.make_candidates.

    python tools/backbone_table.py                       # every backbone (several minutes)
    python tools/backbone_table.py vgg16 efficientnet_b0 # some
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from study.candidates import make_candidates  # noqa: E402
from study.config import StudyConfig  # noqa: E402
from study.inputs import BACKBONES, build_backbone  # noqa: E402

STRATEGIES = ("layer", "block", "window")


def counts(model: str) -> tuple[int, ...]:
    """Candidates of each of STRATEGIES for `model` (window size 3)."""
    size = max(32, BACKBONES[model].min_size)
    backbone = build_backbone(StudyConfig(model=model, weights="none", image_size=size))
    found = tuple(
        len(make_candidates(StudyConfig(model=model, strategy=strategy, window_size=3), backbone))
        for strategy in STRATEGIES
    )
    keras.backend.clear_session(free_memory=True)
    return found


def main(models: list[str]) -> int:
    unknown = [m for m in models if m not in BACKBONES]
    if unknown:
        print(f"unknown backbone(s): {', '.join(unknown)}; choose from {', '.join(BACKBONES)}", file=sys.stderr)
        return 2
    print("| model | layer | block | window (3) |")
    print("|---|---|---|---|")
    for model in models or list(BACKBONES):
        print(f"| {model} | " + " | ".join(str(n) for n in counts(model)) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
