import keras
import numpy as np

from study.candidates import Candidate, all_layers
from study.config import StudyConfig
from study.inputs import build_backbone, preprocessor, synthetic_images
from study.training import FusedAdam, compile_model, fine_tune, stop_when_settled


def _train_and_snapshot(model_name, candidate):
    config = StudyConfig(model=model_name, weights="none", image_size=32, epochs=2, learning_rate=1e-3).validate()
    images, labels, _ = synthetic_images(24, 3, 32, seed=0)
    x = preprocessor(config)(images)
    before = {}

    def snapshot(model):
        backbone = model.get_layer(index=1)
        for layer in all_layers(backbone):
            before[layer.name] = [np.array(w) for w in layer.get_weights()]
        before["__head__"] = [np.array(w) for w in model.get_layer("head_classes").get_weights()]

    result = fine_tune(config, lambda: build_backbone(config), candidate, (x, labels), 3,
                       validation=(x, labels), before_fit=snapshot)
    backbone = result.model.get_layer(index=1)
    after = {layer.name: layer.get_weights() for layer in all_layers(backbone)}
    changed = {name for name, weights in after.items()
               if any(not np.array_equal(a, b) for a, b in zip(weights, before[name]))}
    head_changed = not np.array_equal(result.model.get_layer("head_classes").get_weights()[0], before["__head__"][0])
    return result, changed, head_changed


def test_only_candidate_and_head_change_vgg():
    candidate = Candidate("block-03", ("block3_conv1", "block3_conv2", "block3_conv3"))
    result, changed, head_changed = _train_and_snapshot("vgg16", candidate)
    assert changed == set(candidate.layers)
    assert head_changed
    assert result.trainable_params == sum(
        int(np.prod(w.shape)) for w in result.model.trainable_weights
    )


def test_batchnorm_stays_frozen_in_residual_network():
    candidate = Candidate("block", ("block_16_expand", "block_16_depthwise", "block_16_project"))
    _, changed, head_changed = _train_and_snapshot("mobilenet_v2", candidate)
    # BatchNormalization (moving statistics included) and every other conv keep their weights.
    assert changed == set(candidate.layers)
    assert head_changed


def test_head_only_changes_no_backbone_weight():
    _, changed, head_changed = _train_and_snapshot("vgg16", Candidate("head", ()))
    assert changed == set() and head_changed


def test_same_seed_same_weights():
    candidate = Candidate("block-05", ("block5_conv1",))
    first, _, _ = _train_and_snapshot("vgg16", candidate)
    second, _, _ = _train_and_snapshot("vgg16", candidate)
    assert first.history == second.history


def test_fused_adam_updates_like_keras_adam():
    def train(optimizer):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 3))
        features = keras.layers.Conv2D(4, 3)(inputs)
        outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(features))
        model = keras.Model(inputs, outputs)
        compile_model(model, optimizer)
        images, labels, _ = synthetic_images(16, 3, 8, seed=1)
        history = model.fit(images / 255.0, labels, batch_size=4, epochs=5, shuffle=False, verbose=0)
        return model.get_weights(), history.history["loss"]

    fused, fused_loss = train(FusedAdam(learning_rate=1e-2))
    plain, plain_loss = train(keras.optimizers.Adam(learning_rate=1e-2))
    start = train(FusedAdam(learning_rate=0.0))[0]
    assert any(not np.allclose(a, b) for a, b in zip(fused, start))  # it trained
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fused_loss, plain_loss, rtol=1e-4)


def _epochs_run(curve, patience=10, min_delta=0.01):
    """Epochs a fit with `stop_when_settled` trains on a validation curve (the whole curve if it never stops)."""
    stop = stop_when_settled(patience, min_delta)
    stop.set_model(keras.Sequential())
    stop.on_train_begin()
    for epoch, accuracy in enumerate(curve):
        stop.on_epoch_end(epoch, {"val_accuracy": float(accuracy)})
        if stop.stopped_epoch:
            return stop.stopped_epoch + 1
    return len(curve)


def test_the_stopping_rule_stops_a_plateau_patience_epochs_after_its_best():
    # Rises to 0.85 by epoch 15, then wanders within half a point (under min_delta) of 0.85.
    rng = np.random.default_rng(0)
    curve = np.concatenate([np.linspace(0.3, 0.85, 16), 0.85 + rng.uniform(-0.005, 0.005, 34)])
    assert _epochs_run(curve) == 15 + 10 + 1  # 10 epochs without progress after epoch 15, then it stops


def test_the_stopping_rule_never_stops_a_curve_that_keeps_rising():
    # The slowest rise seen on real features (digits, MobileNet alpha 0.25, 64 px: about 0.3 points per
    # epoch at epochs 40-50), with epoch-to-epoch noise of one point: a new best by more than min_delta
    # comes well within 10 epochs, so all 50 run.
    for seed in range(20):
        rng = np.random.default_rng(seed)
        curve = 0.5 + 0.006 * np.arange(50) + rng.normal(0, 0.01, 50)
        assert _epochs_run(curve) == 50, seed
