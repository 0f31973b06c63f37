"""Images in, stratified splits out: tf_flowers (tfds), a folder of class sub-folders, or synthetic.

Splits follow docs/design.md (the contracts): test is 30% of every class, the pool the other 70%; search-train (10%)
and search-val (20%) are drawn from the pool. All of it is deterministic from the seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np

from study.config import StudyConfig
from study.inputs._synthetic import synthetic_images
from study.runtime import StudyError, causes, first_line, images_fit, network_failure

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
SPLIT_NAMES = ("search_train", "search_val", "pool", "test")
# The archive tensorflow-datasets' tf_flowers builder downloads (about 218 MB): extracted, a --data-dir.
FLOWER_PHOTOS_URL = "http://download.tensorflow.org/example_images/flower_photos.tgz"


@dataclasses.dataclass
class Splits:
    """All images once (uint8) and the index arrays of each split into them.

    Example:
        >>> splits = load_splits(StudyConfig(dataset="synthetic", image_size=32).validate())
        >>> images, labels = splits.arrays("search_train")
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    indices: dict[str, np.ndarray]
    seed: int = 0  # the seed of the split; the repeats' draws derive from it

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and integer labels of one split."""
        index = self.indices[split]
        return self.images[index], self.labels[index]

    def search_draw(self, repeat: int) -> tuple[np.ndarray, np.ndarray]:
        """Search-train and search-val indices of repeat `repeat` (`--search-repeats`).

        Repeat 0 is the study's own search-train and search-val split. Every later repeat draws
        both anew from the 70% pool, per class and of the same sizes, from (seed, repeat) alone,
        so every candidate sees the same images in the same repeat (paired comparisons) and the
        test split is never touched.

        Example:
            >>> splits = Splits(np.zeros((100, 1, 1, 3), np.uint8), np.repeat([0, 1], 50), ["a", "b"],
            ...                 stratified_split(np.repeat([0, 1], 50), seed=0))
            >>> train, val = splits.search_draw(1)
            >>> len(train), len(val), bool(np.isin(train, splits.indices["pool"]).all())
            (10, 20, True)
        """
        if repeat == 0:
            return self.indices["search_train"], self.indices["search_val"]
        rng = np.random.default_rng([self.seed, repeat])
        pool, train, val = self.indices["pool"], [], []
        for label in range(self.num_classes):
            members = pool[self.labels[pool] == label]
            n_train = int(np.sum(self.labels[self.indices["search_train"]] == label))
            n_val = int(np.sum(self.labels[self.indices["search_val"]] == label))
            members = rng.permutation(members)
            train.append(members[:n_train])
            val.append(members[n_train : n_train + n_val])
        return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class in every split, as recorded in the study."""
        return {
            split: {
                name: int(np.sum(self.labels[index] == k))
                for k, name in enumerate(self.class_names)
            }
            for split, index in self.indices.items()
        }

    def fingerprint(self) -> str:
        """A hash of labels and split membership: it changes when the data or the split does."""
        digest = hashlib.sha256(json.dumps(self.class_names).encode())
        digest.update(self.labels.astype(np.int64).tobytes())
        for split in SPLIT_NAMES:
            digest.update(np.sort(self.indices[split]).astype(np.int64).tobytes())
        return digest.hexdigest()[:16]


def load_splits(config: StudyConfig) -> Splits:
    """Load the images the configuration names and split them."""
    images, labels, class_names = load_images(config)
    indices = stratified_split(
        labels,
        seed=config.seed,
        test=config.test_fraction,
        search_train=config.search_train_fraction,
        search_val=config.search_val_fraction,
        class_names=class_names,
    )
    return Splits(images, labels, class_names, indices, seed=config.seed)


def load_images(config: StudyConfig) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (N, size, size, 3) uint8, integer labels and class names from the configured source."""
    if config.data_dir:
        return load_image_folder(config.data_dir, config.image_size)
    if config.dataset == "synthetic":
        return synthetic_images(
            config.synthetic_size, config.synthetic_classes, config.image_size, seed=config.seed
        )
    name = config.dataset.removeprefix("tfds:")
    return load_tfds(name, config.image_size)


def load_image_folder(data_dir: str, image_size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a folder with one sub-folder of images per class (e.g. an extracted flower_photos).

    Example:
        >>> images, labels, names = load_image_folder("flower_photos", 224)  # doctest: +SKIP
    """
    root = Path(data_dir)
    if root.exists() and not root.is_dir():
        raise StudyError(f"--data-dir {data_dir}: is a file, not a folder; give a folder of class sub-folders")
    if not root.is_dir():
        raise StudyError(f"--data-dir {data_dir}: no such folder; give a folder of class sub-folders")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {
        c.name: sorted(f for f in c.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        for c in classes
    }
    files = {name: paths for name, paths in files.items() if paths}
    if not files:
        raise StudyError(
            f"--data-dir {data_dir} holds no images; put JPEG/PNG files in one sub-folder per class"
        )
    if len(files) < 2:
        raise StudyError(
            f"--data-dir {data_dir} has only one class ({next(iter(files))}); "
            "a classifier needs at least two class sub-folders"
        )
    class_names = list(files)
    total = sum(len(paths) for paths in files.values())
    images_fit(total, image_size, f"--data-dir {data_dir}")  # before the first image is read
    images = np.empty((total, image_size, image_size, 3), dtype=np.uint8)
    labels = np.empty(total, dtype=np.int64)
    position = 0
    for label, name in enumerate(class_names):
        for path in files[name]:
            images[position] = _read_image(path, image_size)
            labels[position] = label
            position += 1
    return images, labels, class_names


def load_tfds(name: str, image_size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All images of a tensorflow-datasets image classification set (downloaded on first use).

    The first use downloads and prepares the set in tensorflow-datasets' data dir
    (~/tensorflow_datasets, or $TFDS_DATA_DIR); later uses read it from there. A failure says
    what failed (`tfds_problem`).
    """
    try:
        import tensorflow_datasets as tfds

        dataset, info = tfds.load(name, split="all", as_supervised=True, with_info=True)
    except Exception as error:  # tfds raises many types: no network, unknown name, bad cache, missing package
        raise StudyError(tfds_problem(name, error)) from None
    class_names = list(info.features["label"].names)
    images, labels = [], []
    for image, label in dataset.as_numpy_iterator():
        if image.shape[-1] == 1:  # grayscale sets such as mnist
            image = np.repeat(image, 3, axis=-1)
        images.append(_resize(image, image_size))
        labels.append(int(label))
    return np.stack(images), np.asarray(labels, dtype=np.int64), class_names


def tfds_problem(name: str, error: BaseException) -> str:
    """The one-line message for tensorflow-datasets failing to load `name`: what failed and what to do.

    A missing Python package, an unknown name, no network (with the offline route), a download
    that does not match its checksum, or else tfds's own first line.

    Example:
        >>> tfds_problem("tf_flowers", ModuleNotFoundError("No module named 'x'", name="x"))
        "tensorflow-datasets needs the Python package x to load 'tf_flowers': pip install x"
    """
    missing = next((e for e in causes(error) if isinstance(e, ImportError) and e.name), None)
    if missing is not None:
        package = missing.name.split(".")[0]
        return f"tensorflow-datasets needs the Python package {package} to load {name!r}: pip install {package}"
    from tensorflow_datasets.core import DatasetNotFoundError, constants
    from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

    if any(isinstance(e, DatasetNotFoundError) for e in causes(error)):
        return f"tensorflow-datasets has no data set {name!r}{_close_names(name)}; see https://www.tensorflow.org/datasets/catalog"
    reason = first_line(error)
    if network_failure(error):
        reason = first_line(network_failure(error))
        offline = (
            f"download {FLOWER_PHOTOS_URL} elsewhere, extract it and pass --data-dir flower_photos"
            if name == "tf_flowers" else "pass an extracted copy as --data-dir DIR (one sub-folder of images per class)"
        )
        return (
            f"could not download {name!r} through tensorflow-datasets ({reason}): no network, or the host is "
            f"unreachable from here; {offline}, or copy a prepared {Path(constants.DATA_DIR) / name} from another machine"
        )
    if any(isinstance(e, NonMatchingChecksumError) for e in causes(error)):
        url = re.match(r"Artifact (\S+), downloaded", str(error))  # tfds's message names the URL
        source = url.group(1) if url else "its source"
        return (
            f"could not prepare {name!r}: the file downloaded from {source} does not have the size and sha256 "
            "tensorflow-datasets expects (a cut-off or changed download); run again, or pass an extracted copy as --data-dir DIR"
        )
    return (
        f"could not load {name!r} through tensorflow-datasets ({reason}); without internet, "
        "pass an extracted copy as --data-dir DIR (one sub-folder of images per class)"
    )


def _close_names(name: str) -> str:
    """' (did you mean a, b?)' for the tfds names closest to `name`, or ''."""
    import difflib

    import tensorflow_datasets as tfds

    close = difflib.get_close_matches(name, tfds.list_builders(with_community_datasets=False), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def stratified_split(
    labels: np.ndarray,
    seed: int,
    test: float = 0.3,
    search_train: float = 0.1,
    search_val: float = 0.2,
    class_names: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Per-class split: `test` of each class, the rest is the pool; search-train and search-val
    come from the pool. Fractions are of the whole class; each split gets at least one image.

    Example:
        >>> parts = stratified_split(np.repeat([0, 1], 50), seed=0)
        >>> [len(parts[k]) for k in ("test", "pool", "search_train", "search_val")]
        [30, 70, 10, 20]
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_NAMES}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_test, n_train, n_val = (max(1, round(f * len(members))) for f in (test, search_train, search_val))
        if n_test + n_train + n_val > len(members):
            name = class_names[label] if class_names else str(label)
            raise StudyError(
                f"class {name!r} has {len(members)} images, too few for a test, a search-train "
                f"and a search-val split; give it at least {n_test + n_train + n_val} images"
            )
        parts["test"].append(members[:n_test])
        parts["pool"].append(members[n_test:])
        parts["search_train"].append(members[n_test : n_test + n_train])
        parts["search_val"].append(members[n_test + n_train : n_test + n_train + n_val])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def _read_image(path: Path, image_size: int) -> np.ndarray:
    """One image file as RGB at `image_size`; a file that cannot be read safely is refused by name.

    Huge images are refused before they are decoded: over PIL's `MAX_IMAGE_PIXELS` (about 89
    million pixels) a small file can decode to gigabytes (a "decompression bomb").
    """
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # over the limit: refuse, not warn
            with Image.open(path) as image:
                return _resize(rgb_pixels(image), image_size)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
        raise StudyError(
            f"cannot read image {path}: {size}, over the safe limit of {Image.MAX_IMAGE_PIXELS:,} "
            "(a decompression bomb?); remove the file or shrink it"
        ) from None
    except Exception as error:  # PIL raises many types for damaged or hostile files (OSError, SyntaxError, ...)
        raise StudyError(
            f"cannot read image {path} ({type(error).__name__}); remove or replace the file"
        ) from None


def rgb_pixels(image) -> np.ndarray:
    """A PIL image of any mode as 8-bit RGB pixels (H, W, 3), at its real bit depth.

    16-bit and 32-bit integer images (modes I;16*, I: 16-bit PNG and TIFF grayscale) are scaled from
    0..65535, float images (F) from 0..1, both rounded and clipped; PIL's plain conversion would clip
    them at 255 instead (a 16-bit photo turns almost all white). 16-bit RGB(A) PNGs arrive as RGB(A)
    already (PIL keeps their high byte). Alpha is dropped, as keras.utils.load_img does (so the
    search sees what a user's own loading gives the saved model); palettes with transparency go
    through RGBA first (PIL warns otherwise); CMYK, YCbCr, LAB, HSV and 1-bit are converted by PIL.

    Example:
        >>> from PIL import Image
        >>> rgb_pixels(Image.fromarray(np.full((1, 2), 65535, np.uint16))).tolist()
        [[[255, 255, 255], [255, 255, 255]]]
        >>> rgb_pixels(Image.fromarray(np.full((1, 1), 0.5, np.float32))).tolist()
        [[[128, 128, 128]]]
    """
    if image.mode.startswith("I") or image.mode == "F":
        full_scale = 1.0 if image.mode == "F" else 65535.0
        values = np.asarray(image, dtype=np.float64) * (255.0 / full_scale)
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"))


def _resize(image: np.ndarray, image_size: int) -> np.ndarray:
    from PIL import Image

    if image.shape[:2] == (image_size, image_size):
        return image
    resized = Image.fromarray(image).resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(resized)
