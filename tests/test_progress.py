"""What a person sees: progress lines, the end-of-run summary, a quiet TensorFlow, the Python API,
and the storage as standard tools (optuna studies, trials_dataframe) show it."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import create_trial

from study.cli._summary import study_summary
from study.report import load_records, record_of, show_final_stage
from study.runtime import epoch_end, train_begin, train_end
from study.search import SearchProgress
from study.storage import (
    CANDIDATES,
    CONFIG,
    FINAL,
    FINAL_TEST_ACCURACY,
    INTERVAL_95,
    LARGE_RECORDS,
    PARAM,
    STANDARD_ERROR,
    TIED_WITH_WINNER,
    rounded,
    study_records,
)

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["head", "full", "layer", "block", "window", "top3", "top5", "random", "lpft", "autorgn", "greedy"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny study through the Python API in a process of its own, its stdout a pipe (a log file)."""
    folder = tmp_path_factory.mktemp("api")
    url, artifacts = f"sqlite:///{folder}/studies.db", str(folder / "artifacts")
    code = (
        "from study import run_study\n"
        "result = run_study(dataset='synthetic', synthetic_size=60, synthetic_classes=3, weights='none',\n"
        f"                   image_size=32, model='vgg16', epochs=2, repeats=2, storage={url!r}, artifact_dir={artifacts!r})\n"
        "print('RESULT', result.winner, result.test_accuracy, result.model_path)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # the defaults a user has
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"url": url, "artifacts": artifacts, "stdout": done.stdout, "stderr": done.stderr}


def test_progress_off_a_terminal_is_one_line_per_event(tiny_run):
    out = tiny_run["stdout"]
    print(out)  # shown with -s: the sample in docs/usage.md
    assert "\r" not in out
    lines = out.splitlines()
    for k in range(1, 6):  # the default search: three repeats in rounds
        started = [line for line in lines if line.startswith(f"trial {k}/5 started (#{k - 1}) block-0{6 - k}:")]
        rounds = [line for line in lines if re.match(rf"round [123]/3 \(#{k - 1}\) block-0{6 - k}:", line)]
        ended = [line for line in lines if line.startswith(f"trial {k}/5 complete (#{k - 1}) block-0{6 - k}:")]
        assert len(started) == len(ended) == 1 and len(rounds) == 3, out
        assert re.search(r": val_accuracy \d\.\d{4} ± \d\.\d{4}, 95% interval \d\.\d{4}-\d\.\d{4}, [\d.]+ s; "
                         r"best \d\.\d{4} \(#\d\); elapsed", ended[0])
        assert re.search(r": val_accuracy \d\.\d{4} after 2 epochs, [\d.]+ s; study ETA ", rounds[0])
    first_of_round_2 = next(i for i, line in enumerate(lines) if line.startswith("round 2/3"))
    assert all(not line.startswith("round 1/3") for line in lines[first_of_round_2:])  # rounds, in order
    assert re.search(r"^  seed 1/2 \(seed 0\): test accuracy \d\.\d{4}, [\d.]+ s; ETA ", out, re.M)
    assert re.search(r"^  seed 2/2 \(seed 1\): test accuracy \d\.\d{4}, [\d.]+ s$", out, re.M)
    assert not [line for line in lines if re.search(r"epoch \d+/\d+", line)]  # epochs only on a terminal's live line


def test_the_summary_names_winner_score_model_and_next_commands(tiny_run):
    url, artifacts, out = tiny_run["url"], tiny_run["artifacts"], tiny_run["stdout"]
    study = optuna.load_study(study_name="synthetic-vgg16-block", storage=url)
    final = study.user_attrs[FINAL]
    summary = out[out.index("\ndone in "):]
    assert f"  winner: {final[PARAM]} (#{final['trial']}), validation accuracy " in summary
    assert f"  test accuracy {final['mean']:.4f} ± " in summary and "(mean ± std over 2 seeds)" in summary
    model = Path(artifacts).resolve().parent / "models" / "synthetic-vgg16-block.keras"
    assert f"  saved model: {model} (raw RGB pixels in, class probabilities out" in summary and model.is_file()
    assert (f"\nnext:\n  optuna-dashboard {url} --artifact-dir {artifacts}\n"
            f"  python -m study.report --storage {url} --output storage/reports/report.html\nRESULT ") in summary
    # The API returned the same study's answer.
    assert f"RESULT {final[PARAM]} {final['mean']} {model}" in out


def test_tensorflow_start_up_and_retracing_are_quiet(tiny_run):
    # Without TF_CPP_MIN_LOG_LEVEL set: absl's pre-init lines (port.cc, cudart_stub.cc), cuInit's
    # error and tf.function's retracing warnings (this run retraces) are all gone.
    kept = [line for line in tiny_run["stderr"].splitlines()
            if not line.startswith("note: figures saved as dashboard plots only")]  # no browser here: said once
    assert kept == []


def test_the_protocol_says_study_k_of_m(protocol_storage):
    out = protocol_storage["stdout"]
    assert "\r" not in out
    headings = [line for line in out.splitlines() if re.match(r"study \d+ of 11: ", line)]
    assert headings == [f"study {k} of 11: synthetic-tiny-{name}" for k, name in enumerate(NAMES, 1)]
    assert out.count("  seed 2/2 (seed 1): test accuracy") == 11
    summary = out[out.index("protocol summary"):]
    for name in NAMES:
        final = study_records(optuna.load_study(study_name=f"synthetic-tiny-{name}", storage=protocol_storage["url"]))[FINAL]
        assert f"synthetic-tiny-{name}".ljust(40) + f" {final['mean']:.4f} ± " in summary
    assert f"optuna-dashboard {protocol_storage['url']} --artifact-dir {protocol_storage['artifacts']}" in summary


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _fake_study(values, names=("a", "b", "block-01", "block-02")):
    study = optuna.create_study(direction="maximize")
    names = list(names)
    for name, value, attrs in values:
        study.add_trial(create_trial(value=value, params={PARAM: name}, user_attrs=attrs,
                                     distributions={PARAM: CategoricalDistribution(names)}))
    return study


def test_a_terminal_gets_a_live_line_rewritten_in_place(monkeypatch):
    screen = _Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setenv("COLUMNS", "200")
    clock = iter([0.0, 0.0, 30.0, 60.0, 65.0, 70.0]).__next__
    study = _fake_study([("block-01", 0.5, {})])
    tracker = SearchProgress(study, planned=3, done=1, clock=clock)
    study.enqueue_trial({PARAM: "block-02"})
    trial = study.ask()
    trial.suggest_categorical(PARAM, ["a", "b", "block-01", "block-02"])

    def objective(trial):
        train_begin()
        epoch_end(1, 2, {"accuracy": 0.75, "val_accuracy": 0.625})
        epoch_end(2, 2, {"accuracy": 0.875, "val_accuracy": 0.75})
        train_end()
        return 0.75

    value = tracker.wrap(objective)(trial)
    study.tell(trial, value)
    tracker(study, study.trials[-1])
    shown = screen.getvalue()
    first, second, end = shown.split("\r")[1:4]
    assert first.startswith("trial 2/4 block-02 epoch 1/2 accuracy 0.7500 val_accuracy 0.6250 | 30.0 s, "
                            "study ETA 2m30s | best 0.5000 (#0)")  # 30 s left of this trial, then 2 more of 60 s
    assert second.startswith("trial 2/4 block-02 epoch 2/2 ") and "study ETA 2m00s" in second
    assert "started" not in shown  # the live line says it
    assert shown.endswith("trial 2/4 complete (#1) block-02: val_accuracy 0.7500, 1m05s; best 0.7500 (#1); "
                          "elapsed 1m10s, ETA 2m10s\n")
    assert end.strip() == ""  # the live line was cleared before the trial's line


def test_summary_shows_uncertainty_and_ties_when_recorded_and_does_without():
    plain = _fake_study([("a", 0.5, {}), ("b", 0.75, {})])
    lines = study_summary("s", plain, None, left=0, total=2, model_path="models/s.keras")
    assert lines[1] == "  winner: b (#1), validation accuracy 0.7500"
    assert "--skip-final" in lines[-1]
    raced = _fake_study([("a", 0.5, {}), ("b", 0.75, {STANDARD_ERROR: 0.0412, INTERVAL_95: [0.6692, 0.8308]})])
    raced.set_user_attr(TIED_WITH_WINNER, ["b", "a"])
    final = {PARAM: "b", "trial": 1, "runs": {}, "test_accuracy": [0.7, 0.8], "mean": 0.75, "variance": 0.0025}
    lines = study_summary("s", raced, final, left=0, total=2, model_path="models/s.keras")
    assert lines[1] == "  winner: b (#1), validation accuracy 0.7500 ± 0.0412 (standard error), 95% interval 0.6692-0.8308"
    assert lines[2] == "  statistically tied with it (not significantly worse, paired t-test): a"
    assert lines[3].startswith("  test accuracy 0.7500 ± 0.0500 (mean ± std over 2 seeds)")
    unfinished = study_summary("s", plain, None, left=3, total=5, model_path="models/s.keras")
    assert unfinished == ["s: search unfinished, 3 of 5 candidates left (best 0.7500 (#1)); run the same command to continue"]


def test_storage_rows_are_short_values_rounded_and_trials_dataframe_works(protocol_storage):
    url = protocol_storage["url"]
    for summary in optuna.get_all_study_summaries(url):
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        records = study_records(study)
        assert set(LARGE_RECORDS) <= set(records) and not set(LARGE_RECORDS) & set(summary.user_attrs)
        assert len(json.dumps(summary.user_attrs)) < 600  # what `optuna studies` prints per study
        assert summary.user_attrs[FINAL_TEST_ACCURACY] == records[FINAL]["mean"]
        frame = study.trials_dataframe()  # pandas is a dependency
        assert list(frame["value"]) == [t.value for t in study.trials]
        for trial in study.trials:
            assert trial.value == rounded(trial.value)
            assert all(v == rounded(v) for v in trial.intermediate_values.values())
        assert all(a == rounded(a) for a in records[FINAL]["test_accuracy"])
    # The `optuna studies` command itself: one row per study, 4,000-10,000 characters before.
    command = shutil.which("optuna", path=str(Path(sys.executable).parent)) or shutil.which("optuna")
    shown = subprocess.run([command, "studies", "--storage", url], capture_output=True, text=True, cwd=ROOT)
    assert shown.returncode == 0, shown.stderr[-2000:]
    rows = [line for line in shown.stdout.splitlines() if "synthetic-tiny-" in line]
    assert len(rows) == len(NAMES) and max(len(row) for row in rows) < 700


def test_studies_made_before_keep_loading(protocol_storage):
    """Studies that hold every record as user attrs (before LARGE_RECORDS moved) read the same."""
    new = optuna.load_study(study_name="synthetic-tiny-block", storage=protocol_storage["url"])
    storage = optuna.storages.InMemoryStorage()
    old = optuna.create_study(study_name=new.study_name, storage=storage, direction="maximize")
    for key, value in study_records(new).items():
        old.set_user_attr(key, value)
    old.add_trials(new.trials)
    assert study_records(old) == study_records(new)
    (record,) = load_records(storage)
    assert record.candidates == record_of(new).candidates and record.final == record_of(new).final
    assert record.config == record_of(new).config and CONFIG in old.user_attrs and CANDIDATES in old.user_attrs


def test_the_dashboard_note_follows_the_final_stage(protocol_storage):
    storage = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name="synthetic-tiny-block", from_storage=protocol_storage["url"],
                      to_storage=storage, to_study_name="synthetic-tiny-block")
    study = optuna.load_study(study_name="synthetic-tiny-block", storage=storage)
    show_final_stage(study, done=1, total=2)
    note = optuna_dashboard.get_note(study)
    assert note.startswith("## synthetic-tiny-block") and note.endswith("_Final stage running: 1 of 2 seed(s) done._")
    show_final_stage(study, done=2, total=2)
    assert "running" not in optuna_dashboard.get_note(study)
