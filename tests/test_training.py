import keras
import numpy as np

from study.backbones import build_backbone, preprocessor
from study.candidates import Candidate, all_layers
from study.config import StudyConfig
from study.synthetic import synthetic_images
from study.training import fine_tune


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
