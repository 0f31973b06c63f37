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


# --- issue 18: every number bounded, NaN and infinity refused, in-memory storage with workers -------
BIG = "100000000000000000000"  # 10**20, an integer argparse accepts (as the issue typed "1e20")
CASES.update({
    "huge image size": (lambda tmp: ["--image-size", "100000"], "--image-size must be at most 1024 (got 100000): every image"),
    "image size 10**20": (lambda tmp: ["--image-size", BIG], f"--image-size must be at most 1024 (got {BIG})"),
    "image size 1e20 as written": (lambda tmp: ["--image-size", "1e20"], "argument --image-size: invalid int value: '1e20'"),
    "seed over numpy's range": (lambda tmp: ["--seed", "4294967296"],
                                "--seed must be at most 4294967295 (got 4294967296): numpy's seed range"),
    "seed whose repeats leave numpy's range": (lambda tmp: ["--seed", "4294967295", "--repeats", "2"],
                                               "trains with seeds up to 4294967296, over numpy's seed range"),
    "batch size 10**20": (lambda tmp: ["--batch-size", BIG], "--batch-size must be at most 4096"),
    "search repeats 10**20": (lambda tmp: ["--search-repeats", BIG, "--pruner", "race"],
                              "--search-repeats must be at most 100"),
    "epochs 10**20": (lambda tmp: ["--epochs", BIG], "--epochs must be at most 10000"),
    "random draws 10**20": (lambda tmp: ["--random-draws", BIG], "--random-draws must be at most 10000"),
    "random draws 10**20, random strategy": (lambda tmp: ["--strategy", "random", "--random-draws", BIG],
                                             "--random-draws must be at most 10000"),
    "more random draws than sets of layers": (lambda tmp: ["--strategy", "random", "--random-k", "12", "--random-draws", "14"],
                                              "--random-draws 14 is more than the 13 different sets of 12"),
    "final repeats 10**20": (lambda tmp: ["--repeats", BIG], "--repeats must be at most 1000"),
    "synthetic size 10**20": (lambda tmp: ["--synthetic-size", BIG], "--synthetic-size must be at most 1000000"),
    "synthetic set larger than memory": (lambda tmp: ["--synthetic-size", "1000000", "--image-size", "1024"],
                                         "1000000 images at --image-size 1024 need about 14.3 TiB of memory"),
    "cache budget nan": (lambda tmp: ["--cache-budget-gb", "nan"], "--cache-budget-gb must be a finite number (got nan)"),
    "cache budget inf": (lambda tmp: ["--cache-budget-gb", "inf"], "--cache-budget-gb must be a finite number (got inf)"),
    "cache budget 1e300": (lambda tmp: ["--cache-budget-gb", "1e300"], "--cache-budget-gb must be at most"),
    "workers 10**20": (lambda tmp: ["--workers", BIG], "--workers must be at most 64"),
    "workers on an in-memory storage": (lambda tmp: ["--workers", "2", "--storage", "sqlite:///:memory:"],
                                        "--workers 2 needs a storage the worker processes can share"),
    "learning rate nan": (lambda tmp: ["--learning-rate", "nan"], "--learning-rate must be a finite number (got nan)"),
    "learning rate inf": (lambda tmp: ["--learning-rate", "inf"], "--learning-rate must be a finite number (got inf)"),
    "race alpha nan": (lambda tmp: ["--race-alpha", "nan"], "--race-alpha must be a finite number (got nan)"),
    "test fraction nan": (lambda tmp: ["--test-fraction", "nan"], "--test-fraction must be a finite number (got nan)"),
    "search-train fraction inf": (lambda tmp: ["--search-train-fraction", "inf"], "--search-train-fraction must be a finite"),
    "search-val fraction -inf": (lambda tmp: ["--search-val-fraction=-inf"], "--search-val-fraction must be a finite"),
    "test fraction over one": (lambda tmp: ["--test-fraction", "1.5"], "--test-fraction must be between 0 and 1 (got 1.5)"),
    "n-trials 10**20": (lambda tmp: ["--n-trials", BIG], "--n-trials must be at most 100000"),
    "window size 10**20": (lambda tmp: ["--window-size", BIG], "--window-size must be at most 10000"),
    "random k 10**20": (lambda tmp: ["--random-k", BIG], "--random-k must be at most 10000"),
    "top k 10**20": (lambda tmp: ["--top-k", BIG], "--top-k must be at most 10000"),
    "pruner warmup 10**20": (lambda tmp: ["--pruner-warmup", BIG], "--pruner-warmup must be at most 10000"),
    "synthetic classes 10**20": (lambda tmp: ["--synthetic-classes", BIG], "--synthetic-classes must be at most 1000"),
})
# --- end of issue 18's block ----------------------------------------------------------------------

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

    from study.inputs import load_model_file
    from study.run import parse_args
    from study.runtime import StudyError

    legacy = _legacy_model(tmp_path)
    with pytest.raises(StudyError) as refused:
        parse_args(["--model", legacy])
    recipe = re.search(r"convert it once with (keras\.models\.load_model\(.*?\)\.save\(.*?\))", str(refused.value))
    eval(recipe.group(1), {"keras": keras})  # the very text a user copies
    converted = str(refused.value).rsplit(" and pass ", 1)[1]
    assert parse_args(["--model", converted]).model == converted
    assert [layer.name for layer in load_model_file(converted, 32).layers][-1] == "conv"
