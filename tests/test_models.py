"""Bring your own model: every reasonable shape of saved model works, the rest gets a one-line error.

Every model here is tiny (random weights, 32 px) and saved as a .keras file first, so loading is tested too.
"""

import dataclasses
import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest

import study.inputs as models
from study.candidates import Candidate, all_layers, make_candidates, weighted_layers
from study.config import StudyConfig
from study.final import save_standalone, saved_metadata, standalone_model
from study.inputs import BACKBONES, block_pattern, build_backbone, input_map, preprocessor
from study.run import main
from study.runtime import StudyError
from study.storage import CANDIDATES, FINAL, study_records
from study.training import PrefixCache, build_model, fine_tune

SIZE = 32


def _convs(x, *names, filters=4):
    for name in names:
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
    return x


def _flexible():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255, name="scale")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(_convs(x, "c1", "c2"))
    return keras.Model(inputs, _convs(x, "c3"), name="flexible")


def _one_element(kind):
    inputs = keras.Input((SIZE, SIZE, 3))
    features = _convs(inputs, "c1", "c2")
    return keras.Model(inputs, [features] if kind == "list" else {"features": features}, name=kind)


def _nested():
    """Keras's transfer-learning guide: a base model as one layer, scaling before it, a top after it.

    The outer model also has a layer named like one of the base's (conv1), so names must be made unique.
    """
    base_in = keras.Input((None, None, 3))
    x = keras.layers.MaxPooling2D(name="pool")(_convs(base_in, "conv1", "conv2"))
    base = keras.Model(base_in, _convs(x, "conv3"), name="base")
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inputs)
    x = _convs(base(x, training=False), "conv1", filters=6)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.2, name="drop")(x)
    return keras.Model(inputs, keras.layers.Dense(5, activation="softmax", name="top")(x), name="guide")


def _sequential():
    inner = keras.Sequential([keras.layers.Conv2D(4, 3, name="s3"), keras.layers.Conv2D(4, 3, name="s4")], name="inner")
    return keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3, name="s1"), keras.layers.Conv2D(4, 3, name="s2"), inner],
        name="seq",
    )


def _normalized():
    inputs = keras.Input((SIZE, SIZE, 3))
    norm = keras.layers.Normalization(mean=[120.0, 115.0, 100.0], variance=[3600.0, 3500.0, 3400.0], name="norm")
    return keras.Model(inputs, _convs(norm(inputs), "c1", "c2"), name="normalized")


def _grayscale():
    inputs = keras.Input((SIZE, SIZE, 1))
    return keras.Model(inputs, _convs(inputs, "g1", "g2"), name="gray")


SHAPES = {
    "flexible": _flexible, "list": lambda: _one_element("list"), "dict": lambda: _one_element("dict"),
    "nested": _nested, "sequential": _sequential, "normalized": _normalized, "grayscale": _grayscale,
}
# name -> (weighted layers of the normalised backbone, scales inside, input channels)
EXPECTED = {
    "flexible": (["c1", "c2", "c3"], True, 3),
    "list": (["c1", "c2"], False, 3),
    "dict": (["c1", "c2"], False, 3),
    "nested": (["base.conv1", "conv2", "conv3", "conv1"], True, 3),
    "sequential": (["s1", "s2", "s3", "s4"], False, 3),
    "normalized": (["c1", "c2"], True, 3),
    "grayscale": (["g1", "g2"], False, 1),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    paths = {}
    for name, make in SHAPES.items():
        paths[name] = str(folder / f"{name}.keras")
        make().save(paths[name])
    return paths


def _config(path, **extra):
    return StudyConfig(model=path, weights="none", image_size=SIZE, **extra).validate()


def _error(call) -> str:
    with pytest.raises(StudyError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_loads_as_one_flat_fixed_size_backbone(saved, shape):
    backbone = build_backbone(_config(saved[shape]))
    names, inside, channels = EXPECTED[shape]
    assert len(backbone.inputs) == 1 and backbone.input_shape == (None, SIZE, SIZE, channels)
    assert len(backbone.outputs) == 1 and len(backbone.output_shape) == 4
    assert not any(isinstance(layer, keras.Model) for layer in backbone.layers)  # nested ones opened up
    assert weighted_layers(backbone) == names
    assert models.scales_inside(backbone) is inside and models.input_channels(backbone) == channels
    model = build_model(backbone, 3)
    images = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    probabilities = np.asarray(model(preprocessor(_config(saved[shape]))(images)))
    assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_nested_model_shares_the_loaded_weights_and_drops_its_top(saved):
    loaded = keras.models.load_model(saved["nested"])
    backbone = models.normalise(loaded, SIZE)
    base = loaded.get_layer("base")
    assert backbone.get_layer("base.conv1") is base.get_layer("base.conv1")  # the same layer, renamed
    assert backbone.output_shape == (None, SIZE // 2, SIZE // 2, 6)  # cut after the outer conv1
    assert "top" not in [layer.name for layer in backbone.layers]


def test_features_layer_picks_where_the_head_goes(saved):
    backbone = models.load_model_file(saved["nested"], SIZE, features_layer="conv2")
    assert weighted_layers(backbone) == ["base.conv1", "conv2"] and backbone.output_shape == (None, SIZE, SIZE, 4)
    pooled = models.load_model_file(saved["nested"], SIZE, features_layer="gap")  # pooled features: allowed
    assert pooled.output_shape == (None, 6)
    base = models.load_model_file(saved["nested"], SIZE, features_layer="base")  # a nested model's output
    assert weighted_layers(base) == ["base.conv1", "conv2", "conv3"]
    message = _error(lambda: models.load_model_file(saved["nested"], SIZE, features_layer="nope"))
    assert "no layer of that name" in message and "conv1" in message


@dataclasses.dataclass(frozen=True)
class _WithFeaturesLayer(StudyConfig):  # until StudyConfig has the field (`--features-layer`)
    features_layer: str | None = None


def test_builtin_backbone_can_be_cut():
    vgg = build_backbone(_WithFeaturesLayer(model="vgg16", weights="none", image_size=SIZE, features_layer="block3_pool"))
    assert vgg.output_shape == (None, 4, 4, 256) and len(weighted_layers(vgg)) == 7


def test_scaling_rule_for_model_files(saved):
    assert input_map(_config(saved["flexible"])).description == "raw pixels (0..255)"  # Rescaling inside
    assert input_map(_config(saved["normalized"])).description == "raw pixels (0..255)"  # Normalization inside
    assert input_map(_config(saved["list"])).description == "pixels / 255 (0..1)"  # nothing inside
    assert input_map(_config(saved["flexible"], input_scaling="unit")).description == "pixels / 255 (0..1)"
    images = np.full((1, 2, 2, 3), 255, np.uint8)
    assert float(preprocessor(_config(saved["flexible"]))(images).max()) == 255.0
    assert float(preprocessor(_config(saved["list"]))(images).max()) == 1.0
    gray = preprocessor(_config(saved["grayscale"]))(np.full((1, 2, 2, 3), [255, 0, 0], np.uint8))
    assert gray.shape == (1, 2, 2, 1) and np.allclose(gray, 0.2989)


def _two_inputs():
    a, b = keras.Input((SIZE, SIZE, 3)), keras.Input((SIZE, SIZE, 3))
    return keras.Model([a, b], keras.layers.Conv2D(4, 3)(keras.layers.Add()([a, b])))


def _vector_input():
    inputs = keras.Input((10,))
    return keras.Model(inputs, keras.layers.Dense(4)(inputs))


def _no_weights():
    inputs = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inputs, keras.layers.MaxPooling2D()(inputs))


def _fixed_64():
    inputs = keras.Input((64, 64, 3))
    return keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))


def _two_outputs():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, name="a")(inputs)
    return keras.Model(inputs, [x, keras.layers.Conv2D(4, 3, name="b")(x)])


def _lambda():
    inputs = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inputs, keras.layers.Conv2D(4, 3)(keras.layers.Lambda(lambda t: t / 255.0)(inputs)))


def _custom():
    class Doubling(keras.layers.Layer):  # not registered, and not importable
        def call(self, x):
            return x * 2

    Doubling.__module__ = "nowhere_to_import"
    inputs = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inputs, keras.layers.Conv2D(4, 3)(Doubling()(inputs)))


def _merged_top():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    pooled = [keras.layers.GlobalAveragePooling2D()(x), keras.layers.GlobalMaxPooling2D()(x)]
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Concatenate()(pooled)))


def _input(shape):
    def make():
        inputs = keras.Input(shape)
        return keras.Model(inputs, keras.layers.Dense(4)(inputs))

    return make


INVALID = {
    "not square": (_input((SIZE, 48, 3)), "square or flexible input"),
    "channels first": (_input((3, SIZE, SIZE)), "channels-first"),
    "two inputs": (_two_inputs, "has 2 inputs"),
    "vector input": (_vector_input, "not images"),
    "no weighted layer": (_no_weights, "no weighted layer"),
    "other fixed size": (_fixed_64, "pass --image-size 64"),
    "two outputs": (_two_outputs, "--features-layer"),
    "lambda": (_lambda, "Lambda layer with Python code"),
    "unregistered custom layer": (_custom, "not registered"),
    "top that is not a chain": (_merged_top, "--features-layer"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_models_get_one_line_errors(tmp_path, case):
    make, hint = INVALID[case]
    path = tmp_path / "model.keras"
    make().save(path)
    message = _error(lambda: build_backbone(_config(str(path))))
    assert hint in message and str(path) in message
    if case == "two inputs":
        assert "--image-size" not in message


def test_files_that_are_not_keras_models(tmp_path):
    text = tmp_path / "x.keras"
    text.write_text("not a model")
    message = _error(lambda: build_backbone(_config(str(text))))
    assert "not a Keras model file" in message and "not found" not in message.lower()
    (tmp_path / "w.keras").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert "HDF5" in _error(lambda: build_backbone(_config(str(tmp_path / "w.keras"))))
    with zipfile.ZipFile(tmp_path / "z.keras", "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert "no config.json" in _error(lambda: build_backbone(_config(str(tmp_path / "z.keras"))))


def test_backbone_table_script(capsys):
    spec = importlib.util.spec_from_file_location("backbone_table", Path(__file__).parents[1] / "tools" / "backbone_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    assert table.main(["vgg16"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "| vgg16 | 13 | 5 | 11 |"


def test_fine_tune_a_nested_layer_with_and_without_the_prefix_cache(saved):
    config = _config(saved["nested"], epochs=1, batch_size=4, learning_rate=1e-2)
    images = np.random.default_rng(1).integers(0, 256, (8, SIZE, SIZE, 3), dtype=np.uint8)
    data = (preprocessor(config)(images), np.arange(8) % 3)
    candidate = Candidate("nested", ("conv2",))
    plain = fine_tune(config, lambda: build_backbone(config), candidate, data, 3, validation=data)
    cached = fine_tune(config, lambda: build_backbone(config), candidate, data, 3, validation=data,
                       cache=PrefixCache(2**26))
    assert cached.cache.startswith("on") and plain.cache == "off"
    np.testing.assert_allclose(cached.history["loss"], plain.history["loss"], rtol=1e-4)
    assert cached.trainable_params == plain.trainable_params


@pytest.mark.parametrize("model, blocks", [("efficientnet_b0", 18), ("densenet121", 5), ("convnext_tiny", 22)])
def test_block_patterns_give_the_architectures_blocks(model, blocks):
    backbone = build_backbone(StudyConfig(model=model, weights="none", image_size=SIZE))
    assert not any(isinstance(layer, keras.Model) for layer in backbone.layers)  # ConvNeXt's Sequentials opened
    config = StudyConfig(model=model, strategy="block")
    groups = [list(c.layers) for c in make_candidates(config, backbone)]
    assert block_pattern(config) is not None
    assert len(groups) == blocks
    assert all(len(group) > 1 for group in groups[1:-1]) or model == "convnext_tiny"
    assert len(make_candidates(StudyConfig(model=model, strategy="layer"), backbone)) == sum(map(len, groups))


PREPROCESSING = {  # backbone -> keras.applications preprocess mode
    "vgg16": "caffe", "mobilenet_v2": "tf", "densenet121": "torch", "efficientnet_b0": "pass-through",
}


@pytest.mark.parametrize("model", list(PREPROCESSING))
def test_preprocessing_layer_equals_preprocess_input(model):
    mapping = input_map(StudyConfig(model=model))
    images = np.random.default_rng(2).integers(0, 256, (2, 5, 7, 3)).astype(np.float32)
    expected = BACKBONES[model].preprocess_input(images.copy())
    np.testing.assert_allclose(np.asarray(mapping.layer()(images)), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(preprocessor(StudyConfig(model=model))(images.astype(np.uint8)), expected)


def test_every_backbone_has_an_affine_preprocessing():
    for model in BACKBONES:
        assert input_map(StudyConfig(model=model)).matrix.shape == (3, 3)


FRESH_PROCESS = """
import json, sys, warnings
import numpy as np
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import keras
    results = {}
    for name in sys.argv[2:]:
        model = keras.models.load_model(f"{sys.argv[1]}/{name}.keras")
        images = np.load(f"{sys.argv[1]}/images.npy")
        results[name] = model.predict(images, verbose=0).tolist()
        results[name + "_big"] = model.predict(np.repeat(np.repeat(images, 2, 1), 2, 2), verbose=0).tolist()
problems = [str(w.message) for w in caught if "keras" in str(w.filename) or "optimizer" in str(w.message)]
print(json.dumps({"probabilities": results, "warnings": problems, "study": "study" in sys.modules}))
"""


def test_standalone_model_loads_alone_and_predicts_from_raw_pixels(saved, tmp_path):
    images = np.random.default_rng(3).integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    expected = {}
    for shape in ("nested", "grayscale", "list"):  # raw pixels, luminance / 255, pixels / 255
        config = _config(saved[shape], epochs=1)
        if shape == "nested":  # trained: the fine-tune model was compiled with FusedAdam
            data = (preprocessor(config)(images), np.arange(4) % 3)
            trained = fine_tune(config, lambda: build_backbone(config), Candidate("c", ("conv3",)), data, 3).model
        else:
            trained = build_model(build_backbone(config), 3)
        expected[shape] = trained.predict(preprocessor(config)(images), verbose=0)
        standalone = standalone_model(config, trained)
        assert not any(type(layer).__name__ == "Lambda" for layer in all_layers(standalone))
        save_standalone(standalone, tmp_path / f"{shape}.keras", {"classes": ["a", "b", "c"], "image_size": SIZE})
        assert saved_metadata(tmp_path / f"{shape}.keras")["classes"] == ["a", "b", "c"]
        assert json.loads((tmp_path / f"{shape}.json").read_text())["classes"] == ["a", "b", "c"]
    run = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(tmp_path), *expected], capture_output=True, text=True, timeout=120,
        cwd=tmp_path,  # not the repository: `study` cannot be imported by accident
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["warnings"] == [] and not found["study"]
    assert "optimizer" not in run.stderr.lower()
    for shape, probabilities in expected.items():
        np.testing.assert_allclose(found["probabilities"][shape], probabilities, rtol=1e-4, atol=1e-5)
        assert np.allclose(np.sum(found["probabilities"][shape + "_big"], axis=1), 1, atol=1e-5)  # any size


def _cli(model: str, tmp_path) -> list[str]:
    return ["--model", model, "--dataset", "synthetic", "--synthetic-size", "60", "--synthetic-classes", "3",
            "--image-size", str(SIZE), "--epochs", "2", "--search-repeats", "1", "--strategy", "block",
            "--sampler", "grid", "--storage", f"sqlite:///{tmp_path}/s.db", "--artifact-dir", str(tmp_path / "artifacts")]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_runs_a_grid_study_and_its_final_stage_through_the_cli(saved, shape, tmp_path):
    assert main(_cli(saved[shape], tmp_path)) == 0
    study = optuna.load_study(study_name=f"synthetic-{shape}-block", storage=f"sqlite:///{tmp_path}/s.db")
    candidates = study_records(study)[CANDIDATES]
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == len(candidates) >= 1
    assert [layer for c in candidates for layer in c["layers"]] == EXPECTED[shape][0]  # every weighted layer
    assert FINAL in study.user_attrs
    assert (tmp_path / "models" / f"synthetic-{shape}-block.keras").is_file()


@pytest.mark.parametrize("case", [*INVALID, "text file named .keras"])
def test_every_invalid_model_exits_2_with_one_line_and_no_storage(tmp_path, case, capsys):
    path = tmp_path / "model.keras"
    if case in INVALID:
        INVALID[case][0]().save(path)
    else:
        path.write_text("not a model")
    assert main(_cli(str(path), tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "artifacts").exists()
