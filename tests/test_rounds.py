"""The search in rounds (`--search-order rounds`, the default with more than one repeat): every candidate
gets repeat r before any gets r + 1, one COMPLETE or PRUNED trial per candidate, the race in rounds,
resume exactly once after kill -9 in the middle of a round, and processes sharing a round.

Training is replaced by a deterministic fake (known truth, optionally slow), also in subprocesses: a
small script patches `fine_tune` and runs the real command line.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from study.search import stopped_in_round
from study.storage import PARAM, PRUNE_REASON, REPEAT_VALUES, TAKEN_OVER

REPO = str(Path(__file__).resolve().parents[1])
BLOCKS = ["block-05", "block-04", "block-03", "block-02", "block-01"]  # the grid's order: output end first

# A fake fine_tune: candidate quality + the repeat's draw effect + small noise, deterministic in
# (candidate, seed); it sleeps SLEEP seconds and appends "start"/"end" lines (JSON) to LOG.
FAKE = '''
import json, os, sys, time
import numpy as np
import study.search._objective as objective
from study.training import TrainingResult

MEANS = json.loads(os.environ["FAKE_MEANS"])
DRAWS = (0.0, 0.06, -0.05, 0.03, -0.02)

def fake(config, build, candidate, train, num_classes, validation=None, seed=0, **kwargs):
    prefix = candidate.name.split(":")[0]
    line = {"candidate": prefix, "seed": seed, "pid": os.getpid()}
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps({**line, "event": "start", "time": time.time()}) + "\\n")
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    value = MEANS[prefix] + DRAWS[seed] + np.random.default_rng([seed, sum(map(ord, prefix))]).normal(0, 0.004)
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps({**line, "event": "end", "time": time.time()}) + "\\n")
    history = {"val_accuracy": [round(value - 0.1, 6), round(value, 6)], "accuracy": [0.5, 0.9]}
    return TrainingResult(model=None, history=history, trainable_params=1, seconds=0.0, cache="off: fake")

objective.fine_tune = fake
from study.run import main
sys.exit(main(sys.argv[1:]))
'''


@pytest.fixture
def fake_run(tmp_path, tiny_args):
    """Start the real command line with the fake training in a subprocess: `start(*extra, means=..., sleep=...)`."""
    script = tmp_path / "fake_run.py"
    script.write_text(FAKE)
    log = tmp_path / "trainings.jsonl"

    def start(*extra, means, sleep=0.0):
        env = {**os.environ, "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3",
               "FAKE_MEANS": json.dumps(means), "FAKE_LOG": str(log), "FAKE_SLEEP": str(sleep)}
        args = tiny_args("--search-repeats", "3", "--pruner", "none", "--skip-final", *extra)
        return subprocess.Popen([sys.executable, str(script), *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    start.log = log
    return start


def _events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _trials(tmp_path):
    return optuna.load_study(study_name="synthetic-vgg16-block", storage=f"sqlite:///{tmp_path}/studies.db").get_trials()


def _one_finished_trial_each(trials):
    finished = [t.params[PARAM][:8] for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert sorted(finished) == sorted(BLOCKS), finished
    assert not [t for t in trials if t.state == TrialState.RUNNING]


MEANS = {"block-05": 0.80, "block-04": 0.80, "block-03": 0.60, "block-02": 0.62, "block-01": 0.80}


def test_rounds_give_every_candidate_repeat_r_before_any_gets_r_plus_1_and_race_on_complete_rounds(fake_run, tmp_path):
    process = fake_run("--search-repeats", "4", "--pruner", "race", means=MEANS)
    assert process.wait(timeout=600) == 0, process.stderr.read()
    ended = [(e["candidate"], e["seed"]) for e in _events(fake_run.log) if e["event"] == "end"]
    # Rounds 1 and 2 in the paper's order; then the race, on two repeats of every candidate, stops
    # the two clearly worse ones (noise pooled over the five: 4 degrees of freedom); rounds 3 and 4
    # train the other three.
    survivors = ["block-05", "block-04", "block-01"]
    assert ended == ([(b, 0) for b in BLOCKS] + [(b, 1) for b in BLOCKS] + [(b, 2) for b in survivors]
                     + [(b, 3) for b in survivors])
    trials = _trials(tmp_path)
    _one_finished_trial_each(trials)
    for trial in trials:
        if trial.params[PARAM][:8] in ("block-03", "block-02"):
            assert trial.state == TrialState.PRUNED and len(trial.user_attrs[REPEAT_VALUES]) == 2
            assert "stopped after 2 of 4 repeats (round 2): worse than block-0" in trial.user_attrs[PRUNE_REASON]
        else:
            values = trial.user_attrs[REPEAT_VALUES]
            assert trial.state == TrialState.COMPLETE and len(values) == 4
            assert trial.value == pytest.approx(np.mean(values)) and trial.intermediate_values == dict(enumerate(values))


def test_the_race_in_rounds_needs_two_repeats_of_every_candidate_and_compares_complete_rounds():
    one = {"a": [0.80], "b": [0.40]}
    assert stopped_in_round(one, "b", repeats=3, alpha=0.05) is None  # no noise estimate from one repeat each
    values = {"a": [0.80, 0.82], "b": [0.81, 0.83], "c": [0.60, 0.61], "d": [0.79, 0.84, 0.80]}
    best, p, level = stopped_in_round(values, "c", repeats=3, alpha=0.05)
    assert best == "b" and p < level == pytest.approx(0.05 / (1 * 4))  # one look (after round 2), four peers
    assert stopped_in_round({**values, "c": [0.78, 0.83]}, "c", repeats=3, alpha=0.05) is None
    assert stopped_in_round(values, "c", repeats=2, alpha=0.05) is None  # after the last round nothing is saved


def test_a_kill_9_in_the_middle_of_a_round_resumes_exactly_once(fake_run, tmp_path):
    means = {b: 0.7 + 0.02 * i for i, b in enumerate(BLOCKS)}
    process = fake_run(means=means, sleep=0.5)
    try:
        deadline = time.monotonic() + 300
        while not any(e["seed"] == 1 and e["event"] == "end" for e in _events(fake_run.log)):  # into round 2
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "round 2 never started"
            time.sleep(0.05)
        process.kill()  # SIGKILL, in the middle of round 2: five open trials, one training cut off
    finally:
        process.kill()
        process.wait()
    killed = _events(fake_run.log)
    assert [t.state for t in _trials(tmp_path)].count(TrialState.RUNNING) == 5
    resumed = fake_run(means=means)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    trials = _trials(tmp_path)
    _one_finished_trial_each(trials)
    assert all(t.state == TrialState.COMPLETE for t in trials if t.state != TrialState.FAIL)
    ends = [(e["candidate"], e["seed"]) for e in _events(fake_run.log) if e["event"] == "end"]
    assert sorted(ends) == sorted((b, r) for b in BLOCKS for r in range(3))  # every repeat trained exactly once
    started = {(e["candidate"], e["seed"]) for e in killed if e["event"] == "start"}
    assert len(started - {(e["candidate"], e["seed"]) for e in killed if e["event"] == "end"}) <= 1  # the cut-off one
    finished_before = len([e for e in killed if e["event"] == "end"])
    taken_over = sum(t.user_attrs.get(TAKEN_OVER, 0) for t in trials if t.state == TrialState.COMPLETE)
    assert taken_over == finished_before  # the new trials took over every repeat finished before the kill
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            seeds = range(3)
            name = trial.params[PARAM][:8]
            draws = (0.0, 0.06, -0.05)
            expected = [means[name] + draws[s] + np.random.default_rng([s, sum(map(ord, name))]).normal(0, 0.004)
                        for s in seeds]
            assert trial.user_attrs[REPEAT_VALUES] == pytest.approx(expected, abs=1e-6)  # what one run gives


def test_two_processes_share_each_round_and_train_every_repeat_once(fake_run, tmp_path):
    means = {b: 0.7 + 0.02 * i for i, b in enumerate(BLOCKS)}
    # Started at once on a fresh storage: one creates the study, the other waits for its records.
    first, second = fake_run(means=means, sleep=1.0), fake_run(means=means, sleep=1.0)
    for process in (first, second):
        assert process.wait(timeout=600) == 0, process.stderr.read()
    trials = _trials(tmp_path)
    _one_finished_trial_each(trials)
    events = _events(fake_run.log)
    ends = [(e["candidate"], e["seed"]) for e in events if e["event"] == "end"]
    assert sorted(ends) == sorted((b, r) for b in BLOCKS for r in range(3))  # each exactly once
    assert len({e["pid"] for e in events}) == 2  # both trained
    for r in (1, 2):  # no repeat r+1 started before every repeat r had ended
        last_end = max(e["time"] for e in events if e["event"] == "end" and e["seed"] == r - 1)
        first_start = min(e["time"] for e in events if e["event"] == "start" and e["seed"] == r)
        assert first_start >= last_end
