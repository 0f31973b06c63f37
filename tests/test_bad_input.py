import subprocess
import sys

import keras
import numpy as np
import optuna
import pytest
from PIL import Image

from study.run import main


def _images(root, classes, per_class=12):
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((8, 8, 3), i * 10, np.uint8)).save(root / name / f"{i}.png")


def _vgg_weights(tmp_path):
    path = tmp_path / "vgg.weights.h5"
    keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(path)
    return str(path)


CASES = {
    "unknown model": (lambda tmp: ["--model", "alexnet"], "--model 'alexnet' is unknown"),
    "missing model file": (lambda tmp: ["--model", str(tmp / "nope.keras")], "no such file"),
    "unknown strategy": (lambda tmp: ["--strategy", "diagonal"], "--strategy 'diagonal' is unknown"),
    "unknown sampler": (lambda tmp: ["--sampler", "cmaes"], "--sampler 'cmaes' is unknown"),
    "unknown pruner": (lambda tmp: ["--pruner", "always"], "--pruner 'always' is unknown"),
    "unknown dataset": (lambda tmp: ["--dataset", "imagenet"], "--dataset 'imagenet' is unknown"),
    "missing data folder": (lambda tmp: ["--data-dir", str(tmp / "none")], "no such folder"),
    "empty data folder": (lambda tmp: (tmp / "empty").mkdir() or ["--data-dir", str(tmp / "empty")], "holds no images"),
    "one class": (lambda tmp: _images(tmp / "one", ["roses"]) or ["--data-dir", str(tmp / "one")], "only one class"),
    "unreadable image": (
        lambda tmp: _images(tmp / "bad", ["a", "b"]) or (tmp / "bad" / "a" / "x.jpg").write_text("?") and ["--data-dir", str(tmp / "bad")],
        "cannot read image",
    ),
    "missing weights file": (lambda tmp: ["--weights", str(tmp / "w.h5")], "no such file"),
    "weights that do not fit": (lambda tmp: ["--model", "mobilenet_v2", "--weights", _vgg_weights(tmp)], "does not fit mobilenet_v2"),
    "unwritable storage": (
        lambda tmp: (tmp / "file").write_text("") or ["--storage", f"sqlite:///{tmp}/file/studies.db"],
        "cannot create",
    ),
    "storage that cannot be opened": (lambda tmp: ["--storage", "nosuchdb://host/db"], "cannot open it"),
    "fractions over one": (lambda tmp: ["--test-fraction", "0.5", "--search-val-fraction", "0.45"], "do not add up"),
    "zero epochs": (lambda tmp: ["--epochs", "0"], "--epochs must be at least 1"),
    "not a number": (lambda tmp: ["--epochs", "many"], "invalid int value"),
    "empty delimiters": (lambda tmp: ["--delimiters", ","], "--delimiters"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, tiny_args, capsys, case):
    make_args, message = CASES[case]
    code = main(tiny_args(*make_args(tmp_path)))
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err
    assert "Traceback" not in captured.err + captured.out
    db = tmp_path / "studies.db"
    if db.exists():  # nothing half-written
        assert optuna.get_all_study_summaries(f"sqlite:///{db}") == []


def test_command_line_exit_code_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "study.run", "--model", "alexnet", "--storage", f"sqlite:///{tmp_path}/s.db"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --model 'alexnet' is unknown")
    assert "Traceback" not in result.stderr
