import contextlib
import io
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402
from browser import require_browser  # noqa: E402

pytest_plugins = ["pytester"]  # tests/test_browser.py runs small test files in a pytest of their own


@pytest.fixture
def browser():
    """A headless Chrome/Chromium's path: skips the test without one, fails it under CI=true (tests/browser.py)."""
    return require_browser()


@pytest.fixture
def tiny_args(tmp_path):
    """CLI arguments for a study that runs in seconds: synthetic data, random weights, 32 px."""

    def make(*extra: str) -> list[str]:
        return [
            "--dataset", "synthetic",
            "--synthetic-size", "60",
            "--synthetic-classes", "3",
            "--weights", "none",
            "--image-size", "32",
            "--model", "vgg16",
            "--epochs", "2",
            # The paper's single training and the per-epoch median pruner: the protocol before
            # --search-repeats, which K=1 reproduces exactly; tests/test_repeats.py covers K > 1.
            "--search-repeats", "1", "--pruner", "median",
            "--storage", f"sqlite:///{tmp_path}/studies.db",
            "--artifact-dir", str(tmp_path / "artifacts"),
            *extra,
        ]

    return make


@pytest.fixture
def prefix_passes(monkeypatch):
    """Filled with the number of outputs of every prefix-cache forward pass (one model per pass)."""
    import keras

    calls, seen, original = [], [], keras.Model.predict_on_batch

    def counted(self, *args, **kwargs):
        if not any(model is self for model in seen):
            seen.append(self)  # kept alive, so a later model cannot reuse its id
            calls.append(len(self.outputs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "predict_on_batch", counted)
    return calls


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A saved 5-conv-layer .keras model (3 blocks at 32 px): the protocol's 16 trials run in seconds."""
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)  # a saved model gets raw 0..255 pixels
    for name, filters in (("conv1", 8), ("conv2", 8), ("pool1", 0), ("conv3", 16), ("conv4", 16), ("pool2", 0), ("conv5", 16)):
        x = keras.layers.MaxPooling2D(name=name)(x) if not filters else keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=name)(x)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    keras.Model(inputs, x, name="tiny").save(path)
    return str(path)


@pytest.fixture(scope="session")
def protocol_storage(tmp_path_factory, tiny_model):
    """`--strategy all --repeats 2` run once per test session; report, notebook and dashboard tests read it."""
    from study.run import main

    folder = tmp_path_factory.mktemp("protocol")
    args = [
        "--dataset", "synthetic", "--synthetic-size", "60", "--synthetic-classes", "3",
        "--weights", "none", "--image-size", "32", "--model", tiny_model,
        "--epochs", "2", "--learning-rate", "0.003", "--pruner", "none", "--search-repeats", "1",
        "--strategy", "all", "--repeats", "2",
        "--storage", f"sqlite:///{folder}/studies.db", "--artifact-dir", str(folder / "artifacts"),
    ]
    printed = io.StringIO()  # what a log file would hold: tests/test_progress.py reads it
    try:
        with contextlib.redirect_stdout(printed):
            code = main(args)
    finally:
        sys.stdout.write(printed.getvalue())
    assert code == 0
    return {"url": f"sqlite:///{folder}/studies.db", "artifacts": str(folder / "artifacts"), "args": args,
            "folder": folder, "stdout": printed.getvalue()}
