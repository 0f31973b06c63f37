import pytest

from study.candidates import STRATEGIES, block_groups, layer_summary, make_candidates, windows
from study.config import MODELS, STRATEGY_NAMES, StudyConfig
from study.inputs import build_backbone
from study.runtime import StudyError

# Weighted layers, blocks (default delimiters) and windows of 3, as listed in docs/models.md.
EXPECTED = {
    "vgg16": (13, 5, 11),
    "mobilenet": (27, 5, 25),
    "mobilenet_v2": (52, 11, 50),
    "mobilenet_v3_small": (52, 7, 50),
    "resnet50": (53, 17, 51),
    "resnet50_v2": (53, 20, 51),
}


@pytest.fixture(scope="module")
def backbones():
    return {m: build_backbone(StudyConfig(model=m, weights="none", image_size=32).validate()) for m in MODELS}


@pytest.mark.parametrize("model", MODELS)
def test_candidate_counts_for_every_backbone(backbones, model):
    counts = tuple(
        len(make_candidates(StudyConfig(model=model, strategy=s).validate(), backbones[model]))
        for s in ("layer", "block", "window")
    )
    assert counts == EXPECTED[model]


@pytest.mark.parametrize("model", MODELS)
def test_blocks_cover_every_weighted_layer_once_in_order(backbones, model):
    config = StudyConfig(model=model, strategy="block").validate()
    layer_names = [c.layers[0] for c in make_candidates(StudyConfig(model=model, strategy="layer").validate(), backbones[model])]
    grouped = [name for c in make_candidates(config, backbones[model]) for name in c.layers]
    assert grouped == layer_names


def test_vgg16_blocks_are_its_five_conv_blocks(backbones):
    groups = block_groups(layer_summary(backbones["vgg16"], ("MaxPooling2D",)))
    assert [g[0].split("_")[0] for g in groups] == [f"block{i}" for i in range(1, 6)]
    assert [len(g) for g in groups] == [2, 2, 3, 3, 3]


def test_the_registry_makes_every_strategy_the_configuration_offers():
    assert tuple(STRATEGIES) == STRATEGY_NAMES


def test_delimiters_are_configurable(backbones):
    config = StudyConfig(model="mobilenet_v2", strategy="block", delimiters=("ReLU",)).validate()
    assert len(make_candidates(config, backbones["mobilenet_v2"])) > 11


def test_unknown_delimiter_is_refused(backbones):
    config = StudyConfig(model="vgg16", strategy="block", delimiters=("NotALayer",)).validate()
    with pytest.raises(StudyError, match="NotALayer"):
        make_candidates(config, backbones["vgg16"])


def test_windows_slide_by_one():
    assert windows(list("abcde"), 3) == [list("abc"), list("bcd"), list("cde")]
    with pytest.raises(StudyError, match="--window-size 3 is more than the model's 2 weighted layers"):
        windows(list("ab"), 3)  # once one silent window of every layer (issue: --window-size 1000)


def test_head_full_and_random(backbones):
    vgg = backbones["vgg16"]
    (head,) = make_candidates(StudyConfig(model="vgg16", strategy="head").validate(), vgg)
    (full,) = make_candidates(StudyConfig(model="vgg16", strategy="full").validate(), vgg)
    assert head.layers == () and len(full.layers) == 13
    config = StudyConfig(model="vgg16", strategy="random", random_k=3, random_draws=4, seed=1).validate()
    first, again = make_candidates(config, vgg), make_candidates(config, vgg)
    assert first == again and len(first) == 4
    assert all(len(set(c.layers)) == 3 for c in first)


def test_saved_keras_model_is_enumerated_the_same_way(tmp_path, backbones):
    path = tmp_path / "custom.keras"
    backbones["vgg16"].save(path)
    config = StudyConfig(model=str(path), strategy="block", image_size=32, weights="none").validate()
    candidates = make_candidates(config, build_backbone(config))
    assert len(candidates) == 5 and candidates[0].layers == ("block1_conv1", "block1_conv2")
