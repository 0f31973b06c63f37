import gc

import keras
import numpy as np
import pytest
from tensorflow.python.framework.func_graph import FuncGraph

from study.candidates import Candidate
from study.config import StudyConfig
from study.inputs import build_backbone, preprocessor, synthetic_images
from study.training import PrefixCache, find_cut, fine_tune


def _data(config):
    images, labels, _ = synthetic_images(36, 3, 32, seed=1)
    x = preprocessor(config)(images)
    return (x[:24], labels[:24]), (x[24:], labels[24:])


def _kept(cache: PrefixCache):
    (model,) = cache._kept.values()
    return model


def _weights(result):
    return [np.array(w) for w in result.model.trainable_weights]


@pytest.mark.parametrize(
    "model, layers, crossing",
    [
        ("vgg16", ("block4_conv3", "block5_conv1"), 1),  # a plain chain: one tensor crosses
        ("mobilenet_v2", ("block_5_project", "block_6_expand"), 2),  # residual: the shortcut crosses too
    ],
)
def test_cached_trial_equals_plain_trial(model, layers, crossing):
    config = StudyConfig(model=model, weights="none", image_size=32, epochs=3, learning_rate=1e-3).validate()
    train, validation = _data(config)
    candidate = Candidate("c", layers)
    build = lambda: build_backbone(config)  # noqa: E731
    plain = fine_tune(config, build, candidate, train, 3, validation=validation)
    cache = PrefixCache(budget_bytes=2**30)
    cached = fine_tune(config, build, candidate, train, 3, validation=validation, cache=cache)
    assert plain.cache == "off" and cached.cache.startswith(f"on: {crossing} tensor")
    for key in plain.history:
        if key != "learning_rate":
            np.testing.assert_allclose(plain.history[key], cached.history[key], atol=2e-3)
    for a, b in zip(_weights(plain), _weights(cached)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    assert plain.trainable_params == cached.trainable_params


def test_consecutive_trials_on_one_cache_equal_their_plain_trials():
    config = StudyConfig(model="vgg16", weights="none", image_size=32, epochs=2, learning_rate=1e-3).validate()
    train, validation = _data(config)
    builds = []
    build = lambda: builds.append(1) or build_backbone(config)  # noqa: E731
    cache = PrefixCache(budget_bytes=2**30)
    # The second candidate's suffix runs through block5_conv1, which the first trial tuned: the kept
    # backbone must give it back its built weights.
    for layers in (("block5_conv1",), ("block4_conv3",), ("block5_conv1",)):
        candidate = Candidate("c", layers)
        cached = fine_tune(config, build, candidate, train, 3, validation=validation, cache=cache)
        plain = fine_tune(config, build, candidate, train, 3, validation=validation)
        np.testing.assert_allclose(plain.history["val_loss"], cached.history["val_loss"], rtol=1e-4)
        for a, b in zip(_weights(plain), _weights(cached)):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    assert len(builds) == 1 + 3  # the cache built its backbone once; every plain trial builds its own


@pytest.mark.parametrize(
    "model, layers",
    [
        ("vgg16", ("block5_conv1",)),  # trained from the cached activations of one tensor
        ("mobilenet_v2", ("block_5_project", "block_6_expand")),  # a residual cut: two tensors
        ("vgg16", ("block1_conv1",)),  # the first layer tuned: nothing cached, the whole model trains
        ("mobilenet_v2", ()),  # the head only: trained on the backbone's cached features
    ],
)
def test_the_next_seed_of_a_candidate_reuses_its_traced_graph_and_trains_as_a_new_model(model, layers):
    """Repeats and final-stage seeds train one candidate one after another: the second training
    fits the kept model (no new trace) and gives exactly what a new model would."""
    config = StudyConfig(model=model, weights="none", image_size=32, epochs=2, learning_rate=1e-3).validate()
    train, validation = _data(config)
    candidate = Candidate("c", layers)
    build = lambda: build_backbone(config)  # noqa: E731

    def lower_learning_rate(logs=None):  # what ReduceLROnPlateau does on a plateau: it must not carry over
        _kept(cache).optimizer.learning_rate = 1e-7

    cache = PrefixCache(budget_bytes=2**30)
    fine_tune(config, build, candidate, train, 3, validation=validation, seed=0, cache=cache,
              callbacks=[keras.callbacks.LambdaCallback(on_train_end=lower_learning_rate)])
    kept = _kept(cache)
    traced = kept.train_function
    again = fine_tune(config, build, candidate, train, 3, validation=validation, seed=1, backbone_seed=0, cache=cache)
    assert _kept(cache) is kept and kept.train_function is traced
    new = fine_tune(config, build, candidate, train, 3, validation=validation, seed=1, backbone_seed=0,
                    cache=PrefixCache(budget_bytes=2**30))
    assert again.history == new.history and again.cache == new.cache
    for a, b in zip(_weights(again), _weights(new), strict=True):  # the caller's model holds the result
        np.testing.assert_array_equal(a, b)
    scores = [r.model.evaluate(*validation, verbose=0, return_dict=True) for r in (again, new)]
    assert scores[0] == scores[1]


def test_in_rounds_each_candidate_keeps_its_traced_graph_and_trains_as_a_new_model():
    """The rounds train A, B, A: A's second training fits A's kept model (no new trace), B's
    training in between changes nothing of it, and it gives exactly what a new model would."""
    config = StudyConfig(model="vgg16", weights="none", image_size=32, epochs=2, learning_rate=1e-3).validate()
    train, validation = _data(config)
    build = lambda: build_backbone(config)  # noqa: E731
    first, second = Candidate("a", ("block5_conv3",)), Candidate("b", ("block4_conv3", "block5_conv1"))
    cache = PrefixCache(budget_bytes=2**30, kept_models=2)
    fine_tune(config, build, first, train, 3, validation=validation, seed=0, cache=cache)
    fine_tune(config, build, second, train, 3, validation=validation, seed=0, cache=cache)
    assert len(cache._kept) == 2
    traced = {id(m): m.train_function for m in cache._kept.values()}
    again = fine_tune(config, build, first, train, 3, validation=validation, seed=1, backbone_seed=0, cache=cache)
    assert {id(m): m.train_function for m in cache._kept.values()} == traced  # the same two, not traced again
    new = fine_tune(config, build, first, train, 3, validation=validation, seed=1, backbone_seed=0,
                    cache=PrefixCache(budget_bytes=2**30))
    assert again.history == new.history
    for a, b in zip(_weights(again), _weights(new), strict=True):
        np.testing.assert_array_equal(a, b)


def test_trials_on_one_cache_leave_no_model_or_graph_behind():
    """A long study keeps one process: a trial must not leave its models or training graphs alive."""
    config = StudyConfig(model="vgg16", weights="none", image_size=32, epochs=1, learning_rate=1e-3).validate()
    train, validation = _data(config)
    cache = PrefixCache(budget_bytes=2**30)

    def alive_after(layers):
        fine_tune(config, lambda: build_backbone(config), Candidate("c", layers), train, 3,
                  validation=validation, cache=cache)
        gc.collect()
        objects = gc.get_objects()
        return sum(isinstance(o, keras.Model) for o in objects), sum(isinstance(o, FuncGraph) for o in objects)

    first = alive_after(("block5_conv1",))
    assert alive_after(("block4_conv3",)) == first and alive_after(("block5_conv2",)) == first


def test_residual_cut_caches_every_crossing_tensor():
    backbone = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    cut = find_cut(backbone, Candidate("c", ("block_5_project",)))
    # block_5_add needs block_4_add (the shortcut) as well as the tuned branch.
    assert set(cut.key) == {"block_5_depthwise_relu", "block_4_add"}
    assert find_cut(backbone, Candidate("c", ("Conv1",))) is None  # nothing below the first layer


def test_trials_with_the_same_cut_share_activations(prefix_passes):
    backbone = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    cache = PrefixCache(budget_bytes=2**30)
    images = np.zeros((5, 32, 32, 3), np.float32)
    calls = prefix_passes
    first = find_cut(backbone, Candidate("a", ("block5_conv1",)))
    second = find_cut(backbone, Candidate("b", ("block5_conv1", "block5_conv3")))
    a = cache.activations(first, "train", images, seed=0)
    b = cache.activations(second, "train", images, seed=0)
    assert len(calls) == 1 and a is b


def test_planned_cuts_come_from_the_same_forward_pass(prefix_passes):
    backbone = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    planned = [Candidate(n, (n,)) for n in ("Conv_1", "block_16_project", "block_5_project", "block_2_project")]
    cuts = [find_cut(backbone, c) for c in planned]
    images = np.random.default_rng(0).normal(size=(6, 32, 32, 3)).astype(np.float32)
    calls = prefix_passes
    cache = PrefixCache(budget_bytes=2**30, planned=planned)
    together = [cache.activations(cut, "train", images, seed=0) for cut in cuts]
    assert calls == [len({id(t) for cut in cuts for t in cut.inputs})] == [6]  # one pass, every crossing tensor
    for cut, arrays in zip(cuts, together):  # the same numbers as a pass for that cut alone
        alone = keras.Model(backbone.inputs, cut.inputs).predict(images, verbose=0)
        for a, b in zip(arrays, alone if isinstance(alone, list) else [alone]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_planned_cuts_only_take_the_free_budget(prefix_passes):
    backbone = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    planned = [Candidate(n, (n,)) for n in ("block5_conv3", "block5_conv2", "block4_conv1")]
    cuts = [find_cut(backbone, c) for c in planned]
    images = np.zeros((4, 32, 32, 3), np.float32)
    cache = PrefixCache(budget_bytes=(cuts[0].bytes_per_image() + cuts[1].bytes_per_image()) * 4, planned=planned)
    calls = prefix_passes
    cache.activations(cuts[0], "train", images, seed=0)
    assert calls == [2] and cache.used_bytes <= cache.budget_bytes  # block4_conv1's cut did not fit
    cache.activations(cuts[1], "train", images, seed=0)
    assert calls == [2]
    assert [c.name for c in cache.planned] == ["block4_conv1"]  # requested cuts are not prefetched again


def test_over_budget_falls_back_to_plain_and_says_so():
    config = StudyConfig(model="vgg16", weights="none", image_size=32, epochs=1).validate()
    train, validation = _data(config)
    result = fine_tune(config, lambda: build_backbone(config), Candidate("c", ("block5_conv3",)),
                       train, 3, validation=validation, cache=PrefixCache(budget_bytes=1000))
    assert result.cache.startswith("off:") and "budget" in result.cache


def test_cache_evicts_least_recent_within_budget():
    backbone = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    images = np.zeros((10, 32, 32, 3), np.float32)
    cuts = [find_cut(backbone, Candidate(n, (n,))) for n in ("block5_conv1", "block4_conv1")]
    cache = PrefixCache(budget_bytes=cuts[0].bytes_per_image() * 10 + 1)
    cache.activations(cuts[0], "train", images, seed=0)
    cache.activations(cuts[1], "train", images, seed=0)
    assert cache.used_bytes == cuts[1].bytes_per_image() * 10
