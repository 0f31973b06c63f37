import subprocess
import sys

import optuna
import pytest

from study.run import main
from study.storage import PARAM, study_records


def _load(tmp_path, name="synthetic-vgg16-block"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/studies.db")


def test_grid_study_end_to_end(tmp_path, tiny_args, capsys, prefix_passes):
    assert main(tiny_args()) == 0
    # The four cuts above block 1 (block1_pool ... block4_pool): one pass for the whole search (its
    # splits are rows of one source array), not one per trial or per split; then the final stage's one cut.
    assert prefix_passes[:2] == [4, 1]
    study = _load(tmp_path)
    trials = study.get_trials()
    candidates = study_records(study)["candidates"]
    assert len(candidates) == 5 and len(trials) == 5
    # Output end first, each candidate exactly once.
    assert [t.params[PARAM] for t in trials] == [c["name"] for c in reversed(candidates)]
    for trial, candidate in zip(trials, reversed(candidates)):
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert 0.0 <= trial.value <= 1.0
        assert sorted(trial.intermediate_values) == [1, 2]
        assert trial.value == trial.intermediate_values[2]
        assert trial.user_attrs["layers"] == candidate["layers"]
        assert trial.user_attrs["trainable_params"] > 0
        assert trial.user_attrs["device"] == "CPU"
        assert trial.user_attrs["peak_memory_bytes"] > 0 and trial.user_attrs["seconds"] > 0
        tuned_first_layer = "block1_conv1" in candidate["layers"]
        assert trial.user_attrs["prefix_cache"].startswith("off: the first" if tuned_first_layer else "on: 1 tensor")
    attrs = study_records(study)
    assert attrs["config"]["model"] == "vgg16" and attrs["config"]["epochs"] == 2
    assert sum(attrs["splits"]["counts"]["test"].values()) == 18
    final = attrs["final"]
    assert final["candidate"] == study.best_trial.params[PARAM]
    assert len(final["test_accuracy"]) == 1 and final["mean"] == final["test_accuracy"][0]
    artifacts = optuna.artifacts.get_all_artifact_meta(study)
    # The saved model, and (study.report's dashboard) PNG copies of the figures when Chromium is there.
    models = [a.artifact_id for a in artifacts if a.filename.endswith(".keras")]
    assert models == [final["artifact_id"]]
    assert all(a.filename.endswith((".keras", ".png")) for a in artifacts)
    assert (tmp_path / "artifacts" / final["artifact_id"]).exists()
    out = capsys.readouterr().out
    assert "final:" in out and "test accuracy" in out


def test_resume_trains_only_what_is_left(tmp_path, tiny_args, capsys):
    assert main(tiny_args("--n-trials", "2")) == 0
    out = capsys.readouterr().out
    assert "search unfinished: 3 candidate(s) left" in out and "final" not in out
    study = _load(tmp_path)
    first = {t.params[PARAM]: t.datetime_complete for t in study.get_trials()}
    assert len(first) == 2 and "final" not in study.user_attrs

    assert main(tiny_args()) == 0
    trials = _load(tmp_path).get_trials()
    names = [t.params[PARAM] for t in trials]
    assert len(names) == 5 == len(set(names))
    for trial in trials[:2]:  # the first two were not trained again
        assert first[trial.params[PARAM]] == trial.datetime_complete
    assert "final" in _load(tmp_path).user_attrs

    capsys.readouterr()
    assert main(tiny_args()) == 0  # nothing left: no training at all
    assert len(_load(tmp_path).get_trials()) == 5
    assert "0 to run now" in capsys.readouterr().out


def test_failed_trial_is_retried_on_resume(tmp_path, tiny_args, monkeypatch):
    import study.search._objective as search

    real = search.fine_tune
    calls = []

    def crash_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(search, "fine_tune", crash_once)
    with pytest.raises(RuntimeError):
        main(tiny_args("--skip-final"))
    states = [t.state for t in _load(tmp_path).get_trials()]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]

    assert main(tiny_args("--skip-final")) == 0
    trials = _load(tmp_path).get_trials()
    finished = [t.params[PARAM] for t in trials if t.state != optuna.trial.TrialState.FAIL]
    assert len(finished) == 5 == len(set(finished))
    assert trials[1].params[PARAM] in finished  # the failed candidate ran again


def test_changed_configuration_is_refused(tmp_path, tiny_args, capsys):
    assert main(tiny_args("--skip-final", "--n-trials", "1")) == 0
    capsys.readouterr()
    assert main(tiny_args("--epochs", "3")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "epochs: 2 -> 3" in err and "--study-name" in err
    assert len(_load(tmp_path).get_trials()) == 1


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_tpe_and_random_samplers(tmp_path, tiny_args, sampler):
    assert main(tiny_args("--sampler", sampler, "--n-trials", "4", "--skip-final")) == 0
    trials = _load(tmp_path).get_trials()
    assert len(trials) == 4
    # A repeated draw is answered from the earlier trial, not trained again.
    seen = {}
    for trial in trials:
        name = trial.params[PARAM]
        if name in seen:
            assert trial.user_attrs["duplicate_of"] == seen[name].number
            assert trial.value == seen[name].value
        else:
            seen[name] = trial
            assert "layers" in trial.user_attrs


def test_head_and_full_baselines(tmp_path, tiny_args):
    for strategy in ("head", "full"):
        assert main(tiny_args("--strategy", strategy, "--skip-final")) == 0
        (trial,) = _load(tmp_path, f"synthetic-vgg16-{strategy}").get_trials()
        assert trial.params[PARAM] == strategy
    head = _load(tmp_path, "synthetic-vgg16-head").trials[0].user_attrs["trainable_params"]
    full = _load(tmp_path, "synthetic-vgg16-full").trials[0].user_attrs["trainable_params"]
    assert full > head + 14_000_000  # VGG16's 14.7 M conv weights are trainable only in full


def test_an_in_memory_storage_runs_clean(tiny_args):
    """`--storage sqlite:///:memory:`: the heartbeat thread once got an empty database of its own
    (a traceback per trial); now the run has one database and no heartbeat, and says it is gone.
    The command itself: under pytest a thread's traceback would become a warning, not output."""
    args = tiny_args("--strategy", "head", "--storage", "sqlite:///:memory:")
    done = subprocess.run([sys.executable, "-m", "study.run", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr and "Exception in thread" not in done.stderr, done.stderr[-3000:]
    assert "final: head: test accuracy" in done.stdout and "the study was in memory" in done.stdout
