"""--strategy all, --strategy topk and --repeats."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from study.candidates import rank_layers
from study.cli import PROTOCOL, protocol_configs
from study.config import StudyConfig
from study.inputs import load_splits
from study.run import main
from study.runtime import StudyError
from study.storage import study_records

NAMES = ["head", "full", "layer", "block", "window", "top3", "top5", "random", "lpft", "autorgn", "greedy"]


def _study(url, name):
    return optuna.load_study(study_name=f"synthetic-tiny-{name}", storage=url)


def test_all_runs_every_strategy_and_its_final_stage(protocol_storage):
    url = protocol_storage["url"]
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(url))
    assert names == sorted(f"synthetic-tiny-{n}" for n in NAMES)
    sizes = {"head": 1, "full": 1, "layer": 5, "block": 3, "window": 3, "top3": 1, "top5": 1, "random": 1}
    for name, size in sizes.items():
        study = _study(url, name)
        assert len(study_records(study)["candidates"]) == size
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * size
        final = study.user_attrs["final"]
        # --repeats 2: every seed's test accuracy, their mean and (population) variance are stored.
        assert final["seeds"] == [0, 1] and sorted(final["runs"]) == ["0", "1"]
        accuracies = [final["runs"][s]["test_accuracy"] for s in ("0", "1")]
        assert final["test_accuracy"] == accuracies
        assert final["mean"] == pytest.approx(np.mean(accuracies), abs=1e-6)  # stored with 6 significant digits
        assert final["variance"] == pytest.approx(np.var(accuracies), rel=1e-5)  # 6 significant digits
        assert final["candidate"] == study.best_trial.params["candidate"]
        assert [p["params"] for p in study_records(study)["layer_params"] if p["name"] == "conv1"] == [8 * 27 + 8]


def test_final_model_loads_without_this_package(protocol_storage, tmp_path):
    """The saved model takes raw pixels and gives the tool's own test accuracy, in a Python that never
    imported `study`, without a warning; its class names are stored beside it and inside it."""
    study = _study(protocol_storage["url"], "block")
    final = study.user_attrs["final"]
    path = tmp_path / "final.keras"  # the store names files by id; a download gets the .keras name
    path.write_bytes((Path(protocol_storage["artifacts"]) / final["artifact_id"]).read_bytes())
    readable = Path(protocol_storage["folder"]) / "models" / "synthetic-tiny-block.keras"
    assert readable.read_bytes() == path.read_bytes()
    assert json.loads(readable.with_suffix(".json").read_text())["classes"] == study_records(study)["classes"]
    config = StudyConfig(dataset="synthetic", synthetic_size=60, synthetic_classes=3, image_size=32)
    images, labels = load_splits(config).arrays("test")
    np.save(tmp_path / "images.npy", images)  # raw uint8 RGB pixels, as a user has them
    code = (
        "import sys, warnings, zipfile, json, keras, numpy as np\n"
        "warnings.simplefilter('error')\n"
        f"model = keras.models.load_model({str(path)!r})\n"
        "assert 'study' not in sys.modules and 'study.training' not in sys.modules\n"
        f"probabilities = model.predict(np.load({str(tmp_path / 'images.npy')!r}), verbose=0)\n"
        "classes = json.loads(zipfile.ZipFile(" + repr(str(path)) + ").read('study.json'))['classes']\n"
        "print(json.dumps({'argmax': probabilities.argmax(1).tolist(), 'sums': probabilities.sum(1).tolist(), "
        "'classes': classes}))\n"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "optimizer" not in shown.stderr.lower()
    result = json.loads(shown.stdout.strip().splitlines()[-1])
    assert np.allclose(result["sums"], 1.0, atol=1e-5) and result["classes"] == study_records(study)["classes"]
    accuracy = float(np.mean(np.asarray(result["argmax"]) == labels))
    assert accuracy == pytest.approx(final["runs"][str(final["seeds"][0])]["test_accuracy"], abs=1e-6)


def test_topk_tunes_the_best_layers_of_the_layer_study(protocol_storage):
    url = protocol_storage["url"]
    ranked = rank_layers(_study(url, "layer"))
    layer_trials = {t.user_attrs["layers"][0]: t.value for t in _study(url, "layer").trials}
    assert sorted(ranked) == sorted(layer_trials)
    assert [layer_trials[n] for n in ranked] == sorted(layer_trials.values(), reverse=True)
    for k in (3, 5):
        (candidate,) = study_records(_study(url, f"top{k}"))["candidates"]
        assert candidate == {"name": f"top-{k}:" + "+".join(ranked[:k]), "layers": ranked[:k]}
    (random,) = study_records(_study(url, "random"))["candidates"]
    assert len(random["layers"]) == 3


def test_rerunning_all_trains_nothing_and_uploads_nothing(protocol_storage, capsys):
    url = protocol_storage["url"]
    before = {n: (len(_study(url, n).trials), _study(url, n).user_attrs["final"]) for n in NAMES}
    artifacts = sorted(a.artifact_id for n in NAMES for a in optuna.artifacts.get_all_artifact_meta(_study(url, n)))
    capsys.readouterr()
    assert main(protocol_storage["args"]) == 0
    out = capsys.readouterr().out
    assert out.count("0 to run now") == len(NAMES) and "seed(s) to run" not in out
    assert {n: (len(_study(url, n).trials), _study(url, n).user_attrs["final"]) for n in NAMES} == before
    again = sorted(a.artifact_id for n in NAMES for a in optuna.artifacts.get_all_artifact_meta(_study(url, n)))
    assert again == artifacts


def test_more_repeats_run_only_the_new_seeds(tmp_path, tiny_args, tiny_model):
    args = tiny_args("--model", tiny_model, "--strategy", "head", "--learning-rate", "0.003")
    assert main(args + ["--repeats", "1"]) == 0
    url = f"sqlite:///{tmp_path}/studies.db"
    first = optuna.load_study(study_name="synthetic-tiny-head", storage=url).user_attrs["final"]
    assert main(args + ["--repeats", "2"]) == 0
    final = optuna.load_study(study_name="synthetic-tiny-head", storage=url).user_attrs["final"]
    assert final["seeds"] == [0, 1] and final["runs"]["0"] == first["runs"]["0"]  # seed 0 not rerun
    assert final["mean"] == pytest.approx(np.mean(final["test_accuracy"]), abs=1e-6)  # 6 significant digits
    assert final["variance"] == pytest.approx(np.var(final["test_accuracy"]), rel=1e-5)  # 6 significant digits


def test_topk_without_layer_study_names_the_command(tmp_path, tiny_args, tiny_model, capsys):
    assert main(tiny_args("--model", tiny_model, "--strategy", "topk", "--top-k", "2")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'synthetic-tiny-layer'" in err and "python -m study.run --strategy layer" in err


def test_topk_with_unfinished_layer_study_says_finish_it(tmp_path, tiny_args, tiny_model, capsys):
    assert main(tiny_args("--model", tiny_model, "--strategy", "layer", "--n-trials", "1")) == 0
    capsys.readouterr()
    assert main(tiny_args("--model", tiny_model, "--strategy", "topk")) == 2
    err = capsys.readouterr().err
    assert "4 layer(s) have no finished trial" in err and "--strategy layer" in err
    assert "synthetic-tiny-top3" not in [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{tmp_path}/studies.db")]


def _layer_study(values):
    """An in-memory layer study: (layer, state, value or intermediate values) per trial."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("candidates", [{"name": f"layer-{i}:{n}", "layers": [n]} for i, (n, _, _) in enumerate(values)])
    names = [f"layer-{i}:{n}" for i, (n, _, _) in enumerate(values)]
    for name, (_, state, value) in zip(names, values):
        complete = state == TrialState.COMPLETE
        study.add_trial(create_trial(
            state=state, value=value if complete else None,
            intermediate_values={} if complete else dict(enumerate(value, 1)),
            params={"candidate": name}, distributions={"candidate": CategoricalDistribution(names)},
        ))
    return study


def test_rank_layers_puts_pruned_below_complete_by_last_value():
    study = _layer_study([
        ("a", TrialState.COMPLETE, 0.5),
        ("b", TrialState.PRUNED, [0.9, 0.95]),  # high, but pruned: below every complete trial
        ("c", TrialState.COMPLETE, 0.7),
        ("d", TrialState.PRUNED, [0.99, 0.2]),  # ranked by its last value, not its best
        ("e", TrialState.COMPLETE, 0.5),  # ties keep the input-end-first order
    ])
    assert rank_layers(study) == ["c", "a", "e", "b", "d"]


def test_topk_config_names_and_validation():
    config = StudyConfig(dataset="synthetic", strategy="topk", top_k=5).validate()
    assert config.name == "synthetic-mobilenet_v2-top5" and config.identity()["top_k"] == 5
    assert "top_k" not in StudyConfig(strategy="block").validate().identity()  # older studies still resume
    with pytest.raises(StudyError, match="--top-k must be at least 1"):
        StudyConfig(strategy="topk", top_k=0).validate()
    with pytest.raises(StudyError, match="--study-name cannot be used with --strategy all"):
        StudyConfig(strategy="all", study_name="x").validate()


def test_protocol_with_another_sampler_keeps_greedy_on_the_grid():
    # --strategy all --sampler tpe: every study samples with TPE but greedy, whose rounds are visited in order.
    configs = protocol_configs(StudyConfig(dataset="synthetic", strategy="all", sampler="tpe").validate())
    assert {c.strategy: c.sampler for c in configs} == {**{c.strategy: "tpe" for c in configs}, "greedy": "grid"}


def test_protocol_order_is_the_papers():
    base = StudyConfig(dataset="synthetic", strategy="all", random_draws=5, epochs=7).validate()
    configs = protocol_configs(base)
    assert [c.name.split("-", 2)[2] for c in configs] == NAMES
    assert configs[NAMES.index("random")].random_draws == 1 and len(PROTOCOL) == len(NAMES)
    # Every other option is passed through unchanged.
    for c in configs:
        assert dataclasses.replace(c, strategy="all", top_k=base.top_k, random_draws=base.random_draws) == base
