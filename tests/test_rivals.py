"""The rivals of block-wise fine-tuning, each checked against what it should do: Auto-RGN's per-layer
learning rates follow the relative gradient norms step by step (Lee et al. 2023); LP-FT's second phase
starts from the first phase's head (Kumar et al. 2022); greedy layer subsets (SubTuning) add the units
that matter and stop."""

import keras
import numpy as np
import pytest

from study.candidates import STRATEGIES, Candidate
from study.candidates._strategies import _Options
from study.config import StudyConfig
from study.inputs import synthetic_images
from study.training import AutoRGNAdam, compile_model, fine_tune, head_layers


def _reference_steps(model, x, y, lr, steps):
    """The paper's rule in NumPy (float64): per layer RGN = ||g|| / ||θ|| over its kernel and bias, weights
    RGN / max RGN, then Adam (Kingma & Ba, TensorFlow's epsilon placement) with learning rate w x lr.
    Returns the weights the rule predicts and the layer weights of every step."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    params = [v.numpy().astype(np.float64) for v in model.trainable_variables]
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    predicted, weights = [], []
    for step in range(1, steps + 1):
        for variable, value in zip(model.trainable_variables, params):  # the gradient at the rule's own point
            variable.assign(value.astype(np.float32))
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x))
        grads = [g.numpy().astype(np.float64) for g in tape.gradient(loss, model.trainable_variables)]
        rgn = np.array([np.sqrt((grads[2 * i] ** 2).sum() + (grads[2 * i + 1] ** 2).sum())
                        / np.sqrt((params[2 * i] ** 2).sum() + (params[2 * i + 1] ** 2).sum())
                        for i in range(len(params) // 2)])
        w = rgn / rgn.max()
        weights.append(w)
        for i, g in enumerate(grads):
            first[i] = 0.9 * first[i] + 0.1 * g
            second[i] = 0.999 * second[i] + 0.001 * g * g
            step_size = lr * w[i // 2] * np.sqrt(1 - 0.999**step) / (1 - 0.9**step)
            params[i] = params[i] - step_size * first[i] / (np.sqrt(second[i]) + 1e-7)
        predicted.append([p.copy() for p in params])
    return predicted, weights


def test_autorgn_scales_each_layer_by_its_relative_gradient_norm_step_by_step():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 6)).astype("float32"), np.arange(16) % 3
    layers = [keras.layers.Dense(8, activation="tanh", name="a"), keras.layers.Dense(5, activation="tanh", name="b"),
              keras.layers.Dense(3, name="c")]
    model = keras.Sequential([keras.Input((6,)), *layers])
    start = [v.numpy() for v in model.trainable_variables]
    predicted, expected_weights = _reference_steps(model, x, y, 0.01, steps=4)
    for variable, value in zip(model.trainable_variables, start):
        variable.assign(value)
    optimizer = AutoRGNAdam(learning_rate=0.01)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for step in range(4):
        model.train_on_batch(x, y)
        assert [name.split("/")[-1] for name in optimizer.layer_names] == ["a", "b", "c"]
        np.testing.assert_allclose(optimizer.layer_weights.numpy(), expected_weights[step], rtol=1e-5)
        for got, want in zip(model.trainable_variables, predicted[step]):
            np.testing.assert_allclose(got.numpy(), want, atol=2e-6)
    # The rates follow the norms: the largest relative gradient norm gets the full rate, the others less.
    assert max(expected_weights[-1]) == 1.0 and min(expected_weights[-1]) < 0.9


def test_autorgn_and_lpft_are_one_candidate_each():
    layers = [{"name": "conv", "class": "Conv2D", "weighted": True, "ends_block": False, "params": 10},
              {"name": "bn", "class": "BatchNormalization", "weighted": False, "ends_block": False, "params": 4},
              {"name": "relu", "class": "ReLU", "weighted": False, "ends_block": False, "params": 0},
              {"name": "conv2", "class": "Conv2D", "weighted": True, "ends_block": False, "params": 10}]
    (autorgn,) = STRATEGIES["autorgn"].generate(layers, _Options())
    (lpft,) = STRATEGIES["lpft"].generate(layers, _Options())
    (full,) = STRATEGIES["full"].generate(layers, _Options())
    assert (autorgn.layers, autorgn.recipe) == (("conv", "conv2"), "autorgn")  # BatchNormalization not trained
    assert (lpft.layers, lpft.recipe) == (full.layers, "lpft")
    assert autorgn.to_dict()["recipe"] == "autorgn" and "recipe" not in full.to_dict()


def _tiny_backbone():
    """Four conv layers (a BatchNormalization after the second), random weights: trains in a second."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv3")(x)
    return keras.Model(inputs, keras.layers.Conv2D(8, 1, activation="relu", name="conv4")(x), name="tiny")


def _tiny_data(count=24):
    config = StudyConfig(weights="none", image_size=32, epochs=2, learning_rate=1e-3, batch_size=4).validate()
    images, labels, _ = synthetic_images(count, 3, 32, seed=0)
    return config, images.astype("float32") / 255, labels


def test_lpft_tunes_every_layer_from_the_probed_head():
    config, x, labels = _tiny_data()
    build = _tiny_backbone
    probe = fine_tune(config, build, Candidate("head", ()), (x, labels), 3, validation=(x, labels), seed=1)
    probed = [layer.get_weights() for layer in head_layers(probe.model)]
    started = {}

    def at_start(model):
        started["head"] = [layer.get_weights() for layer in head_layers(model)]
        started["backbone"] = [w.numpy().copy() for w in model.get_layer(index=1).trainable_weights]

    lpft = Candidate("lpft", ("conv1", "conv2", "conv3", "conv4"), recipe="lpft")
    result = fine_tune(config, build, lpft, (x, labels), 3, validation=(x, labels), seed=1, before_fit=at_start)
    for got, want in zip(started["head"], probed):  # phase 2 starts from phase 1's head, not a fresh one
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    fresh = fine_tune(config, build, Candidate("full", lpft.layers), (x, labels), 3, seed=1,
                      before_fit=lambda model: started.setdefault("fresh", head_layers(model)[1].get_weights()[0]))
    assert not np.array_equal(started["fresh"], probed[1][0])
    # ... and then every layer moves (the backbone was frozen in phase 1 only).
    after = [w.numpy() for w in result.model.get_layer(index=1).trainable_weights]
    assert all(not np.array_equal(a, b) for a, b in zip(after, started["backbone"]))
    assert result.trainable_params == fresh.trainable_params


@pytest.mark.parametrize("recipe", ["autorgn", "lpft"])
def test_the_recipes_train_through_the_prefix_cache_like_without(recipe):
    from study.training import PrefixCache

    config, x, labels = _tiny_data(12)
    candidate = Candidate(recipe, ("conv3", "conv4"), recipe=recipe)
    plain = fine_tune(config, _tiny_backbone, candidate, (x, labels), 3, seed=2)
    cached = fine_tune(config, _tiny_backbone, candidate, (x, labels), 3, seed=2, cache=PrefixCache())
    assert cached.cache.startswith("on")
    for a, b in zip(plain.model.trainable_weights, cached.model.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_compile_model_takes_the_autorgn_optimizer():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="d")])
    compile_model(model, AutoRGNAdam(learning_rate=1e-3))
    model.train_on_batch(np.ones((2, 2), "float32"), np.array([0, 1]))
    assert [name.split("/")[-1] for name in model.optimizer.layer_names] == ["d"]


def test_greedy_adds_the_units_that_matter_and_stops():
    # Known truth: units 1 and 3 of 4 raise the accuracy (by 0.20 and 0.10), the others by nothing; the
    # values are what a study would measure (a little noise). Margin 0.02.
    from study.candidates import greedy_state, slot_names

    effect = {1: 0.20, 3: 0.10}
    rng = np.random.default_rng(0)
    values = {}
    while True:
        state = greedy_state(4, values, 0.02)
        if not state.now:
            break
        for name in state.now:
            values[name] = 0.5 + sum(effect.get(u, 0.0) for u in state.slots[name]) + rng.normal(0, 0.003)
    assert state.accepted == [1, 3] and state.round is None
    assert "not more than the margin 0.02" in state.stopped
    assert len(values) == 1 + 4 + 3 + 2 < len(slot_names(4))  # head, rounds 1-3; round 4 never trained
    # A round whose every addition the race stopped ends the search too.
    assert greedy_state(2, {"head": 0.5, "greedy-01-01": None, "greedy-01-02": None}, 0.0).stopped == (
        "round 1: the race stopped every addition")


@pytest.mark.parametrize("repeats", [1, 2], ids=["one repeat", "two repeats in rounds"])
def test_greedy_study_finds_the_block_that_matters(tmp_path, repeats):
    # With two repeats the search trains in rounds (the default order), which must visit only the
    # current greedy round's slots: the later rounds' slots have no layers until their round starts.
    # A saved 3-block model whose last conv has a zero kernel (and a bias of ones, so that gradients flow
    # through the head's ReLU): its output is a constant, so nothing can be learned unless that block is
    # tuned. The greedy study must accept it first and stop before the end.
    from study.cli._pipeline import search
    from study.storage import CANDIDATES, study_records

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for name, filters in (("conv1", 8), ("pool1", 0), ("conv2", 8), ("pool2", 0), ("conv3", 8)):
        x = keras.layers.MaxPooling2D(name=name)(x) if not filters else keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu" if name != "conv3" else None, name=name)(x)
    model = keras.Model(inputs, x, name="dead_end")
    conv3 = model.get_layer("conv3")
    kernel, bias = conv3.get_weights()
    conv3.set_weights([np.zeros_like(kernel), np.ones_like(bias)])
    model.save(tmp_path / "dead_end.keras")
    config = StudyConfig(dataset="synthetic", synthetic_size=120, synthetic_classes=3, weights="none", image_size=32,
                         search_train_fraction=0.4, search_val_fraction=0.25, model=str(tmp_path / "dead_end.keras"),
                         epochs=6, learning_rate=1e-2, strategy="greedy",
                         greedy_margin=0.15, search_repeats=repeats, pruner="none",
                         storage=f"sqlite:///{tmp_path}/studies.db", artifact_dir=str(tmp_path / "art")).validate()
    outcome = search(config)
    values = {t.params["candidate"]: t.value for t in outcome.study.get_trials() if t.value is not None}
    records = {c["name"]: c["layers"] for c in study_records(outcome.study)[CANDIDATES]}
    first_round = {name: v for name, v in values.items() if name.startswith("greedy-01-")}
    assert records[max(first_round, key=first_round.get)] == ["conv3"]  # the block that matters wins round 1
    assert max(first_round.values()) > values["head"] + 0.15
    assert outcome.complete and len(values) < 1 + 3 + 2 + 1  # it stopped before the last round
    assert config.in_rounds == (repeats > 1)
    # Every trained slot had its layers when it trained: no slot of a round that never started was trained.
    assert all(records[name] for name in values if name != "head")
