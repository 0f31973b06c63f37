"""`--strategy all`: the paper's whole protocol for one model, each strategy its own study.

Baselines I and II, layer-wise, block-wise, sliding window, the top-3 and top-5 layers of the
layer-wise study, and one random set of `--random-k` layers; then the final stage of each. Every
step is an ordinary study in the same storage, so running the same command again resumes it.
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
)


def protocol_configs(config: StudyConfig) -> list[StudyConfig]:
    """One validated configuration per step of the protocol, everything else as given.

    Example:
        >>> [c.name for c in protocol_configs(StudyConfig(dataset="synthetic", strategy="all").validate())][:3]
        ['synthetic-mobilenet_v2-head', 'synthetic-mobilenet_v2-full', 'synthetic-mobilenet_v2-layer']
    """
    return [dataclasses.replace(config, strategy=s, study_name=None, **extra).validate() for s, extra in PROTOCOL]


def run_protocol(config: StudyConfig) -> dict[str, dict | None]:
    """Search, then final stage, for every step; returns each study's `final` (None if not run).

    A step whose search is unfinished (`--n-trials`, other workers) is left for the next run; the
    top-k steps wait for the layer-wise study. The dashboard notes and figures are written last.

    Example:
        >>> finals = run_protocol(StudyConfig(dataset="synthetic", weights="none", image_size=32,
        ...                                   strategy="all", repeats=2).validate())
    """
    from study.dashboard import publish
    from study.final import run_final
    from study.search import run_search

    finals: dict[str, dict | None] = {}
    studies = []
    layer_done = False
    for step in protocol_configs(config):
        if step.strategy == "topk" and not layer_done:
            print(f"study {step.name!r}: waits for the layer-wise study; run the same command again", flush=True)
            finals[step.name] = None
            continue
        outcome = run_search(step)
        studies.append(outcome.study)
        layer_done = layer_done or (step.strategy == "layer" and outcome.complete)
        if outcome.left:
            print(f"study {step.name!r} unfinished: {len(outcome.left)} candidate(s) left", flush=True)
        finals[step.name] = None if outcome.left or config.skip_final else run_final(step, outcome)
    publish(studies, config.artifact_dir)
    _print_summary(finals)
    return finals


def _print_summary(finals: dict[str, dict | None]) -> None:
    print("protocol summary (final test accuracy, mean over seeds):", flush=True)
    for name, final in finals.items():
        shown = "-" if final is None else f"{final['mean']:.4f} ({final['candidate']})"
        print(f"  {name:40s} {shown}", flush=True)
