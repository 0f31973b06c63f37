import warnings

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


def test_images_that_cannot_fit_in_memory_are_refused_before_reading(tmp_path, monkeypatch):
    """The data set's bytes (uint8 and float32 copies) against the machine's memory, before any image is read."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(4):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name / f"{i}.png")
    monkeypatch.setattr("study.runtime._memory.memory_bytes", lambda: 1_000_000)  # 1 MB of memory
    assert load_image_folder(str(tmp_path), 32)[0].shape == (8, 32, 32, 3)  # 8 * 32 * 32 * 3 * 5 bytes: 123 KB
    with pytest.raises(StudyError, match=r"--data-dir .*: 8 images at --image-size 256 need about 7.5 MiB of memory"):
        load_image_folder(str(tmp_path), 256)
    with pytest.raises(StudyError, match="--synthetic-size 250: 250 images at --image-size 224"):
        StudyConfig(dataset="synthetic").validate()


def _png16(path, pixels):
    """A 16-bit PNG written byte by byte (PIL writes 16-bit grayscale only): (H, W) gray or (H, W, 3) RGB."""
    import struct
    import zlib

    height, width = pixels.shape[:2]
    colour = 2 if pixels.ndim == 3 else 0

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels.reshape(height, -1))
    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def _gradient(channels):
    """An 8-bit picture of 32x32 px that uses the whole range: a gradient, per channel in its own direction."""
    ramp = np.linspace(0, 255, 32).round().astype(np.uint8)
    planes = [np.tile(ramp, (32, 1)), np.tile(ramp[:, None], (1, 32)), np.tile(ramp[::-1], (32, 1))]
    return planes[0] if channels == 1 else np.stack(planes, axis=-1)


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_images_are_read_as_their_8_bit_version(tmp_path, channels):
    picture = _gradient(channels)
    for name in ("a", "b"):  # two classes, each the same picture: 8-bit in one folder, 16-bit in the other
        (tmp_path / "eight" / name).mkdir(parents=True)
        (tmp_path / "sixteen" / name).mkdir(parents=True)
        Image.fromarray(picture).save(tmp_path / "eight" / name / "p.png")
        _png16(tmp_path / "sixteen" / name / "p.png", picture.astype(np.uint16) * 257)  # 8-bit v is 16-bit 257 v
    if channels == 1:
        assert Image.open(tmp_path / "sixteen" / "a" / "p.png").mode.startswith("I")  # PIL's 16-bit gray mode
    eight, _, _ = load_image_folder(str(tmp_path / "eight"), 32)
    sixteen, _, _ = load_image_folder(str(tmp_path / "sixteen"), 32)
    assert sixteen.dtype == np.uint8 and sixteen.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(sixteen, eight)
    assert (sixteen == 255).mean() < 0.1  # not clipped to white (it was 97% white)


@pytest.mark.parametrize("mode, expected", [
    ("I", [[128, 128, 128]]),  # 32-bit integer: a 16-bit range (older PIL opens 16-bit PNGs so)
    ("F", [[255, 255, 255]]),  # float: 0..1, clipped
    ("LA", [[128, 128, 128]]),  # alpha dropped
    ("CMYK", [[0, 0, 0]]),
])
def test_every_image_mode_is_read_as_rgb(mode, expected):
    from study.inputs import rgb_pixels

    value = {"I": 32896, "F": 1.5, "LA": (128, 0), "CMYK": (0, 0, 0, 255)}[mode]
    assert rgb_pixels(Image.new(mode, (1, 1), value)).tolist() == [expected]


def test_a_palette_with_transparency_is_read_without_a_warning(tmp_path):
    image = Image.new("P", (2, 2))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.save(tmp_path / "p.png", transparency=b"\x00\xff")  # index 0 transparent, given as bytes
    from study.inputs import rgb_pixels

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Image.open(tmp_path / "p.png") as opened:
            assert rgb_pixels(opened)[0, 0].tolist() == [255, 0, 0]
