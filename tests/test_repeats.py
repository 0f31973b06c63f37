"""`--search-repeats K`: paired draws, K=1 as before, the race, the tied set, resume inside a candidate."""

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

import study.search._objective as search
from study.candidates import Candidate
from study.config import StudyConfig
from study.inputs import build_backbone, load_splits, preprocessor
from study.run import main
from study.storage import EPOCH_VALUES, INTERVAL_95, PARAM, PRUNE_REASON, REPEAT_EPOCHS, REPEAT_VALUES, STANDARD_ERROR, TIED_WITH_WINNER
from study.training import TrainingResult, fine_tune


def _load(tmp_path, name="synthetic-vgg16-block"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/studies.db")


def test_every_repeat_draws_its_own_stratified_split_from_the_pool_and_never_the_test():
    splits = load_splits(StudyConfig(dataset="synthetic", synthetic_size=200, image_size=32, seed=3).validate())
    pool, test = set(splits.indices["pool"]), set(splits.indices["test"])
    draws = [splits.search_draw(r) for r in range(4)]
    assert [list(d) for d in draws[0]] == [list(splits.indices["search_train"]), list(splits.indices["search_val"])]
    for train, val in draws:
        assert set(train) <= pool and set(val) <= pool and not set(train) & set(val) and not (set(train) | set(val)) & test
        for split, first in ((train, draws[0][0]), (val, draws[0][1])):  # same size per class as repeat 0
            assert np.array_equal(np.bincount(splits.labels[split]), np.bincount(splits.labels[first]))
    assert len({tuple(train) for train, _ in draws}) == 4  # each repeat its own draw
    again = load_splits(StudyConfig(dataset="synthetic", synthetic_size=200, image_size=32, seed=3).validate())
    assert all(np.array_equal(a, b) for r in range(4) for a, b in zip(draws[r], again.search_draw(r)))


def test_repeat_r_of_every_candidate_sees_the_same_images_and_seed(tmp_path, tiny_args, monkeypatch):
    real, seen = search.fine_tune, []

    def recording(config, build, candidate, train, num_classes, validation=None, seed=None, **kwargs):
        seen.append((candidate.name, seed, tuple(train.rows), tuple(validation.rows), kwargs["backbone_seed"]))
        return real(config, build, candidate, train, num_classes, validation=validation, seed=seed, **kwargs)

    monkeypatch.setattr(search, "fine_tune", recording)
    assert main(tiny_args("--search-repeats", "3", "--pruner", "none", "--epochs", "1", "--skip-final",
                          "--n-trials", "2")) == 0
    by_repeat: dict[int, set] = {}
    for name, seed, train, val, backbone_seed in seen:
        assert backbone_seed == 0  # one backbone (and one prefix cache) for every repeat
        by_repeat.setdefault(seed, set()).add((train, val))
    assert sorted(by_repeat) == [0, 1, 2] and all(len(draws) == 1 for draws in by_repeat.values())
    assert len({draws.pop() for draws in by_repeat.values()}) == 3
    trials = _load(tmp_path).trials
    assert len(trials) == 2 and len({name for name, *_ in seen}) == 2
    for trial in trials:
        values = trial.user_attrs[REPEAT_VALUES]
        assert len(values) == 3 and trial.value == pytest.approx(np.mean(values))
        assert trial.intermediate_values == dict(enumerate(values))  # the race's steps are the repeats
        assert len(trial.user_attrs[EPOCH_VALUES]) == 3 and all(len(c) == 1 for c in trial.user_attrs[EPOCH_VALUES])
        low, high = trial.user_attrs[INTERVAL_95]
        assert low <= trial.value <= high and trial.user_attrs[STANDARD_ERROR] >= 0


def test_one_repeat_is_the_single_training_of_before(tmp_path, tiny_args):
    """K=1: the study's value is one fine-tune on the study's own search-train/search-val split
    with the study's seed (the protocol before repeats), and it is repeat 0 of a K=3 study."""
    assert main(tiny_args("--skip-final", "--n-trials", "1")) == 0
    one = _load(tmp_path).trials[0]
    assert sorted(one.intermediate_values) == [1, 2]  # --pruner median: every epoch, as before
    config = StudyConfig(dataset="synthetic", synthetic_size=60, synthetic_classes=3, weights="none",
                         image_size=32, model="vgg16", epochs=2, search_repeats=1, pruner="median").validate()
    splits = load_splits(config)
    preprocess = preprocessor(config)
    x, y = splits.arrays("search_train")
    xv, yv = splits.arrays("search_val")
    layers = tuple(one.user_attrs["layers"])
    direct = fine_tune(config, lambda: build_backbone(config), Candidate(one.params[PARAM], layers),
                       (preprocess(x), y), splits.num_classes, validation=(preprocess(xv), yv))
    assert one.value == pytest.approx(direct.history["val_accuracy"][-1], abs=1e-6)

    other = tmp_path / "k3"
    other.mkdir()
    args = [a.replace(str(tmp_path), str(other)) for a in tiny_args("--skip-final", "--n-trials", "1",
                                                                    "--search-repeats", "3", "--pruner", "none")]
    assert main(args) == 0
    three = _load(other).trials[0]
    assert three.params[PARAM] == one.params[PARAM]
    assert three.user_attrs[REPEAT_VALUES][0] == pytest.approx(one.value, abs=1e-6)


def test_repeats_stop_once_settled_and_fixed_epochs_is_the_fixed_protocol_exactly(tmp_path, tiny_args):
    """With more than one repeat a repeat stops once its validation accuracy has settled; --fixed-epochs
    trains all --epochs, exactly the fixed-epoch training (repeat 0: the study's own split and seed)."""
    # Patience 1 with a least rise of 0.5: no epoch after the first can count as progress, so every
    # repeat stops after 2 of its 4 epochs.
    common = ("--skip-final", "--n-trials", "1", "--search-repeats", "2", "--pruner", "none", "--epochs", "4",
              "--patience", "1", "--min-delta", "0.5")
    assert main(tiny_args(*common)) == 0
    early = _load(tmp_path).trials[0]
    fixed_folder = tmp_path / "fixed"
    fixed_folder.mkdir()
    args = [a.replace(str(tmp_path), str(fixed_folder)) for a in tiny_args(*common, "--fixed-epochs")]
    assert main(args) == 0
    fixed = _load(fixed_folder).trials[0]
    assert early.params[PARAM] == fixed.params[PARAM]
    assert early.user_attrs[REPEAT_EPOCHS] == [2, 2] and fixed.user_attrs[REPEAT_EPOCHS] == [4, 4]
    for stopped, full in zip(early.user_attrs[EPOCH_VALUES], fixed.user_attrs[EPOCH_VALUES]):
        assert stopped == full[:2]  # stopping ends the training; it changes nothing before
    assert early.user_attrs[REPEAT_VALUES] == [curve[-1] for curve in early.user_attrs[EPOCH_VALUES]]

    config = StudyConfig(dataset="synthetic", synthetic_size=60, synthetic_classes=3, weights="none",
                         image_size=32, model="vgg16", epochs=4, search_repeats=1, pruner="none").validate()
    splits = load_splits(config)
    preprocess = preprocessor(config)
    (x, y), (xv, yv) = splits.arrays("search_train"), splits.arrays("search_val")
    direct = fine_tune(config, lambda: build_backbone(config), Candidate(fixed.params[PARAM], tuple(fixed.user_attrs["layers"])),
                       (preprocess(x), y), splits.num_classes, validation=(preprocess(xv), yv))
    assert fixed.user_attrs[EPOCH_VALUES][0] == pytest.approx(direct.history["val_accuracy"], abs=1e-6)


class FakeTraining:
    """fine_tune replaced by known truth: candidate quality + a draw effect shared by every candidate
    (what pairing removes) + small noise. Records the (candidate, repeat) pairs it trained."""

    def __init__(self, means: dict[str, float], draw_effects=(0.0, 0.06, -0.05, 0.03, -0.02), noise=0.004, fail_at=None):
        self.means, self.draw_effects, self.noise, self.fail_at = means, draw_effects, noise, fail_at
        self.calls: list[tuple[str, int]] = []

    def __call__(self, config, build, candidate, train, num_classes, validation=None, seed=0, **kwargs):
        prefix = candidate.name.split(":")[0]
        if (prefix, seed) == self.fail_at:
            self.fail_at = None
            raise KeyboardInterrupt
        self.calls.append((prefix, seed))
        rng = np.random.default_rng([seed, sum(map(ord, prefix))])
        value = self.means[prefix] + self.draw_effects[seed] + rng.normal(0, self.noise)
        history = {"val_accuracy": [value - 0.1, value], "accuracy": [0.5, 0.9]}
        return TrainingResult(model=None, history=history, trainable_params=1, seconds=0.0, cache="off: fake")


def test_race_stops_clearly_worse_candidates_and_ties_the_equal_ones(tmp_path, tiny_args, monkeypatch):
    # Grid order: output end first (block-05 first). block-04 and block-05 are equal and best.
    means = {"block-05": 0.80, "block-04": 0.80, "block-03": 0.60, "block-02": 0.62, "block-01": 0.80}
    fake = FakeTraining(means)
    monkeypatch.setattr(search, "fine_tune", fake)
    assert main(tiny_args("--search-repeats", "5", "--pruner", "race", "--search-order", "by-candidate", "--skip-final")) == 0
    study = _load(tmp_path)
    by_block = {t.params[PARAM][:8]: t for t in study.trials}
    for worse in ("block-03", "block-02"):
        trial = by_block[worse]
        assert trial.state == TrialState.PRUNED
        # Two finished candidates give the noise (pooled, 4 degrees of freedom): one repeat 0.2
        # below the best is far past alpha / (4 looks x 2 candidates).
        assert "stopped after 1 of 5 repeats: worse than trial" in trial.user_attrs[PRUNE_REASON]
        assert "< 0.00625 (one-sided paired t-test, repeat noise pooled" in trial.user_attrs[PRUNE_REASON]
        assert len(trial.user_attrs[REPEAT_VALUES]) == 1
    assert {b for b, t in by_block.items() if t.state == TrialState.COMPLETE} == {"block-05", "block-04", "block-01"}
    assert len(fake.calls) == 3 * 5 + 2 * 1  # the race saved 8 of 25 trainings
    tied = [name[:8] for name in study.user_attrs[TIED_WITH_WINNER]]
    assert tied[0] in ("block-05", "block-04") and {"block-05", "block-04"} <= set(tied)
    assert "block-03" not in tied and "block-02" not in tied


def test_an_interrupted_candidate_resumes_after_its_finished_repeats(tmp_path, tiny_args, monkeypatch, capsys):
    means = {"block-05": 0.8, "block-04": 0.7, "block-03": 0.6, "block-02": 0.6, "block-01": 0.6}
    fake = FakeTraining(means, fail_at=("block-04", 2))  # Ctrl-C in block-04's third repeat
    monkeypatch.setattr(search, "fine_tune", fake)
    args = tiny_args("--search-repeats", "3", "--pruner", "none", "--search-order", "by-candidate", "--skip-final")
    assert main(args) == 130
    failed = [t for t in _load(tmp_path).trials if t.state == TrialState.FAIL]
    assert [t.params[PARAM][:8] for t in failed] == ["block-04"] and len(failed[0].user_attrs[REPEAT_VALUES]) == 2
    done_before = list(fake.calls)
    assert main(args) == 0
    resumed = fake.calls[len(done_before):]
    assert resumed[0] == ("block-04", 2)  # repeats 0 and 1 of block-04 are not trained again
    assert ("block-04", 0) not in resumed and ("block-04", 1) not in resumed
    trial = next(t for t in _load(tmp_path).trials if t.params[PARAM][:8] == "block-04" and t.state == TrialState.COMPLETE)
    assert trial.user_attrs[REPEAT_VALUES][:2] == failed[0].user_attrs[REPEAT_VALUES]
    assert len(trial.user_attrs[REPEAT_VALUES]) == 3 and trial.value == pytest.approx(np.mean(trial.user_attrs[REPEAT_VALUES]))


def test_per_epoch_pruners_need_one_repeat(tiny_args, capsys):
    assert main(tiny_args("--search-repeats", "3", "--pruner", "median")) == 2
    assert "--pruner median stops a training by its epochs" in capsys.readouterr().err


def test_a_trial_that_takes_over_every_repeat_keeps_the_trainable_parameter_count():
    # Killed after its last repeat was stored: the next trial trains nothing, but --select simplest still
    # needs the candidate's parameter count.
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    from study.storage import TRAINABLE_PARAMS

    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(params={PARAM: "block-01"}, distributions={PARAM: CategoricalDistribution(["block-01"])},
                                 state=TrialState.FAIL,
                                 user_attrs={REPEAT_VALUES: [0.5, 0.6], EPOCH_VALUES: [[0.5], [0.6]], TRAINABLE_PARAMS: 1234}))
    held = search.interrupted_repeats(study, "block-01")
    assert held.taken_over == 2 and held.trainable_params == 1234
    trial = study.ask()
    search.store_repeats(trial, held)
    assert study.trials[-1].user_attrs[TRAINABLE_PARAMS] == 1234
