"""The artifact store: saved models and figure PNGs, where optuna-dashboard finds them."""

from __future__ import annotations

from pathlib import Path

import optuna


def artifact_store(artifact_dir: str) -> optuna.artifacts.FileSystemArtifactStore:
    """The artifact store under `--artifact-dir` (made if missing; optuna-dashboard: `--artifact-dir` the same).

    Example:
        >>> artifact_store("storage/artifacts")  # doctest: +SKIP
    """
    Path(artifact_dir).mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(artifact_dir)
