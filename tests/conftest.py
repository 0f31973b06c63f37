import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402


@pytest.fixture
def tiny_args(tmp_path):
    """CLI arguments for a study that runs in seconds: synthetic data, random weights, 32 px."""

    def make(*extra: str) -> list[str]:
        return [
            "--dataset", "synthetic",
            "--synthetic-size", "60",
            "--synthetic-classes", "3",
            "--weights", "none",
            "--image-size", "32",
            "--model", "vgg16",
            "--epochs", "2",
            "--storage", f"sqlite:///{tmp_path}/studies.db",
            "--artifact-dir", str(tmp_path / "artifacts"),
            *extra,
        ]

    return make
