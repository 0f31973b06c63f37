import subprocess
import sys

import keras
import numpy as np
import optuna
import pytest
from PIL import Image

from study.run import main
from study.storage import open_storage


def _images(root, classes, per_class=12):
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((8, 8, 3), i * 10, np.uint8)).save(root / name / f"{i}.png")


def _bomb(root):
    """Image folders with a decompression bomb: a 14000x14000 1-bit PNG of 23 KB (196 million pixels)."""
    _images(root, ["a", "b"])
    Image.new("1", (14000, 14000)).save(root / "a" / "bomb.png")
    return ["--data-dir", str(root)]


def _legacy_model(tmp_path):
    """A whole model in Keras 2's HDF5 format, as Keras 3 still writes it."""
    path = tmp_path / "old.h5"
    keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, name="conv")]).save(path)
    return str(path)


def _made(path, folder=False):
    """`path` made (a folder, or an empty file) with its parents: a result of an earlier mistake."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir() if folder else path.write_text("")
    return path


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
    "decompression bomb": (lambda tmp: _bomb(tmp / "bomb"), "(a decompression bomb?); remove the file or shrink it"),
    "negative seed": (lambda tmp: ["--seed", "-1"], "--seed must be at least 0 (got -1)"),
    "artifact dir that is a file": (
        lambda tmp: (tmp / "afile").write_text("") or ["--artifact-dir", str(tmp / "afile")], "is a file, not a folder",
    ),
    "artifact dir inside a file": (
        lambda tmp: (tmp / "afile").write_text("") or ["--artifact-dir", str(tmp / "afile" / "models")],
        "cannot write there",
    ),
    "window wider than the model": (lambda tmp: ["--strategy", "window", "--window-size", "1000"],
                                    "--window-size 1000 is more than the model's 13 weighted layers"),
    "window wider than the model, whole protocol": (lambda tmp: ["--strategy", "all", "--window-size", "1000"],
                                                    "--window-size 1000 is more than"),
    "unknown delimiter, layer strategy": (lambda tmp: ["--strategy", "layer", "--delimiters", "NotALayer"],
                                          "--delimiters: NotALayer is not a Keras layer class"),
    "topk without the layer-wise study": (lambda tmp: ["--strategy", "topk"], "needs the layer-wise study"),
    "storage that is a folder": (lambda tmp: ["--storage", f"sqlite:///{tmp}"], "is a folder"),
    "storage that is not SQLite": (
        lambda tmp: (tmp / "notes.db").write_text("my notes") and ["--storage", f"sqlite:///{tmp}/notes.db"],
        "is not a SQLite database",
    ),
    "model that is a folder": (lambda tmp: ["--model", str(_made(tmp / "saved", folder=True))], "saved: is a folder"),
    "model folder named .keras": (lambda tmp: ["--model", str(_made(tmp / "m.keras", folder=True))], "is a folder"),
    "legacy HDF5 model": (lambda tmp: ["--model", _legacy_model(tmp)],
                          "legacy HDF5 models are not accepted; convert it once with keras.models.load_model("),
    "weights file as the model": (lambda tmp: ["--model", str(_made(tmp / "w.weights.h5"))],
                                  "a weights file, not a model; pass it as --weights"),
    "model file of another kind": (lambda tmp: ["--model", str(_made(tmp / "m.pb"))], "not a .keras model file"),
    "weights that are a folder": (lambda tmp: ["--weights", str(_made(tmp / "w", folder=True))], "w: is a folder"),
    "data dir that is a file": (lambda tmp: ["--data-dir", str(_made(tmp / "photos.zip"))],
                                "photos.zip: is a file, not a folder; give a folder of class sub-folders"),
    # The saved model goes to <artifact dir>/../models/<study>.keras (tiny_args: tmp/artifacts).
    "models folder that is a file": (lambda tmp: _made(tmp / "models") and [],
                                     "where the run saves its final model (" + "{tmp}/models is a file)"),
    "saved model path that is a folder": (
        lambda tmp: _made(tmp / "models" / "synthetic-vgg16-block.keras", folder=True) and [],
        "synthetic-vgg16-block.keras, where the run saves its final model (it is a folder)",
    ),
    "model metadata path that is a folder": (
        lambda tmp: _made(tmp / "models" / "synthetic-vgg16-block.json", folder=True) and [],
        "synthetic-vgg16-block.json, where the run saves its final model (it is a folder)",
    ),
    "the last protocol study's model path is a folder": (
        lambda tmp: _made(tmp / "models" / "synthetic-vgg16-random.keras", folder=True) and ["--strategy", "all"],
        "synthetic-vgg16-random.keras, where the run saves its final model (it is a folder)",
    ),
    "storage password is not shown": (
        lambda tmp: ["--storage", "postgresql+psycopg://study:s3cret@127.0.0.1:9/study"],
        "--storage postgresql+psycopg://study:***@127.0.0.1:9/study: cannot open it",
    ),
}


def _existing_storage(db):
    """A storage as an earlier run leaves it: WAL mode, a study with records and a finished trial."""
    storage = open_storage(f"sqlite:///{db}")
    study = optuna.create_study(study_name="earlier", storage=storage, direction="maximize")
    study.set_user_attr("note", "kept")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    storage.engine.dispose()


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("storage", ["absent", "existing"])
@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, tiny_args, capsys, case, storage):
    make_args, message = CASES[case]
    args = tiny_args(*make_args(tmp_path))
    message = message.replace("{tmp}", str(tmp_path))
    db = tmp_path / "studies.db"
    if storage == "existing":
        _existing_storage(db)
        stored = db.read_bytes()
    files = _files(tmp_path)
    code = main(args)
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err
    assert "Traceback" not in captured.err + captured.out
    # Nothing is created or changed: no storage if there was none, the same bytes if there was one,
    # no artifact folder, no other file.
    assert _files(tmp_path) == files
    if storage == "absent":
        assert not db.exists()
    else:
        assert db.read_bytes() == stored


def test_command_line_exit_code_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "study.run", "--model", "alexnet", "--storage", f"sqlite:///{tmp_path}/s.db"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --model 'alexnet' is unknown")
    assert "Traceback" not in result.stderr


def test_the_hdf5_message_converts_the_model(tmp_path):
    """The conversion the HDF5 message gives works as written, and the tool takes its result."""
    import re

    from study.errors import StudyError
    from study.models import load_model_file
    from study.run import parse_args

    legacy = _legacy_model(tmp_path)
    with pytest.raises(StudyError) as refused:
        parse_args(["--model", legacy])
    recipe = re.search(r"convert it once with (keras\.models\.load_model\(.*?\)\.save\(.*?\))", str(refused.value))
    eval(recipe.group(1), {"keras": keras})  # the very text a user copies
    converted = str(refused.value).rsplit(" and pass ", 1)[1]
    assert parse_args(["--model", converted]).model == converted
    assert [layer.name for layer in load_model_file(converted, 32).layers][-1] == "conv"
