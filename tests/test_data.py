import numpy as np
import pytest
from PIL import Image

from study.config import StudyConfig
from study.inputs import load_image_folder, load_splits, stratified_split, synthetic_images
from study.runtime import StudyError


def test_stratified_split_sizes_disjoint_and_per_class():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    parts = stratified_split(labels, seed=3)
    test, pool, train, val = (parts[k] for k in ("test", "pool", "search_train", "search_val"))
    assert not set(test) & set(pool)
    assert set(test) | set(pool) == set(range(len(labels)))
    assert set(train) <= set(pool) and set(val) <= set(pool)
    assert not set(train) & set(val)
    for label, size in enumerate([100, 50, 30, 20]):
        assert np.sum(labels[test] == label) == round(0.3 * size)
        assert np.sum(labels[train] == label) == round(0.1 * size)
        assert np.sum(labels[val] == label) == round(0.2 * size)


def test_split_is_deterministic_from_seed():
    labels = np.repeat(np.arange(3), 40)
    a, b, c = (stratified_split(labels, seed=s) for s in (1, 1, 2))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])


def test_too_small_class_is_refused():
    with pytest.raises(StudyError, match="too few"):
        stratified_split(np.array([0] * 20 + [1] * 2), seed=0, class_names=["a", "b"])


def test_synthetic_is_deterministic_and_balanced():
    x1, y1, names = synthetic_images(50, 5, 32, seed=7)
    x2, y2, _ = synthetic_images(50, 5, 32, seed=7)
    x3, _, _ = synthetic_images(50, 5, 32, seed=8)
    assert x1.shape == (50, 32, 32, 3) and x1.dtype == np.uint8
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert np.bincount(y1).tolist() == [10] * 5 and len(names) == 5


def test_synthetic_classes_are_separable_by_a_simple_classifier():
    images, labels, _ = synthetic_images(300, 5, 32, seed=0)
    features = images.reshape(len(images), -1).astype(np.float32) / 255
    train, test = slice(0, 200), slice(200, 300)
    centroids = np.stack([features[train][labels[train] == k].mean(0) for k in range(5)])
    predicted = np.argmin(((features[test, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert np.mean(predicted == labels[test]) > 0.6  # chance is 0.2


def test_load_splits_records_counts_and_fingerprint():
    config = StudyConfig(dataset="synthetic", synthetic_size=100, image_size=32).validate()
    splits = load_splits(config)
    counts = splits.counts()
    assert sum(counts["test"].values()) == 30 and sum(counts["search_train"].values()) == 10
    assert splits.fingerprint() == load_splits(config).fingerprint()


def _write_folder(root, classes, per_class=10, size=40):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size, size + 5, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")


def test_image_folder_loads_and_resizes(tmp_path):
    _write_folder(tmp_path, ["daisy", "roses"])
    images, labels, names = load_image_folder(str(tmp_path), 32)
    assert images.shape == (20, 32, 32, 3) and names == ["daisy", "roses"]
    assert np.bincount(labels).tolist() == [10, 10]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: None, "no such folder"),
        (lambda root: root.mkdir(), "holds no images"),
        (lambda root: _write_folder(root, ["only"]), "only one class"),
    ],
)
def test_image_folder_errors(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(StudyError, match=message):
        load_image_folder(str(root), 32)


def test_unreadable_image_is_named(tmp_path):
    _write_folder(tmp_path, ["a", "b"])
    (tmp_path / "a" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(StudyError, match="broken.jpg"):
        load_image_folder(str(tmp_path), 32)
