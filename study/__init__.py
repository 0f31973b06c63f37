"""study: which layers of a pretrained Keras image model to fine-tune, as a resumable Optuna study.

    >>> from study import run_study
    >>> result = run_study(dataset="synthetic", weights="none", image_size=32, epochs=2)  # doctest: +SKIP
    >>> result.winner, result.test_accuracy, result.model_path  # doctest: +SKIP

`import study` is cheap: the API (study.cli) and TensorFlow load on first use. The package's folders
follow the data flow (docs/architecture.md): config -> inputs -> candidates -> training -> search ->
final -> report, with runtime, stats and storage shared, and cli on top.
"""

__all__ = ["StudyConfig", "run_protocol", "run_study"]


def __getattr__(name: str):
    if name in ("run_study", "run_protocol", "make_config"):
        import study.cli

        return getattr(study.cli, name)
    if name == "StudyConfig":
        from study.config import StudyConfig

        return StudyConfig
    raise AttributeError(f"module 'study' has no attribute {name!r}")
