"""A golden study: a small seeded study through the real command line gives exactly the recorded numbers.

Three studies of a tiny saved model (block-wise with the race over 3 repeats, Baseline I and II), each
with a final stage of 2 seeds, are run by `study.run.main`, and what they stored is compared with
tests/golden/study.json: every trial's state, value and `repeat_values`, the tied set, the final stage's
test accuracy per seed, and Table I's numbers (`study.report.table_rows`). Any change to the numbers
the tool computes (splits, seeds, training, the race, the tied set, the final stage, Table I) fails it.

Regenerate the fixture only for a deliberate change of behaviour, and say why in the commit:

    STUDY_UPDATE_GOLDEN=1 PYTHONPATH=$PWD python -m pytest -q tests/test_golden.py
"""

import json
import math
import os
from pathlib import Path

import optuna
import pytest

from study.report import load_records, table_rows
from study.run import main

GOLDEN = Path(__file__).parent / "golden" / "study.json"
UPDATE = os.environ.get("STUDY_UPDATE_GOLDEN") == "1"
DIGITS = 6  # stored accuracies have 6 significant digits; Table I's means and variances are compared at that


def _significant(value):
    return None if value is None else float(f"{float(value):.{DIGITS}g}")


def _run(model: str, folder: Path, strategy: str) -> None:
    args = [
        "--dataset", "synthetic", "--synthetic-size", "90", "--synthetic-classes", "3",
        "--weights", "none", "--image-size", "32", "--model", model,
        "--epochs", "2", "--learning-rate", "0.01", "--strategy", strategy,
        "--search-train-fraction", "0.4", "--search-val-fraction", "0.3",
        "--search-repeats", "3", "--pruner", "race", "--race-alpha", "0.2", "--repeats", "2",
        "--storage", f"sqlite:///{folder}/studies.db", "--artifact-dir", str(folder / "artifacts"),
    ]
    assert main(args) == 0


def _study_facts(study: optuna.Study) -> dict:
    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "candidate": t.params.get("candidate"),
            "value": _significant(t.value),
            "repeat_values": [_significant(v) for v in t.user_attrs.get("repeat_values", [])],
        }
        for t in study.get_trials(deepcopy=False)
    ]
    final = study.user_attrs.get("final") or {}
    return {
        "trials": trials,
        "tied_with_winner": study.user_attrs.get("tied_with_winner"),
        "final_candidate": final.get("candidate"),
        "final_test_accuracy": {seed: _significant(run["test_accuracy"]) for seed, run in final.get("runs", {}).items()},
    }


def _seeded_model(path: Path) -> str:
    """conftest's tiny model (5 convs, 3 blocks), its weights seeded: a saved model keeps its own weights."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for name, filters in (("conv1", 8), ("conv2", 8), ("pool1", 0), ("conv3", 16), ("conv4", 16), ("pool2", 0), ("conv5", 16)):
        x = keras.layers.MaxPooling2D(name=name)(x) if not filters else keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=name)(x)
    keras.Model(inputs, x, name="tiny").save(path)
    return str(path)


@pytest.fixture(scope="module")
def golden_storage(tmp_path_factory):
    folder = tmp_path_factory.mktemp("golden")
    model = _seeded_model(folder / "tiny.keras")
    for strategy in ("block", "head", "full"):
        _run(model, folder, strategy)
    return f"sqlite:///{folder}/studies.db"


def test_golden_study(golden_storage):
    studies = {s.study_name: optuna.load_study(study_name=s.study_name, storage=golden_storage)
               for s in optuna.get_all_study_summaries(golden_storage)}
    columns, rows = table_rows(load_records(golden_storage))
    facts = {
        "studies": {name: _study_facts(study) for name, study in sorted(studies.items())},
        "table_1": {"columns": columns,
                    "rows": [[name, [_significant(v) for v in values]] for name, values in rows]},
    }
    if UPDATE:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {GOLDEN}")
    expected = json.loads(GOLDEN.read_text())
    assert facts["table_1"] == expected["table_1"]
    for name, wanted in expected["studies"].items():
        assert facts["studies"][name] == wanted, name
    assert set(facts["studies"]) == set(expected["studies"])
    # The fixture is not vacuous: the race ran over 3 repeats and Table I has numbers.
    block = expected["studies"]["synthetic-tiny-block"]
    assert len(block["trials"]) == 3 and all(t["repeat_values"] for t in block["trials"])
    assert all(v is not None and math.isfinite(v) for v in expected["table_1"]["rows"][0][1])
