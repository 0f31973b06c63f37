"""The final stage: retrain the search's chosen candidate (`--select`) on the 70% pool and test it on the 30% split."""

from __future__ import annotations

from typing import Callable

import optuna

from study.config import StudyConfig
from study.final._export import save_standalone, standalone_model
from study.final._progress import FinalProgress
from study.inputs import build_backbone, input_map, preprocessor
from study.runtime import writing
from study.search import SearchOutcome
from study.stats import select_from_tied
from study.storage import (
    ARTIFACT_ID,
    CLASSES,
    FINAL,
    FINAL_TEST_ACCURACY,
    MEAN,
    PARAM,
    RUNS,
    SELECT,
    TEST_ACCURACY,
    TIED_WITH_WINNER,
    TRAINABLE_PARAMS,
    VARIANCE,
    add_final_run,
    artifact_store,
    final_candidate,
    final_model_path,
    finished_trials,
    new_final,
    save_records,
    study_records,
)
from study.training import fine_tune, prefix_cache


def run_final(config: StudyConfig, outcome: SearchOutcome,
              after_seed: Callable[[optuna.Study, int, int], None] | None = None) -> dict:
    """Retrain the chosen candidate (`chosen_trial`) once per seed that has no result yet; store and return `final`.

    The result lives in the study's user attr `final`: the candidate, test accuracy per seed,
    their mean and variance, and the artifact id of the saved model (first seed). `after_seed(study,
    done, total)` runs after every seed is stored (the command line shows it in optuna-dashboard).

    Example:
        >>> final = run_final(config, run_search(config))  # doctest: +SKIP
        >>> final[MEAN]  # doctest: +SKIP
        0.41
    """
    study = outcome.study
    chosen = chosen_trial(study, config.select)
    name = chosen.params[PARAM]
    candidate = next(c for c in outcome.candidates if c.name == name)
    seeds = [config.seed + i for i in range(config.repeats)]
    final = study_records(study).get(FINAL) or {}
    if final_candidate(final) != name:  # another candidate chosen: earlier results do not apply
        final = new_final(name, chosen.number)
    final[SELECT] = config.select
    missing = [seed for seed in seeds if str(seed) not in final[RUNS]]
    progress = FinalProgress(name, missing, total=len(seeds))
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
        with progress.seed(seed):
            result = fine_tune(
                config, lambda: build_backbone(config), candidate, pool, outcome.splits.num_classes,
                seed=seed, cache=cache, split_names=("pool", "test"),
            )
        scores = result.model.evaluate(*test, batch_size=max(config.batch_size, 32), verbose=0, return_dict=True)
        accuracy = float(scores["accuracy"])
        add_final_run(final, seed, accuracy, result.history["accuracy"][-1], round(result.seconds, 3), config.select_on)
        if ARTIFACT_ID not in final:
            final[ARTIFACT_ID] = _save_model(config, study, result.model, name, outcome.splits.class_names)
        # After every seed, so an interruption loses at most one; the mean is also a plain attr.
        save_records(study, {FINAL: final, FINAL_TEST_ACCURACY: final[MEAN]})
        progress.seed_end(seed, final[RUNS][str(seed)][TEST_ACCURACY], result.seconds)
        if after_seed is not None:
            after_seed(study, len(final[RUNS]), len(seeds))
    runs = len(final[TEST_ACCURACY])
    print(f"final: {name}: test accuracy {final[MEAN]:.4f}"
          + (f" (mean of {runs}, variance {final[VARIANCE]:.6f})" if runs > 1 else ""), flush=True)
    return final


def chosen_trial(study: optuna.Study, rule: str = "best") -> optuna.trial.FrozenTrial:
    """The search trial whose candidate the final stage retrains, by `--select` (`rule`).

    `best`: the study's best trial (the best mean). `simplest`: among the candidates statistically
    tied with the winner (the study's `tied_with_winner`), the one with the fewest trainable
    parameters (`study.stats.select_from_tied`); without a stored tied set, the best trial.

    Example:
        >>> chosen_trial(study, "simplest").params[PARAM]  # doctest: +SKIP
        'block-05:conv_dw_12..conv_pw_13'
    """
    best = study.best_trial
    tied = study.user_attrs.get(TIED_WITH_WINNER) or []
    if rule == "best" or not tied:
        return best
    trials = finished_trials(study.get_trials(deepcopy=False))
    params = {name: trials[name].user_attrs.get(TRAINABLE_PARAMS) for name in tied if name in trials}
    name = select_from_tied([n for n in tied if n in trials], params, rule)
    return best if name == best.params[PARAM] else trials[name]


def _save_model(config: StudyConfig, study: optuna.Study, model, name: str, classes: list[str]) -> str:
    """Save the standalone model under `storage/models/<study>.keras` and upload it as an artifact."""
    metadata = {
        "study": config.name, PARAM: name, CLASSES: list(classes), "image_size": config.image_size,
        "preprocessing": input_map(config).description, "input": "RGB pixels 0..255, any size (resized inside)",
    }
    path = save_standalone(standalone_model(config, model), final_model_path(config), metadata)
    store = artifact_store(config.artifact_dir)
    with writing(config.artifact_dir):
        return optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)


