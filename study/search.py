"""The search: one Optuna study per configuration, one trial per candidate, kept in the storage.

Running the same configuration again resumes the study: only candidates without a finished trial
are trained. A different configuration under an existing study name is refused.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import optuna
from optuna.study import StudyDirection

from study.backbones import block_delimiters, block_pattern, build_backbone, input_map, preprocessor, registered
from study.candidates import Candidate, layer_summary, make_candidates
from study.config import PER_EPOCH_PRUNERS, StudyConfig
from study.data import Splits, load_splits
from study.devices import current_device
from study.errors import StudyError
from study.export import output_files
from study.progress import SearchProgress
from study.pruning import ReportToTrial, fit_or_prune, make_pruner
from study.racing import TEST_WORDS, summarize, tied_with_winner
from study.ranking import layer_ranking
from study.records import (
    CANDIDATES,
    CLASSES,
    CONFIG,
    DEVICE,
    DUPLICATE_OF,
    EPOCH_VALUES,
    INTERVAL_95,
    LAYER_PARAMS,
    LAYERS,
    PARAM,
    PEAK_MEMORY,
    PREFIX_CACHE,
    PRUNE_REASON,
    REPEAT_VALUES,
    SECONDS,
    SPLITS,
    STANDARD_ERROR,
    TIED_WITH_WINNER,
    TRAIN_ACCURACY,
    TRAINABLE_PARAMS,
    finished_candidates,
    finished_trials,
    rounded,
    running_candidates,
    save_records,
    score,
    study_records,
)
from study.recovery import claim_new_study, fail_dead_trials, wait_for_records, with_owner
from study.samplers import make_sampler
from study.storage import check_destinations, open_storage, reading
from study.training import Split, count_trainable, fine_tune, prefix_cache


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
    Commands started at once on a fresh storage all get the one study: the process that created
    it writes its records (once), the others wait for them (study.recovery.wait_for_records).
    """
    pruner = make_pruner(config)
    attrs = _existing_records(storage, config.name)
    study = optuna.load_study(study_name=config.name, storage=storage, sampler=sampler, pruner=pruner)
    if attrs is not None:
        _check_same(config, splits, attrs)
        if layer_params is not None and LAYER_PARAMS not in attrs:
            save_records(study, {LAYER_PARAMS: layer_params})  # studies made before it was recorded
        return study
    save_records(study, {
        SPLITS: {"counts": splits.counts(), "fingerprint": splits.fingerprint()},
        CLASSES: splits.class_names,
        CANDIDATES: [c.to_dict() for c in candidates],
        **({LAYER_PARAMS: layer_params} if layer_params is not None else {}),
        CONFIG: config.identity(),  # written last: it marks the study complete
    })
    _check_same(config, splits, study_records(study))  # two takers-over of one study: one configuration wins
    return study


def _existing_records(storage: optuna.storages.BaseStorage, name: str) -> dict | None:
    """Create the study `name` if it is new (None: this process writes its records); else its
    complete records, waited for while its creator writes them (None if it died first)."""
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        try:
            claim_new_study(storage, storage.create_new_study([StudyDirection.MAXIMIZE], name))
            return None
        except optuna.exceptions.DuplicatedStudyError:
            pass  # another command created it a moment ago
    attrs = wait_for_records(storage, name, CONFIG)
    if attrs is None:  # its creator died before writing them: this process writes them instead
        claim_new_study(storage, storage.get_study_id_from_name(name))
    return attrs


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


def check_outputs(config: StudyConfig) -> None:
    """Refuse, before any work, a storage, artifact folder or saved-model path the run of `config`
    could not write (study.storage.check_destinations); creates nothing.

    Example:
        >>> check_outputs(StudyConfig(dataset="synthetic", artifact_dir="/dev/null/artifacts"))
        Traceback (most recent call last):
        study.errors.StudyError: --artifact-dir /dev/null/artifacts: cannot write there (/dev/null is a file); choose another folder
    """
    check_destinations(config.storage, config.artifact_dir, output_files(config))


def prepare_search(config: StudyConfig) -> SearchPlan:
    """Load data and backbone, open or resume the study, and work out what is left to train.

    Example:
        >>> plan = prepare_search(StudyConfig(dataset="synthetic", weights="none", image_size=32,
        ...                                   storage="sqlite:///:memory:").validate())  # doctest: +SKIP
        >>> plan.n_trials  # doctest: +SKIP
        11
    """
    registered(config)  # an unknown --model is refused before the images are loaded
    check_outputs(config)  # before any work: nothing is created
    splits = load_splits(config)
    backbone = build_backbone(config)
    input_map(config, backbone)  # a pixel scaling that cannot work is refused before the study is written
    layer_params = layer_summary(backbone, block_delimiters(config), block_pattern(config))  # checks --delimiters
    ranked = None
    if config.strategy == "topk":  # top-k tunes the best layers of the finished layer-wise study
        with reading(config.storage) as existing:  # read only: creates nothing, changes nothing
            ranked = layer_ranking(config, existing, splits.fingerprint())
    candidates = make_candidates(config, backbone, ranked_layers=ranked)
    order = [c.name for c in reversed(candidates)]  # the paper searches from the output end
    # Every input is known to be good: only now is the storage opened (and made, if new).
    storage = open_storage(config.storage)
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


def repeat_splits(config: StudyConfig, splits: Splits) -> list[tuple[Split, Split]]:
    """The (search-train, selection) split of every repeat (`--search-repeats`), as rows of one source.

    Decoded and preprocessed once per run, not once per trial: every image any repeat uses is in
    one source array the repeats index, so the prefix cache computes it once per cut.

    Example:
        >>> [(train.size, val.size) for train, val in repeat_splits(config, load_splits(config))]  # doctest: +SKIP
        [(100, 200), (100, 200), (100, 200)]
    """
    draws = [splits.search_draw(r) for r in range(config.search_repeats)]
    if config.select_on == "test":  # the paper's choice: every repeat is scored on the test split
        draws = [(train, splits.indices["test"]) for train, _ in draws]
    rows = np.unique(np.concatenate([index for draw in draws for index in draw]))
    position = np.zeros(len(splits.labels), np.int64)
    position[rows] = np.arange(len(rows))
    images = preprocessor(config)(splits.images[rows])
    labels = splits.labels[rows]
    return [(Split("search", images, labels, position[train]), Split("search", images, labels, position[val]))
            for train, val in draws]


class Objective:
    """Fine-tunes the trial's candidate `--search-repeats` times, each repeat on its own paired draw
    of search-train and search-val (study.data.Splits.search_draw) with its own seed; returns the
    mean validation accuracy.

    Each repeat's value is written as it finishes (user attr `repeat_values`), so a trial that is
    interrupted leaves its finished repeats behind and the next trial of the candidate does not
    train them again. With the race pruner every repeat is reported (step = repeat) and the trial
    stops once it is shown worse than the best; a per-epoch pruner (one repeat) gets every epoch.
    """

    def __init__(self, config: StudyConfig, splits: Splits, by_name: dict[str, Candidate],
                 planned: list[Candidate] = ()):
        self.config = config
        self.by_name = by_name
        self.num_classes = splits.num_classes
        self.repeats = repeat_splits(config, splits)
        self.cache = prefix_cache(config, planned)  # the next candidates' prefixes share one pass
        self.device = current_device()
        self.per_epoch = config.pruner in PER_EPOCH_PRUNERS

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
        values, curves, train_accuracies = _interrupted_repeats(trial.study, name)
        try:
            for repeat, (train, validation) in enumerate(self.repeats):
                if repeat >= len(values):
                    result = self._train(trial, candidate, repeat, train, validation)
                    values.append(result.history["val_accuracy"][-1])
                    curves.append([round(v, 6) for v in result.history["val_accuracy"]])
                    train_accuracies.append(result.history["accuracy"][-1])
                    trial.set_user_attr(PREFIX_CACHE, result.cache)
                trial.set_user_attr(REPEAT_VALUES, values)
                trial.set_user_attr(EPOCH_VALUES, curves)
                trial.set_user_attr(TRAIN_ACCURACY, float(np.mean(train_accuracies)))
                if not self.per_epoch:
                    self._race(trial, values[repeat], repeat)
        finally:
            trial.set_user_attr(SECONDS, round(time.perf_counter() - started, 3))
            trial.set_user_attr(PEAK_MEMORY, self.device.peak_memory_bytes())
        summary = summarize(values, n_images=self.repeats[0][1].size)
        trial.set_user_attr(STANDARD_ERROR, summary[STANDARD_ERROR])
        trial.set_user_attr(INTERVAL_95, summary[INTERVAL_95])
        return float(np.mean(values))

    def _train(self, trial: optuna.Trial, candidate: Candidate, repeat: int, train: Split, validation: Split):
        """One repeat: its own draw and seed; the backbone (and so the cache) is the same in every repeat."""
        # Out of GPU memory: retried once at half the batch, then pruned (study.pruning).
        return fit_or_prune(trial, lambda batch_size: fine_tune(
            self.config,
            lambda: build_backbone(self.config),
            candidate,
            train,
            self.num_classes,
            validation=validation,
            callbacks=[ReportToTrial(trial, "val_accuracy")] if self.per_epoch else [],
            seed=self.config.seed + repeat,
            backbone_seed=self.config.seed,
            batch_size=batch_size,
            before_fit=lambda model: _record_trainable(trial, model),
            cache=self.cache,
        ), self.config.batch_size, self.device)

    def _race(self, trial: optuna.Trial, value: float, repeat: int) -> None:
        """Report a repeat's value; stop the trial once the race shows it worse than the best."""
        trial.report(value, step=repeat)
        if repeat + 1 < len(self.repeats) and trial.should_prune():
            reason = f"stopped after {repeat + 1} of {len(self.repeats)} repeats: " + _race_reason(trial)
            trial.set_user_attr(PRUNE_REASON, reason)
            raise optuna.TrialPruned(reason)


def _race_reason(trial: optuna.Trial) -> str:
    """Why the race pruner stopped a trial, in words, from the same comparison it made."""
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    compared = trial.study.pruner.compare_with_best(trial.study, frozen)
    if compared is None:  # the pruner said so for another reason (out of device memory)
        return "the pruner stopped it"
    best, p = compared
    return (f"worse than trial {best.number} ({best.params.get(PARAM)}) on the repeats both have, "
            f"p={p:.3g} < {trial.study.pruner.level(trial.study):.3g} ({TEST_WORDS})")


def _interrupted_repeats(study: optuna.Study, name: str) -> tuple[list[float], list[list[float]], list[float]]:
    """The finished repeats of the candidate's interrupted (FAIL) trials: values, curves, train accuracies.

    Repeats are deterministic (their draw and seed), so a finished one is not trained again.
    """
    failed = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
              if t.params.get(PARAM) == name and t.user_attrs.get(REPEAT_VALUES)]
    if not failed:
        return [], [], []
    longest = max(failed, key=lambda t: len(t.user_attrs[REPEAT_VALUES]))
    values = list(longest.user_attrs[REPEAT_VALUES])
    curves = list(longest.user_attrs.get(EPOCH_VALUES, [[] for _ in values]))
    train_accuracy = longest.user_attrs.get(TRAIN_ACCURACY, 0.0)
    return values, curves, [train_accuracy] * len(values)


def record_tied_set(outcome: SearchOutcome, config: StudyConfig) -> list[str]:
    """Store and return the candidates not significantly worse than the winner (winner first).

    Each finished candidate's repeat values are compared with the winner's, paired, by the race's
    test at `--race-alpha` (study.racing.tied_with_winner); one repeat uses the binomial error of
    the selection split's size.
    """
    results = {
        name: [float(v) for v in trial.user_attrs.get(REPEAT_VALUES) or [score(trial)]]
        for name, trial in finished_trials(outcome.study.get_trials(deepcopy=False)).items()
        if score(trial) is not None
    }
    if not results:
        return []
    counts = study_records(outcome.study)[SPLITS]["counts"]
    n_images = sum(counts["search_val" if config.select_on == "val" else "test"].values())
    tied = tied_with_winner(results, n_images, config.race_alpha)
    outcome.study.set_user_attr(TIED_WITH_WINNER, tied)
    return tied


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
