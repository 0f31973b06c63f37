"""The one orchestrator: search -> (worker processes) -> final stage -> publish, for one study or
for the paper's whole protocol. The command line and the Python API both call `run`.

Example:
    >>> from study.config import StudyConfig
    >>> results = run(StudyConfig(dataset="synthetic", weights="none", image_size=32, epochs=2).validate())  # doctest: +SKIP
    >>> results[0].test_accuracy  # doctest: +SKIP
    0.41
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import optuna

from study.candidates import check_strategies
from study.cli._protocol import protocol_configs
from study.cli._summary import next_steps, study_summary
from study.config import StudyConfig
from study.final import run_final
from study.report import choice_text, load_records, publish, record_of, show_final_stage
from study.runtime import duration, process_local, say
from study.search import SearchOutcome, check_outputs, prepare_search, record_tied_set, run_trials, run_workers
from study.storage import ARTIFACT_ID, MEAN, PARAM, VARIANCE, final_candidate, final_model_path, write_failures_reported


@dataclasses.dataclass
class StudyResult:
    """One study after a run: the search outcome and the final stage (None if not run)."""

    config: StudyConfig
    outcome: SearchOutcome
    final: dict | None

    @property
    def study(self) -> optuna.Study:
        return self.outcome.study

    @property
    def winner(self) -> str | None:
        """The candidate retrained in the final stage, else the search's best (None if none)."""
        if self.final:
            return final_candidate(self.final)
        try:
            return self.study.best_trial.params[PARAM]
        except ValueError:  # no complete trial
            return None

    @property
    def test_accuracy(self) -> float | None:
        """The final stage's mean test accuracy over its seeds (None without a final stage)."""
        return self.final[MEAN] if self.final else None

    @property
    def model_path(self) -> Path | None:
        """The saved final model, `storage/models/<study>.keras` (also in the artifact store)."""
        return final_model_path(self.config) if (self.final or {}).get(ARTIFACT_ID) else None


def search(config: StudyConfig) -> SearchOutcome:
    """Train what is left of the study, in this process or in `config.workers` processes; a greedy
    study round after round, each prepared from the rounds finished before it."""
    plan = prepare_search(config)
    while True:
        if plan.n_trials and config.workers > 1:
            run_workers(config, plan.n_trials)  # each worker process prepares and runs the search itself
        else:
            run_trials(plan)
        outcome = plan.outcome()
        if outcome.left or not plan.more_rounds:
            break
        plan = prepare_search(config)
    if outcome.complete:
        record_tied_set(outcome, config)
    return outcome


def run_one(config: StudyConfig) -> StudyResult:
    """Search, then the final stage unless it is skipped or the search is unfinished."""
    outcome = search(config)
    if outcome.left:
        say(f"search unfinished: {len(outcome.left)} candidate(s) left in study {config.name!r}; "
            "run the same command to continue")
    final = None if outcome.left or config.skip_final else run_final(config, outcome, after_seed=show_final_stage)
    return StudyResult(config, outcome, final)


def run(config: StudyConfig) -> list[StudyResult]:
    """Run one study, or with `--strategy all` every study of the paper's protocol; then publish
    and print the summary (the winners, their scores, the saved models, the commands to look).

    In the protocol the top-k steps wait for a finished layer-wise study. The dashboard notes and
    figures are written last, for every study run.
    """
    started = time.monotonic()
    with write_failures_reported(config):  # a full disk midway: one line, what is kept, how to resume
        if config.strategy != "all":
            results = [run_one(config)]
        else:
            steps = protocol_configs(config)
            check_strategies(steps)  # every step's options, before the first study runs
            for step in steps:
                check_outputs(step)  # and every step's saved model: no study fails to save after its work
            results, layer_done = [], False
            for number, step in enumerate(steps, 1):
                heading = f"study {number} of {len(steps)}: {step.name}"
                if step.strategy == "topk" and not layer_done:
                    say(f"{heading} waits for the layer-wise study; run the same command again")
                    continue
                say(heading)
                results.append(run_one(step))
                layer_done = layer_done or (step.strategy == "layer" and results[-1].outcome.complete)
        publish([r.study for r in results], config.artifact_dir)
    print_summary(config, results, time.monotonic() - started)
    return results


def print_summary(config: StudyConfig, results: list[StudyResult], seconds: float) -> None:
    """The end of a run: per study the winner, its uncertainty, the test accuracy, the saved model;
    for the protocol one line per study; then the commands that show the results."""
    say(f"done in {duration(seconds)}.")
    # The baselines of the same model, for the decision; an in-memory storage cannot be opened again.
    records = ([record_of(r.study) for r in results] if process_local(config.storage)
               else load_records(config.storage))
    if config.strategy == "all":
        finals = {r.config.name: r.final for r in results}
        say("protocol summary (test accuracy of each strategy's winner, mean ± std over seeds):")
        for step in protocol_configs(config):
            final = finals.get(step.name)
            shown = "-" if final is None else (f"{final[MEAN]:.4f} ± {math.sqrt(final[VARIANCE]):.4f}  "
                                               f"{final_candidate(final)}")
            say(f"  {step.name:40s} {shown}")
        say("the decision of each strategy:")
        for r in results:
            if r.final and not r.outcome.left:
                say(f"  {r.config.name}: {choice_text(record_of(r.study), records, r.config.select)}")
    else:
        for r in results:
            decision = choice_text(record_of(r.study), records, r.config.select) if not r.outcome.left else ""
            for line in study_summary(r.config.name, r.study, r.final, len(r.outcome.left),
                                      len(r.outcome.candidates), str(r.model_path), decision):
                say(line)
    for line in next_steps(config.storage, config.artifact_dir):
        say(line)
