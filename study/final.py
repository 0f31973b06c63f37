"""The final stage: retrain the search's best candidate on the 70% pool and test it on the 30% split."""

from __future__ import annotations

from pathlib import Path

import optuna

from study.backbones import build_backbone, input_map, preprocessor
from study.config import StudyConfig
from study.export import final_model_path, save_standalone, standalone_model
from study.records import CLASSES, FINAL, PARAM, add_final_run, final_candidate, new_final
from study.search import SearchOutcome
from study.training import fine_tune, prefix_cache


def run_final(config: StudyConfig, outcome: SearchOutcome) -> dict:
    """Retrain the best candidate once per seed that has no result yet; store and return `final`.

    The result lives in the study's user attr `final`: the candidate, test accuracy per seed,
    their mean and variance, and the artifact id of the saved model (first seed).

    Example:
        >>> final = run_final(config, run_search(config))  # doctest: +SKIP
        >>> final["mean"]  # doctest: +SKIP
        0.41
    """
    study = outcome.study
    best = study.best_trial
    name = best.params[PARAM]
    candidate = next(c for c in outcome.candidates if c.name == name)
    seeds = [config.seed + i for i in range(config.repeats)]
    final = study.user_attrs.get(FINAL) or {}
    if final_candidate(final) != name:  # the best candidate changed: earlier results do not apply
        final = new_final(name, list(candidate.layers), best.number)
    missing = [seed for seed in seeds if str(seed) not in final["runs"]]
    if missing:
        preprocess = preprocessor(config)
        pool_images, pool_labels = outcome.splits.arrays("pool")
        test_images, test_labels = outcome.splits.arrays("test")
        pool = (preprocess(pool_images), pool_labels)
        test = (preprocess(test_images), test_labels)
        cache = prefix_cache(config)
        print(
            f"final stage: {name} on {len(pool_labels)} pool images, tested on {len(test_labels)} "
            f"({len(missing)} seed(s) to run)",
            flush=True,
        )
    for seed in missing:
        result = fine_tune(
            config, lambda: build_backbone(config), candidate, pool, outcome.splits.num_classes,
            seed=seed, cache=cache, split_names=("pool", "test"),
        )
        scores = result.model.evaluate(*test, batch_size=max(config.batch_size, 32), verbose=0, return_dict=True)
        accuracy = float(scores["accuracy"])
        add_final_run(final, seed, accuracy, result.history["accuracy"][-1], round(result.seconds, 3), config.select_on)
        if "artifact_id" not in final:
            final["artifact_id"] = _save_model(config, study, result.model, name, outcome.splits.class_names)
        print(f"  seed {seed}: test accuracy {accuracy:.4f} ({result.seconds:.1f} s)", flush=True)
        study.set_user_attr(FINAL, final)  # after every seed, so an interruption loses at most one
    print(
        f"final: {name}: test accuracy {final['mean']:.4f}"
        + (f" (mean of {len(final['test_accuracy'])}, variance {final['variance']:.6f})" if len(final["test_accuracy"]) > 1 else ""),
        flush=True,
    )
    return final


def _save_model(config: StudyConfig, study: optuna.Study, model, name: str, classes: list[str]) -> str:
    """Save the standalone model under `storage/models/<study>.keras` and upload it as an artifact."""
    metadata = {
        "study": config.name, PARAM: name, CLASSES: list(classes), "image_size": config.image_size,
        "preprocessing": input_map(config).description, "input": "RGB pixels 0..255, any size (resized inside)",
    }
    path = save_standalone(standalone_model(config, model), final_model_path(config), metadata)
    return optuna.artifacts.upload_artifact(artifact_store=artifact_store(config), file_path=str(path), study_or_trial=study)


def artifact_store(config: StudyConfig) -> optuna.artifacts.FileSystemArtifactStore:
    """The artifact store under `--artifact-dir` (optuna-dashboard: `--artifact-dir` the same)."""
    Path(config.artifact_dir).mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(config.artifact_dir)
