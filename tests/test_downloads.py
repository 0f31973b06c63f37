"""The first two downloads of the default command, run for real against a server on 127.0.0.1.

tensorflow-datasets' own `tf_flowers` download-and-prepare path (download, checksum check, archive
iteration, TFRecord writing, reading back) and Keras's own weights download-and-cache path
(`keras.utils.get_file` inside keras.applications), each fed by an `http.server` this file starts.
Only the source URL and the cache folders are redirected; every other host is unreachable, so a
lookup anywhere else fails at once, as on a machine without network.
"""

import dataclasses
import http.server
import io
import re
import shutil
import socket
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import optuna
import pytest
from PIL import Image

from study.config import StudyConfig
from study.inputs import BACKBONES, build_backbone, load_images
from study.run import main
from study.runtime import StudyError
from study.storage import CLASSES, SPLITS, study_records

# flower_photos.tgz's layout: flower_photos/<class>/*.jpg and flower_photos/LICENSE.txt.
FLOWERS = {"daisy": 5, "dandelion": 6, "roses": 5, "sunflowers": 7, "tulips": 5}
TINY = ["--image-size", "32", "--epochs", "1", "--search-repeats", "1", "--strategy", "head", "--skip-final"]


@dataclasses.dataclass
class Served:
    url: str  # http://127.0.0.1:PORT/
    root: Path  # the folder it serves
    requests: list  # paths asked for, in order


@pytest.fixture
def server(tmp_path):
    """An http.server on 127.0.0.1 (any free port, its own thread) serving a fresh folder."""
    root = tmp_path / "served"
    root.mkdir()
    seen = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            seen.append(self.path)
            super().do_GET()

        def log_message(self, *args):  # quiet
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{httpd.server_port}/", root, seen)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def offline(monkeypatch):
    """Only 127.0.0.1 resolves: any other host name fails at once (and is listed), as without network."""
    attempts, real = [], socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in ("127.0.0.1", "localhost"):
            attempts.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: no network in this test")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)  # straight to 127.0.0.1, never through a proxy
    return attempts


@pytest.fixture
def tfds_home(tmp_path, monkeypatch):
    """tensorflow-datasets' data dir (downloads and prepared sets) in tmp; tfds read $TFDS_DATA_DIR at import."""
    from tensorflow_datasets.core import constants

    home = tmp_path / "tensorflow_datasets"
    monkeypatch.setenv("TFDS_DATA_DIR", str(home))
    monkeypatch.setattr(constants, "DATA_DIR", str(home))
    return home


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """Keras's cache ($KERAS_HOME; Keras read it at import) in tmp: weights land in its models/."""
    from keras.src.backend import config

    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(config, "_KERAS_DIR", str(home))
    return home


def flower_photos(folder: Path, seed: int = 0) -> Path:
    """A small flower_photos.tgz (FLOWERS images per class, 16 px JPEGs) in `folder`; returns its path."""
    rng = np.random.default_rng(seed)
    path = folder / "flower_photos.tgz"
    with tarfile.open(path, "w:gz") as archive:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        add("flower_photos/LICENSE.txt", b"All images in this archive are made by the test.\n")
        for name, count in FLOWERS.items():
            for k in range(count):
                buffer = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buffer, "JPEG")
                add(f"flower_photos/{name}/{k}.jpg", buffer.getvalue())
    return path


def serve_flowers(served: Served, monkeypatch, checksum_of: Path | None = None) -> str:
    """Point tfds's tf_flowers builder at a flower_photos.tgz on `served`; register its checksum.

    The builder reads its URL from its module's `_URL` and the expected size and sha256 of every URL
    from its `checksums.tsv` (`url_infos`); the served file's are registered there, computed by tfds
    itself (`checksum_of`: register another file's instead, to see the check refuse).
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import checksums

    archive = flower_photos(served.root)
    builder = tfds.builder_cls("tf_flowers")
    url = served.url + archive.name
    monkeypatch.setattr(sys.modules[builder.__module__], "_URL", url)
    registered = builder.url_infos  # the real checksums.tsv, read the real way
    assert registered and "flower_photos.tgz" in next(iter(registered))
    monkeypatch.setattr(builder, "url_infos", {**registered, url: checksums.compute_url_info(checksum_of or archive)})
    return url


def test_the_default_dataset_downloads_and_prepares_through_tensorflow_datasets(
    server, offline, tfds_home, monkeypatch, tmp_path, tiny_model
):
    serve_flowers(server, monkeypatch)
    storage = f"sqlite:///{tmp_path}/studies.db"
    # --dataset tf_flowers is the default; the tiny saved model keeps the training to seconds.
    code = main(["--model", tiny_model, "--storage", storage, "--artifact-dir", str(tmp_path / "artifacts"), *TINY])
    assert code == 0
    assert server.requests == ["/flower_photos.tgz"] and offline == []
    assert list((tfds_home / "tf_flowers").iterdir())  # prepared in the tfds data dir
    (summary,) = optuna.get_all_study_summaries(storage)
    records = study_records(optuna.load_study(study_name=summary.study_name, storage=storage))
    # tfds's own label order; every served image is in exactly one of test and pool.
    assert records[CLASSES] == ["dandelion", "daisy", "tulips", "sunflowers", "roses"]
    counts = records[SPLITS]["counts"]
    assert {name: counts["test"][name] + counts["pool"][name] for name in FLOWERS} == FLOWERS

    # A second run finds the prepared set: nothing is downloaded again.
    images, labels, names = load_images(StudyConfig(image_size=32).validate())
    assert len(images) == sum(FLOWERS.values()) and server.requests == ["/flower_photos.tgz"]


def test_a_download_that_does_not_match_its_checksum_is_refused_by_name(server, offline, tfds_home, monkeypatch):
    other = server.root / "other"
    other.mkdir()
    url = serve_flowers(server, monkeypatch, checksum_of=flower_photos(other, seed=1))
    expected = f"^could not prepare 'tf_flowers': the file downloaded from {re.escape(url)} does not have the size and sha256"
    with pytest.raises(StudyError, match=expected):
        load_images(StudyConfig(image_size=32).validate())


def test_without_network_the_default_dataset_says_so_and_how_to_go_on(offline, tfds_home, monkeypatch, capsys, tmp_path):
    from tensorflow_datasets.core.download import downloader

    # tfds retries a failed connection 10 times with growing pauses (204 s in all, measured); one try here.
    monkeypatch.setattr(downloader, "MAX_RETRIES", 0)
    storage, artifacts = tmp_path / "studies.db", tmp_path / "artifacts"
    assert main([*TINY, "--weights", "none", "--storage", f"sqlite:///{storage}", "--artifact-dir", str(artifacts)]) == 2
    assert not storage.exists() and not artifacts.exists()
    err = capsys.readouterr().err  # tfds's progress bars, then the error
    assert [line for line in err.splitlines() if line.startswith("error:")] == [err.strip().splitlines()[-1]], err
    assert "Traceback" not in err
    assert "download.tensorflow.org" in err and "no network" in err and "--data-dir flower_photos" in err
    assert str(tfds_home / "tf_flowers") in err  # where a prepared copy from another machine goes
    assert offline and set(offline) == {"download.tensorflow.org"}


def test_an_unknown_tfds_name_is_named(offline, tfds_home):
    with pytest.raises(StudyError, match="^tensorflow-datasets has no data set 'no_such_set'"):
        load_images(StudyConfig(dataset="tfds:no_such_set", image_size=32).validate())
    assert offline == []


def test_a_missing_python_package_is_named_with_its_install_command():
    from study.inputs import tfds_problem

    error = ModuleNotFoundError("No module named 'importlib_resources'", name="importlib_resources")
    assert tfds_problem("tf_flowers", error) == (
        "tensorflow-datasets needs the Python package importlib_resources to load 'tf_flowers': "
        "pip install importlib_resources"
    )


def test_an_extracted_flower_photos_folder_works_as_data_dir(tmp_path):
    with tarfile.open(flower_photos(tmp_path)) as archive:
        archive.extractall(tmp_path, filter="data")
    images, labels, names = load_images(StudyConfig(data_dir=str(tmp_path / "flower_photos"), image_size=32).validate())
    assert names == sorted(FLOWERS) and np.bincount(labels).tolist() == [FLOWERS[n] for n in names]


# ---------------------------------------------------------------------------------------------
# --weights imagenet: keras.applications' download into Keras's cache


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """`imagenet_file`, made once for the tests below (each copies it where it needs it)."""
    return imagenet_file(tmp_path_factory.mktemp("weights"))


def imagenet_file(folder: Path) -> tuple[Path, np.ndarray]:
    """The no-top weights file `MobileNetV2(weights="imagenet")` asks for at --image-size 32, in Keras's
    HDF5 weights layout, with conv kernels no initialiser gives; returns it and its first kernel."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    model = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    rng = np.random.default_rng(7)
    for layer in model.layers:
        layer.set_weights([rng.normal(0, 0.05, w.shape).astype(w.dtype) if w.ndim == 4 else w for w in layer.get_weights()])
    # Keras asks for the 224 px file for sizes it has no file of (no-top weights fit every size).
    path = folder / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path, model.get_layer("Conv1").get_weights()[0]


@pytest.fixture
def built_backbones(monkeypatch):
    """Every keras.applications MobileNetV2 the study builds, with its `weights` argument."""
    built, entry = [], BACKBONES["mobilenet_v2"]

    def recording(*args, **kwargs):
        model = entry.constructor(*args, **kwargs)
        built.append((kwargs.get("weights"), model))
        return model

    monkeypatch.setitem(BACKBONES, "mobilenet_v2", dataclasses.replace(entry, constructor=recording))
    return built


def test_imagenet_weights_download_into_the_keras_cache_and_load(
    server, offline, keras_home, built_backbones, imagenet, monkeypatch, tmp_path
):
    from keras.src.applications import mobilenet_v2

    made, kernel = imagenet
    served = server.root / made.name
    shutil.copy(made, served)
    monkeypatch.setattr(mobilenet_v2, "BASE_WEIGHT_PATH", server.url)  # Keras checks no hash for this file
    storage = f"sqlite:///{tmp_path}/studies.db"
    code = main(["--dataset", "synthetic", "--synthetic-size", "40", "--synthetic-classes", "2", "--weights", "imagenet",
                 "--storage", storage, "--artifact-dir", str(tmp_path / "artifacts"), *TINY])
    assert code == 0
    assert offline == [] and server.requests == ["/" + served.name]  # once: later builds read the cache
    assert (keras_home / "models" / served.name).read_bytes() == served.read_bytes()
    imagenet = [model for weights, model in built_backbones if weights == "imagenet"]
    assert len(imagenet) >= 2  # the search's backbone and the trial's
    for model in imagenet:
        np.testing.assert_array_equal(model.get_layer("Conv1").get_weights()[0], kernel)


def test_a_weights_file_in_the_keras_cache_or_given_as_a_path_needs_no_network(offline, keras_home, imagenet):
    made, kernel = imagenet
    config = StudyConfig(weights=str(made), image_size=32).validate()
    np.testing.assert_array_equal(build_backbone(config).get_layer("Conv1").get_weights()[0], kernel)
    (keras_home / "models").mkdir()
    shutil.copy(made, keras_home / "models" / made.name)
    model = build_backbone(StudyConfig(weights="imagenet", image_size=32).validate())
    np.testing.assert_array_equal(model.get_layer("Conv1").get_weights()[0], kernel)
    assert offline == []


def test_without_network_imagenet_weights_say_where_to_put_the_file(offline, keras_home):
    with pytest.raises(StudyError) as caught:
        build_backbone(StudyConfig(weights="imagenet", image_size=32).validate())
    message = str(caught.value)
    assert "\n" not in message and "no network" in message and "--weights PATH" in message
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    assert f"https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/{name}" in message
    assert str(keras_home / "models") in message
    assert offline == ["storage.googleapis.com"]
