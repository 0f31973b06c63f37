"""study: which layers of a pretrained Keras image model to fine-tune, as a resumable Optuna study.

    >>> from study import run_study
    >>> result = run_study(dataset="synthetic", weights="none", image_size=32, epochs=2)  # doctest: +SKIP
    >>> result.winner, result.test_accuracy, result.model_path  # doctest: +SKIP

`import study` is cheap: the API (study.api) and TensorFlow load on first use.
"""

__all__ = ["StudyConfig", "run_protocol", "run_study"]


def __getattr__(name: str):
    if name in ("run_study", "run_protocol", "make_config"):
        import study.api

        return getattr(study.api, name)
    if name == "StudyConfig":
        from study.config import StudyConfig

        return StudyConfig
    raise AttributeError(f"module 'study' has no attribute {name!r}")
