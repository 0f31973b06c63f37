"""The search: one Optuna study per configuration, one trial per candidate, kept in the storage.

Running the same configuration again resumes the study: only candidates without a finished trial
are trained. A different configuration under an existing study name is refused.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import optuna
import sqlalchemy.exc

from study.backbones import block_delimiters, build_backbone, preprocessor
from study.candidates import Candidate, layer_summary, make_candidates
from study.config import StudyConfig
from study.data import Splits, load_splits
from study.devices import current_device
from study.errors import StudyError
from study.pruning import ReportToTrial, fit_or_prune, make_pruner
from study.recovery import fail_dead_trials, with_owner
from study.ranking import layer_ranking
from study.samplers import PARAM, finished_candidates, make_sampler, running_candidates
from study.sqlite import engine_kwargs, share_between_processes
from study.training import count_trainable, fine_tune, prefix_cache

HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30


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


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage with heartbeats; for SQLite the folder is created and checked first.

    Example:
        >>> storage = open_storage("sqlite:///storage/studies.db")
    """
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StudyError(f"--storage {url}: cannot create {path.parent} ({error.strerror})") from None
        if not _writable(path):
            raise StudyError(f"--storage {url}: {path} is not writable; choose another path")
    try:
        storage = optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs(url),
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
        )
        share_between_processes(storage)  # SQLite: several workers without "database is locked"
        return storage
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
        reason = str(error).strip().splitlines()[0][:200]
        raise StudyError(f"--storage {url}: cannot open it ({reason})") from None


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
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    existing = summaries.get(config.name)
    if existing is not None and "config" in existing.user_attrs:
        _check_same(config, splits, existing.user_attrs)
        study = optuna.load_study(study_name=config.name, storage=storage, sampler=sampler, pruner=pruner)
        if layer_params is not None and "layer_params" not in existing.user_attrs:
            study.set_user_attr("layer_params", layer_params)  # studies made before it was recorded
        return study
    study = optuna.create_study(
        study_name=config.name,
        storage=storage,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    study.set_user_attr("splits", {"counts": splits.counts(), "fingerprint": splits.fingerprint()})
    study.set_user_attr("classes", splits.class_names)
    study.set_user_attr("candidates", [c.to_dict() for c in candidates])
    if layer_params is not None:
        study.set_user_attr("layer_params", layer_params)
    study.set_user_attr("config", config.identity())  # written last: it marks the study complete
    return study


def run_search(config: StudyConfig) -> SearchOutcome:
    """Load data and backbone, open or resume the study, and train every candidate that is left.

    Example:
        >>> outcome = run_search(StudyConfig(dataset="synthetic", weights="none", image_size=32,
        ...                                  epochs=3).validate())
        >>> outcome.study.best_trial.params["candidate"]
    """
    splits = load_splits(config)
    storage = open_storage(config.storage)
    # top-k tunes the best layers of the finished layer-wise study: read its ranking first.
    ranked = layer_ranking(config, storage, splits.fingerprint()) if config.strategy == "topk" else None
    backbone = build_backbone(config)
    candidates = make_candidates(config, backbone, ranked_layers=ranked)
    by_name = {c.name: c for c in candidates}
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
    if n_trials and config.workers > 1:
        from study.workers import run_workers  # each worker process runs this function again

        run_workers(config, n_trials)
    elif n_trials:
        objective = with_owner(Objective(config, splits, by_name, planned=[by_name[name] for name in left]))
        study.optimize(objective, n_trials=n_trials, callbacks=[_print_trial], gc_after_trial=True)
    done = finished_candidates(study)
    return SearchOutcome(study, splits, candidates, [n for n in order if n not in done])


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
            trial.set_user_attr("duplicate_of", earlier[0])
            return earlier[1]
        candidate = self.by_name[name]
        trial.set_user_attr("layers", list(candidate.layers))
        trial.set_user_attr("device", self.device.name)
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
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
            trial.set_user_attr("peak_memory_bytes", self.device.peak_memory_bytes())
        trial.set_user_attr("train_accuracy", result.history["accuracy"][-1])
        trial.set_user_attr("prefix_cache", result.cache)
        return result.history["val_accuracy"][-1]


def _record_trainable(trial: optuna.Trial, model) -> None:
    trial.set_user_attr("trainable_params", count_trainable(model))


def _finished_value(study: optuna.Study, name: str, number: int) -> tuple[int, float] | None:
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.params.get(PARAM) == name and t.number != number:
            return t.number, float(t.value)
    return None


def _check_same(config: StudyConfig, splits: Splits, attrs: dict) -> None:
    changed = config.differences(attrs["config"])
    if changed:
        raise StudyError(
            f"study {config.name!r} already exists with another configuration ({'; '.join(changed)}); "
            "run with the original options to resume it, or pass a new --study-name"
        )
    if attrs.get("splits", {}).get("fingerprint") != splits.fingerprint():
        raise StudyError(
            f"study {config.name!r} was made from other images (the splits differ); "
            "restore the original data or pass a new --study-name"
        )


def _print_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    seconds = trial.user_attrs.get("seconds")
    extra = " (same as trial %d)" % trial.user_attrs["duplicate_of"] if "duplicate_of" in trial.user_attrs else ""
    timing = f", {seconds:.1f} s" if seconds is not None else ""
    print(
        f"  trial {trial.number:3d} {trial.state.name.lower():8s} {trial.params.get(PARAM, '?')}: "
        f"val_accuracy {value}{timing}{extra}",
        flush=True,
    )


def _writable(path: Path) -> bool:
    import os

    if path.exists():
        return os.access(path, os.W_OK)
    return os.access(path.parent, os.W_OK)
