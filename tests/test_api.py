"""The Python API (`from study import run_study, run_protocol, make_config`) keeps the command line's
promise: a bad option raises StudyError with the message `python -m study.run` prints for it, before
anything is created or TensorFlow is loaded."""

import dataclasses
import math

import numpy as np
import pytest

from study import StudyConfig, make_config, run_protocol, run_study
from study.run import main
from study.runtime import StudyError

BAD_CALLS = {
    "epochs as text": (lambda: run_study(epochs="3"), "--epochs must be an integer (got '3')"),
    "epochs as a fraction": (lambda: run_study(epochs=2.5), "--epochs must be an integer (got 2.5)"),
    "epochs as a bool": (lambda: run_study(epochs=True), "--epochs must be an integer (got True)"),
    "image size as a float": (lambda: run_study(image_size=32.0), "--image-size must be an integer (got 32.0)"),
    "no model": (lambda: run_study(model=None), "--model must be a string (got None)"),
    "storage as a number": (lambda: run_study(storage=5), "--storage must be a string (got 5)"),
    "learning rate as text": (lambda: run_study(learning_rate="x"), "--learning-rate must be a number (got 'x')"),
    "delimiters as a number": (lambda: run_study(delimiters=3), "--delimiters must be layer class names"),
    "a switch as a number": (lambda: run_study(skip_final=1), "--skip-final must be True or False (got 1)"),
    "n_trials as text": (lambda: run_study(n_trials="5"), "--n-trials must be an integer or None (got '5')"),
    "a positional that is not a config": (lambda: run_study("vgg16"),
                                          "run_study takes a StudyConfig or keyword options, not 'vgg16'"),
    "a config and options": (lambda: run_study(StudyConfig(), epochs=3),
                             "run_study takes a StudyConfig or keyword options, not both (got a config and epochs)"),
    "a config that is not valid": (lambda: run_study(StudyConfig(epochs=0)), "--epochs must be at least 1 (got 0)"),
    "protocol with a config and options": (lambda: run_protocol(StudyConfig(strategy="all"), seed=1),
                                           "run_protocol takes a StudyConfig or keyword options, not both"),
    "protocol of one strategy": (lambda: run_protocol(strategy="block"), "run_protocol runs strategy 'all', not 'block'"),
    "the protocol through run_study": (lambda: run_study(strategy="all"), "use study.run_protocol"),
    "a number out of bounds": (lambda: run_study(seed=2**32), "--seed must be at most 4294967295"),
    "nan": (lambda: make_config(cache_budget_gb=math.nan), "--cache-budget-gb must be a finite number (got nan)"),
}


@pytest.mark.parametrize("case", BAD_CALLS)
def test_bad_calls_raise_one_line_study_errors(case, tmp_path, monkeypatch):
    call, message = BAD_CALLS[case]
    monkeypatch.chdir(tmp_path)  # the default storage is relative: nothing may appear here
    with pytest.raises(StudyError) as raised:
        call()
    text = str(raised.value)
    assert message in text and "\n" not in text, text
    assert list(tmp_path.iterdir()) == []


# The same value through the command line and the API: the same message.
SAME = [
    (["--epochs", "0"], {"epochs": 0}),
    (["--seed", "4294967296"], {"seed": 2**32}),
    (["--learning-rate", "nan"], {"learning_rate": math.nan}),
    (["--batch-size", "100000"], {"batch_size": 100_000}),
    (["--workers", "2", "--storage", "sqlite:///:memory:"], {"workers": 2, "storage": "sqlite:///:memory:"}),
    (["--test-fraction", "1.5"], {"test_fraction": 1.5}),
]


@pytest.mark.parametrize("args, options", SAME)
def test_command_line_and_api_say_the_same(args, options, capsys):
    assert main(args) == 2
    printed = capsys.readouterr().err.strip()
    with pytest.raises(StudyError) as raised:
        make_config(**options)
    assert printed == f"error: {raised.value}"


def test_numpy_numbers_are_plain_numbers_in_the_config():
    config = make_config(epochs=np.int64(3), learning_rate=np.float32(0.5), cache_budget_gb=2, delimiters=["Add"])
    assert (config.epochs, type(config.epochs)) == (3, int)
    assert type(config.learning_rate) is float and type(config.cache_budget_gb) is float
    assert config.delimiters == ("Add",)
    # A valid config given whole is used as it is.
    given = StudyConfig(epochs=4)
    assert given.validate() is given and dataclasses.replace(given, epochs=5).validate().epochs == 5
