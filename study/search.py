"""The search: one Optuna study per configuration, one trial per candidate, kept in the storage.

Running the same configuration again resumes the study: only candidates without a finished trial
are trained. A different configuration under an existing study name is refused.
"""

from __future__ import annotations

import dataclasses
import time

import optuna

from study.backbones import block_delimiters, build_backbone, preprocessor
from study.candidates import Candidate, layer_summary, make_candidates
from study.config import StudyConfig
from study.data import Splits, load_splits
from study.devices import current_device
from study.errors import StudyError
from study.progress import SearchProgress
from study.pruning import ReportToTrial, fit_or_prune, make_pruner
from study.ranking import layer_ranking
from study.records import (
    CANDIDATES,
    CLASSES,
    CONFIG,
    DEVICE,
    DUPLICATE_OF,
    LAYER_PARAMS,
    LAYERS,
    PARAM,
    PEAK_MEMORY,
    PREFIX_CACHE,
    SECONDS,
    SPLITS,
    TRAIN_ACCURACY,
    TRAINABLE_PARAMS,
    finished_candidates,
    made_by_tool,
    rounded,
    running_candidates,
    save_records,
    study_records,
)
from study.recovery import fail_dead_trials, with_owner
from study.samplers import make_sampler
from study.storage import open_storage
from study.training import count_trainable, fine_tune, prefix_cache


@dataclasses.dataclass
class SearchOutcome:
    """What the final stage needs from the search."""

    study: optuna.Study
    splits: Splits
    candidates: list[Candidate]
    left: list[str]  # candidates still without a finished trial

    @property
    def complete(self) -> bool:
        return not self.left


def load_or_create_study(
    storage: optuna.storages.BaseStorage,
    config: StudyConfig,
    splits: Splits,
    candidates: list[Candidate],
    sampler: optuna.samplers.BaseSampler | None = None,
    layer_params: list[dict] | None = None,
) -> optuna.Study:
    """The study named by the configuration, created with its records, or resumed if it matches.

    `layer_params` (study.candidates.layer_summary) is stored so reports never build the model.
    """
    pruner = make_pruner(config)
    names = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if config.name in names:
        study = optuna.load_study(study_name=config.name, storage=storage, sampler=sampler, pruner=pruner)
        existing = study_records(study)
        if made_by_tool(existing):
            _check_same(config, splits, existing)
            if layer_params is not None and LAYER_PARAMS not in existing:
                save_records(study, {LAYER_PARAMS: layer_params})  # studies made before it was recorded
            return study
    study = optuna.create_study(
        study_name=config.name,
        storage=storage,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    records = {
        SPLITS: {"counts": splits.counts(), "fingerprint": splits.fingerprint()},
        CLASSES: splits.class_names,
        CANDIDATES: [c.to_dict() for c in candidates],
        **({LAYER_PARAMS: layer_params} if layer_params is not None else {}),
        CONFIG: config.identity(),  # written last: it marks the study complete
    }
    save_records(study, records)
    return study


@dataclasses.dataclass
class SearchPlan:
    """An opened study and what is left to train in it: the search before its trials run."""

    config: StudyConfig
    study: optuna.Study
    splits: Splits
    candidates: list[Candidate]
    left: list[str]  # candidates to train, in visiting order (the paper's: output end first)
    n_trials: int  # trials this run should start

    def outcome(self) -> SearchOutcome:
        """What the search left behind, read from the storage (other workers' trials included)."""
        done = finished_candidates(self.study)
        order = [c.name for c in reversed(self.candidates)]
        return SearchOutcome(self.study, self.splits, self.candidates, [n for n in order if n not in done])


def prepare_search(config: StudyConfig) -> SearchPlan:
    """Load data and backbone, open or resume the study, and work out what is left to train.

    Example:
        >>> plan = prepare_search(StudyConfig(dataset="synthetic", weights="none", image_size=32,
        ...                                   storage="sqlite:///:memory:").validate())  # doctest: +SKIP
        >>> plan.n_trials  # doctest: +SKIP
        11
    """
    splits = load_splits(config)
    storage = open_storage(config.storage)
    # top-k tunes the best layers of the finished layer-wise study: read its ranking first.
    ranked = layer_ranking(config, storage, splits.fingerprint()) if config.strategy == "topk" else None
    backbone = build_backbone(config)
    candidates = make_candidates(config, backbone, ranked_layers=ranked)
    order = [c.name for c in reversed(candidates)]  # the paper searches from the output end
    layer_params = layer_summary(backbone, block_delimiters(config))
    study = load_or_create_study(
        storage, config, splits, candidates, make_sampler(config, order), layer_params=layer_params
    )
    fail_dead_trials(study)  # trials of a killed run are FAIL now, so their candidates run again
    done = finished_candidates(study)
    busy = running_candidates(study) - done
    left = [name for name in order if name not in done and name not in busy]
    n_trials = len(left) if config.sampler == "grid" else len(candidates)
    if config.n_trials is not None:
        n_trials = min(n_trials, config.n_trials) if config.sampler == "grid" else config.n_trials
    print(
        f"study {config.name!r} ({config.strategy}, {len(candidates)} candidates, "
        f"{config.sampler} sampler): {len(done)} done, {n_trials} to run now"
        + (f", {len(busy)} running elsewhere" if busy else ""),
        flush=True,
    )
    return SearchPlan(config, study, splits, candidates, left, n_trials)


def run_trials(plan: SearchPlan) -> None:
    """Train `plan.n_trials` trials of the study in this process."""
    if not plan.n_trials:
        return
    by_name = {c.name: c for c in plan.candidates}
    objective = Objective(plan.config, plan.splits, by_name, planned=[by_name[name] for name in plan.left])
    done = len(plan.candidates) - len(plan.left) if plan.config.sampler == "grid" else 0
    progress = SearchProgress(plan.study, planned=plan.n_trials, done=done)
    plan.study.optimize(progress.wrap(with_owner(_rounded(objective))), n_trials=plan.n_trials, callbacks=[progress],
                        gc_after_trial=True)


def _rounded(objective):
    """The trial value as stored: `records.DIGITS` significant digits (no float32 noise)."""
    return lambda trial: rounded(objective(trial))


def run_search(config: StudyConfig) -> SearchOutcome:
    """The whole search in this process: prepare it, train what is left, return the outcome.

    Example:
        >>> outcome = run_search(StudyConfig(dataset="synthetic", weights="none", image_size=32,
        ...                                  epochs=3).validate())  # doctest: +SKIP
        >>> outcome.study.best_trial.params[PARAM]  # doctest: +SKIP
        'block-11:block_16_expand..block_16_project'
    """
    plan = prepare_search(config)
    run_trials(plan)
    return plan.outcome()


class Objective:
    """Fine-tunes the trial's candidate on the search-train split; returns validation accuracy."""

    def __init__(self, config: StudyConfig, splits: Splits, by_name: dict[str, Candidate],
                 planned: list[Candidate] = ()):
        self.config = config
        self.by_name = by_name
        self.num_classes = splits.num_classes
        preprocess = preprocessor(config)
        select = "search_val" if config.select_on == "val" else "test"
        # Decoded and preprocessed once per run, not once per trial.
        images, labels = splits.arrays("search_train")
        self.train = (preprocess(images), labels)
        images, labels = splits.arrays(select)
        self.validation = (preprocess(images), labels)
        self.split_names = ("search_train", select)
        self.cache = prefix_cache(config, planned)  # the next candidates' prefixes share one pass
        self.device = current_device()

    def __call__(self, trial: optuna.Trial) -> float:
        name = trial.suggest_categorical(PARAM, list(self.by_name))
        earlier = _finished_value(trial.study, name, trial.number)
        if earlier is not None:  # TPE and random may draw a candidate again: do not retrain it
            trial.set_user_attr(DUPLICATE_OF, earlier[0])
            return earlier[1]
        candidate = self.by_name[name]
        trial.set_user_attr(LAYERS, list(candidate.layers))
        trial.set_user_attr(DEVICE, self.device.name)
        self.device.reset_peak_memory()
        started = time.perf_counter()
        try:
            # Out of GPU memory: retried once at half the batch, then pruned (study.pruning).
            result = fit_or_prune(trial, lambda batch_size: fine_tune(
                self.config,
                lambda: build_backbone(self.config),
                candidate,
                self.train,
                self.num_classes,
                validation=self.validation,
                callbacks=[ReportToTrial(trial, "val_accuracy")],
                batch_size=batch_size,
                before_fit=lambda model: _record_trainable(trial, model),
                cache=self.cache,
                split_names=self.split_names,
            ), self.config.batch_size, self.device)
        finally:
            trial.set_user_attr(SECONDS, round(time.perf_counter() - started, 3))
            trial.set_user_attr(PEAK_MEMORY, self.device.peak_memory_bytes())
        trial.set_user_attr(TRAIN_ACCURACY, result.history["accuracy"][-1])
        trial.set_user_attr(PREFIX_CACHE, result.cache)
        return result.history["val_accuracy"][-1]


def _record_trainable(trial: optuna.Trial, model) -> None:
    trial.set_user_attr(TRAINABLE_PARAMS, count_trainable(model))


def _finished_value(study: optuna.Study, name: str, number: int) -> tuple[int, float] | None:
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.params.get(PARAM) == name and t.number != number:
            return t.number, float(t.value)
    return None


def _check_same(config: StudyConfig, splits: Splits, attrs: dict) -> None:
    changed = config.differences(attrs[CONFIG])
    if changed:
        raise StudyError(
            f"study {config.name!r} already exists with another configuration ({'; '.join(changed)}); "
            "run with the original options to resume it, or pass a new --study-name"
        )
    if attrs.get(SPLITS, {}).get("fingerprint") != splits.fingerprint():
        raise StudyError(
            f"study {config.name!r} was made from other images (the splits differ); "
            "restore the original data or pass a new --study-name"
        )
