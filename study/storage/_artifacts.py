"""Where a run's files go besides the database: the artifact store (saved models and figure PNGs, where
optuna-dashboard finds them) and the final models under `<storage>/models/`."""

from __future__ import annotations

from pathlib import Path

import optuna

from study.runtime import writing


def artifact_store(artifact_dir: str) -> optuna.artifacts.FileSystemArtifactStore:
    """The artifact store under `--artifact-dir` (made if missing; optuna-dashboard: `--artifact-dir` the same).

    Example:
        >>> artifact_store("storage/artifacts")  # doctest: +SKIP
    """
    with writing(artifact_dir):
        Path(artifact_dir).mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(artifact_dir)


def final_model_path(config) -> Path:
    """Where the final model of `config` (a StudyConfig) is saved for users: `<storage>/models/<study>.keras`,
    next to the artifacts."""
    return Path(config.artifact_dir).resolve().parent / "models" / f"{safe_name(config.name)}.keras"



def output_files(config) -> list[Path]:
    """The files a run of `config` (a StudyConfig) writes besides the storage and the artifact store:
    the final model and its metadata (none with --skip-final). They are checked before any work
    (`check_destinations`).

    Example:
        >>> from study.config import StudyConfig
        >>> [p.name for p in output_files(StudyConfig(dataset="synthetic", model="vgg16"))]
        ['synthetic-vgg16-block.keras', 'synthetic-vgg16-block.json']
        >>> output_files(StudyConfig(dataset="synthetic", skip_final=True))
        []
    """
    if config.skip_final:
        return []
    path = final_model_path(config)
    return [path, path.with_suffix(".json")]



def safe_name(name: str) -> str:
    """`name` with every character a file name may not hold replaced by `_`.

    Example:
        >>> safe_name("block-01:conv1..conv2")
        'block-01_conv1..conv2'
    """
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
