"""Pruning: warm-up, kept curves, and the GPU out-of-memory policy (on a faked device)."""

import optuna
import pytest
import tensorflow as tf
from optuna.trial import TrialState

from study.config import StudyConfig
from study.run import main
from study.search import ReportToTrial, fit_or_prune, make_pruner, out_of_memory_aware
from study.storage import OUT_OF_MEMORY, PARAM


class FakeGpu:
    """A device that is a GPU as far as the study can tell; counts memory releases."""

    name = "GPU:0"
    is_gpu = True

    def __init__(self):
        self.released = 0

    def is_out_of_memory(self, error):
        return isinstance(error, tf.errors.ResourceExhaustedError)

    def release(self):
        self.released += 1


def _oom(size):
    return tf.errors.ResourceExhaustedError(None, None, f"OOM when allocating tensor with shape[{size},224,224,32]")


def _study(device, inner=optuna.pruners.NopPruner, **arguments):
    return optuna.create_study(direction="maximize", pruner=out_of_memory_aware(inner)(**arguments))


def test_out_of_memory_is_retried_once_with_half_the_batch():
    device, calls = FakeGpu(), []

    def train(batch_size):
        calls.append(batch_size)
        if batch_size > 4:
            raise _oom(batch_size)
        return 0.5

    study = _study(device)
    study.optimize(lambda trial: fit_or_prune(trial, train, 8, device), n_trials=1)
    (trial,) = study.trials
    assert calls == [8, 4] and device.released == 1
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["batch_size"] == 4


def test_still_out_of_memory_is_pruned_with_its_reason_and_the_study_goes_on():
    device, calls = FakeGpu(), []

    def objective(trial):
        def train(batch_size):
            calls.append((trial.number, batch_size))
            if trial.number == 0:
                raise _oom(batch_size)
            return 0.7

        return fit_or_prune(trial, train, 8, device)

    study = _study(device, optuna.pruners.MedianPruner, n_startup_trials=0)
    study.optimize(objective, n_trials=2)
    pruned, complete = study.trials
    assert calls == [(0, 8), (0, 4), (1, 8)]
    assert pruned.state == TrialState.PRUNED and complete.state == TrialState.COMPLETE
    reason = pruned.user_attrs["prune_reason"]
    assert reason.startswith("out of memory on GPU:0 at batch size 8 and 4") and "OOM when allocating" in reason
    assert pruned.system_attrs[OUT_OF_MEMORY] == [8, 4]
    assert study.pruner.prune(study, pruned) is True  # the GPU-aware pruner knows it does not fit
    assert study.pruner.prune(study, complete) is False


def test_other_errors_are_not_retried_and_fail_the_trial():
    device, calls = FakeGpu(), []

    def train(batch_size):
        calls.append(batch_size)
        raise ValueError("a bug, not memory")

    study = _study(device)
    study.optimize(lambda trial: fit_or_prune(trial, train, 8, device), n_trials=1, catch=(ValueError,))
    assert calls == [8] and study.trials[0].state == TrialState.FAIL and device.released == 0


def test_batch_of_one_is_not_retried_at_the_same_size():
    device, calls = FakeGpu(), []

    def train(batch_size):
        calls.append(batch_size)
        raise _oom(batch_size)

    study = _study(device)
    study.optimize(lambda trial: fit_or_prune(trial, train, 1, device), n_trials=1)
    assert calls == [1] and "at batch size 1 (" in study.trials[0].user_attrs["prune_reason"]


@pytest.mark.parametrize(
    "name, cls", [("median", optuna.pruners.MedianPruner), ("halving", optuna.pruners.SuccessiveHalvingPruner),
                  ("hyperband", optuna.pruners.HyperbandPruner), ("none", optuna.pruners.NopPruner)]
)
def test_make_pruner_makes_the_chosen_pruner_gpu_aware(name, cls):
    pruner = make_pruner(StudyConfig(pruner=name, epochs=10, search_repeats=1).validate())
    assert isinstance(pruner, cls) and type(pruner).__name__ == f"OutOfMemoryAware{cls.__name__}"


def test_no_pruning_before_the_warmup_and_the_curve_is_kept():
    pruner = make_pruner(StudyConfig(pruner="median", pruner_warmup=3, epochs=10, search_repeats=1).validate())
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for _ in range(3):  # the median pruner's startup trials: good curves
        trial = study.ask()
        for step in range(1, 11):
            trial.report(0.9, step)
        study.tell(trial, 0.9)

    trial = study.ask()
    callback = ReportToTrial(trial)
    for epoch in range(2):  # epochs 1 and 2: hopeless, but less evidence than the warm-up asks
        callback.on_epoch_end(epoch, {"val_accuracy": 0.1})
    with pytest.raises(optuna.TrialPruned, match="after epoch 3"):  # 3 epochs of evidence
        callback.on_epoch_end(2, {"val_accuracy": 0.1})
    study.tell(trial, state=TrialState.PRUNED)
    frozen = study.trials[-1]
    assert frozen.state == TrialState.PRUNED
    assert frozen.intermediate_values == {1: 0.1, 2: 0.1, 3: 0.1}
    assert frozen.user_attrs["prune_reason"].startswith("pruned after epoch 3")


def test_out_of_memory_in_a_real_study(tmp_path, tiny_args, monkeypatch):
    """Through the command line: one candidate never fits, one fits at half the batch."""
    import study.search._objective as search

    real, seen = search.fine_tune, []

    def fine_tune_with_small_gpu(config, build, candidate, *args, batch_size=None, **kwargs):
        seen.append((candidate.name, batch_size))
        if candidate.name.startswith("block-05") or (candidate.name.startswith("block-04") and batch_size > 2):
            raise _oom(batch_size)
        return real(config, build, candidate, *args, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(search, "fine_tune", fine_tune_with_small_gpu)
    assert main(tiny_args("--epochs", "1", "--batch-size", "4", "--skip-final")) == 0
    trials = optuna.load_study(study_name="synthetic-vgg16-block", storage=f"sqlite:///{tmp_path}/studies.db").trials
    by_block = {t.params[PARAM][:8]: t for t in trials}
    assert [t.state for t in trials] == [TrialState.PRUNED] + [TrialState.COMPLETE] * 4
    assert "out of memory on CPU at batch size 4 and 2" in by_block["block-05"].user_attrs["prune_reason"]
    assert by_block["block-04"].user_attrs["batch_size"] == 2
    assert all(by_block[f"block-0{i}"].user_attrs["batch_size"] == 4 for i in (1, 2, 3))
    assert all("device" in t.user_attrs and t.user_attrs["peak_memory_bytes"] > 0 for t in trials)
    assert [n[:8] for n, _ in seen[:3]] == ["block-05", "block-05", "block-04"]
