"""The one orchestrator: search -> (worker processes) -> final stage -> publish, for one study or
for the paper's whole protocol. The command line and the Python API both call `run`.

Example:
    >>> from study.config import StudyConfig
    >>> results = run(StudyConfig(dataset="synthetic", weights="none", image_size=32, epochs=2).validate())  # doctest: +SKIP
    >>> results[0].final["mean"]  # doctest: +SKIP
    0.41
"""

from __future__ import annotations

import dataclasses

from study.candidates import check_strategies
from study.config import StudyConfig
from study.dashboard import publish
from study.final import run_final
from study.protocol import protocol_configs
from study.records import final_candidate
from study.search import SearchOutcome, prepare_search, record_tied_set, run_trials
from study.workers import run_workers


@dataclasses.dataclass
class StudyResult:
    """One study after a run: the search outcome and the final stage (None if not run)."""

    config: StudyConfig
    outcome: SearchOutcome
    final: dict | None

    @property
    def study(self):
        return self.outcome.study


def search(config: StudyConfig) -> SearchOutcome:
    """Train what is left of the study, in this process or in `config.workers` processes."""
    plan = prepare_search(config)
    if plan.n_trials and config.workers > 1:
        run_workers(config, plan.n_trials)  # each worker process prepares and runs the search itself
    else:
        run_trials(plan)
    outcome = plan.outcome()
    if outcome.complete:
        record_tied_set(outcome, config)
    return outcome


def run_study(config: StudyConfig) -> StudyResult:
    """Search, then the final stage unless it is skipped or the search is unfinished."""
    outcome = search(config)
    if outcome.left:
        print(f"search unfinished: {len(outcome.left)} candidate(s) left in study {config.name!r}; "
              "run the same command to continue", flush=True)
    final = None if outcome.left or config.skip_final else run_final(config, outcome)
    return StudyResult(config, outcome, final)


def run(config: StudyConfig) -> list[StudyResult]:
    """Run one study, or with `--strategy all` every study of the paper's protocol; then publish.

    In the protocol the top-k steps wait for a finished layer-wise study. The dashboard notes and
    figures are written last, for every study run.
    """
    if config.strategy != "all":
        results = [run_study(config)]
    else:
        check_strategies(protocol_configs(config))  # every step's options, before the first study runs
        results, layer_done = [], False
        for step in protocol_configs(config):
            if step.strategy == "topk" and not layer_done:
                print(f"study {step.name!r}: waits for the layer-wise study; run the same command again", flush=True)
                continue
            results.append(run_study(step))
            layer_done = layer_done or (step.strategy == "layer" and results[-1].outcome.complete)
    publish([r.study for r in results], config.artifact_dir)
    if config.strategy == "all":
        _print_protocol_summary(config, results)
    return results


def _print_protocol_summary(config: StudyConfig, results: list[StudyResult]) -> None:
    finals = {r.config.name: r.final for r in results}
    print("protocol summary (final test accuracy, mean over seeds):", flush=True)
    for step in protocol_configs(config):
        final = finals.get(step.name)
        shown = "-" if final is None else f"{final['mean']:.4f} ({final_candidate(final)})"
        print(f"  {step.name:40s} {shown}", flush=True)
