"""The search: one Optuna study per configuration, one trial per candidate, kept in the storage.

Running the same configuration again resumes the study: only candidates without a finished trial
are trained. A different configuration under an existing study name is refused.
"""

from __future__ import annotations

import dataclasses

import optuna
from optuna.study import StudyDirection

from study.candidates import Candidate, block_groups, greedy_state, layer_ranking, layer_summary, make_candidates
from study.config import StudyConfig
from study.inputs import Splits, block_delimiters, block_pattern, build_backbone, input_map, load_splits, registered
from study.runtime import StudyError, checkpoint
from study.search._objective import Objective
from study.search._progress import SearchProgress
from study.search._pruners import make_pruner
from study.search._rounds import run_rounds
from study.search._samplers import make_sampler
from study.stats import tied_with_winner
from study.storage import (
    CANDIDATES,
    CLASSES,
    CONFIG,
    COUNTS,
    FINGERPRINT,
    LAYER_PARAMS,
    REPEAT_VALUES,
    SPLITS,
    TIED_WITH_WINNER,
    check_destinations,
    claim_new_study,
    fail_dead_trials,
    finished_candidates,
    finished_trials,
    open_storage,
    output_files,
    reading,
    resume_mismatch,
    rounded,
    running_candidates,
    save_records,
    score,
    study_records,
    wait_for_records,
    with_owner,
)


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
    it writes its records (once), the others wait for them (study.storage.wait_for_records).
    """
    pruner = make_pruner(config)
    attrs = _existing_records(storage, config.name)
    study = optuna.load_study(study_name=config.name, storage=storage, sampler=sampler, pruner=pruner)
    if attrs is not None:
        _check_same(config, splits, attrs)
        return study
    save_records(study, {
        SPLITS: {COUNTS: splits.counts(), FINGERPRINT: splits.fingerprint()},
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
    visit: list[str] | None = None  # greedy: the candidates of this round (None: every candidate)

    @property
    def more_rounds(self) -> bool:
        """Whether another round may follow this one (greedy, with a round to train now)."""
        return self.visit is not None and bool(self.visit)

    @property
    def order(self) -> list[str]:
        """The candidates this search visits, output end first: greedy's current round, else all of them."""
        return self.visit if self.visit is not None else [c.name for c in reversed(self.candidates)]

    def outcome(self) -> SearchOutcome:
        """What the search left behind, read from the storage (other workers' trials included)."""
        done = finished_candidates(self.study)
        return SearchOutcome(self.study, self.splits, self.candidates, [n for n in self.order if n not in done])


def check_outputs(config: StudyConfig) -> None:
    """Refuse, before any work, a storage, artifact folder or saved-model path the run of `config`
    could not write (study.storage.check_destinations); creates nothing.

    Example:
        >>> check_outputs(StudyConfig(dataset="synthetic", artifact_dir="/dev/null/artifacts"))
        Traceback (most recent call last):
        study.runtime.StudyError: --artifact-dir /dev/null/artifacts: cannot write there (/dev/null is a file); choose another folder
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
    ranked, state = None, None
    if config.strategy == "topk":  # top-k tunes the best layers of the finished layer-wise study
        with reading(config.storage) as existing:  # read only: creates nothing, changes nothing
            ranked = layer_ranking(config, existing, splits.fingerprint())
    elif config.strategy == "greedy":  # the finished rounds decide the next round's candidates
        with reading(config.storage) as existing:
            ranked = greedy_values(existing, config.name)
        units = len(block_groups(layer_params, block_pattern(config)))
        state = greedy_state(units, ranked, config.greedy_margin)
    candidates = make_candidates(config, backbone, ranked_layers=ranked)
    order = [c.name for c in reversed(candidates)]  # the paper searches from the output end
    if state is not None:
        order = state.now
    # Every input is known to be good: only now is the storage opened (and made, if new).
    checkpoint("open-storage")  # tests start several commands on one new storage here (STUDY_TEST_POINT)
    # and kill a process right after a trial's commit ("trial-created")
    storage = open_storage(config.storage, created=lambda trial: checkpoint("trial-created"))
    study = load_or_create_study(
        storage, config, splits, candidates, make_sampler(config, order), layer_params=layer_params
    )
    fail_dead_trials(study)  # trials of a killed run are FAIL now, so their candidates run again
    if state is not None:  # the candidates record: the slots resolved so far, with their layers
        save_records(study, {CANDIDATES: [c.to_dict() for c in candidates if c.name in state.slots]})
    done = finished_candidates(study)
    busy = running_candidates(study) - done
    left = [name for name in order if name not in done and name not in busy]
    n_trials = len(left) if config.sampler == "grid" else len(candidates)
    if config.n_trials is not None:
        n_trials = min(n_trials, config.n_trials) if config.sampler == "grid" else config.n_trials
    print(
        f"study {config.name!r} ({config.strategy}, {len(candidates)} candidates, "
        f"{config.sampler} sampler): {len(done)} done, {n_trials} to run now"
        + (f", {len(busy)} running elsewhere" if busy else "")
        + ("" if state is None else f"; greedy round {state.round}, blocks accepted {state.accepted}" if state.now
           else f"; greedy search over ({state.stopped}), blocks accepted {state.accepted}"),
        flush=True,
    )
    return SearchPlan(config, study, splits, candidates, left, n_trials, None if state is None else state.now)


def greedy_values(storage: optuna.storages.BaseStorage | None, name: str) -> dict[str, float | None]:
    """The finished candidates of the greedy study `name` and their values (None: pruned); {} if none.

    Example:
        >>> greedy_values(None, "synthetic-vgg16-greedy")
        {}
    """
    if storage is None or name not in {s.study_name for s in optuna.get_all_study_summaries(storage, False)}:
        return {}
    trials = finished_trials(optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False))
    return {candidate: (trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None)
            for candidate, trial in trials.items()}


def run_trials(plan: SearchPlan) -> None:
    """Train `plan.n_trials` trials of the study in this process."""
    if not plan.n_trials:
        return
    by_name = {c.name: c for c in plan.candidates}
    objective = Objective(plan.config, plan.splits, by_name, planned=[by_name[name] for name in plan.left])
    if plan.config.in_rounds:  # every candidate gets repeat r before any gets r + 1
        run_rounds(objective, plan.study, plan.order)  # greedy: only this round's slots have their layers
        return
    done = len(plan.candidates) - len(plan.left) if plan.config.sampler == "grid" else 0
    progress = SearchProgress(plan.study, planned=plan.n_trials, done=done)
    plan.study.optimize(progress.wrap(with_owner(_rounded(objective))), n_trials=plan.n_trials, callbacks=[progress],
                        gc_after_trial=True)


def _rounded(objective):
    """The trial value as stored: `study.storage.DIGITS` significant digits (no float32 noise)."""
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


def record_tied_set(outcome: SearchOutcome, config: StudyConfig) -> list[str]:
    """Store and return the candidates not significantly worse than the winner (winner first).

    Each finished candidate's repeat values are compared with the winner's, paired, by the race's
    test at `--race-alpha` (study.stats.tied_with_winner); one repeat uses the binomial error of
    the selection split's size.
    """
    results = {
        name: [float(v) for v in trial.user_attrs.get(REPEAT_VALUES) or [score(trial)]]
        for name, trial in finished_trials(outcome.study.get_trials(deepcopy=False)).items()
        if score(trial) is not None
    }
    if not results:
        return []
    counts = study_records(outcome.study)[SPLITS][COUNTS]
    n_images = sum(counts["search_val" if config.select_on == "val" else "test"].values())
    tied = tied_with_winner(results, n_images, config.race_alpha)
    outcome.study.set_user_attr(TIED_WITH_WINNER, tied)
    return tied


def _check_same(config: StudyConfig, splits: Splits, attrs: dict) -> None:
    mismatch = resume_mismatch(config, attrs, splits.fingerprint())
    if mismatch == "images":
        raise StudyError(f"study {config.name!r} was made from other images (the splits differ); "
                         "restore the original data or pass a new --study-name")
    if mismatch:
        raise StudyError(f"study {config.name!r} already exists with another configuration ({mismatch}); "
                         "run with the original options to resume it, or pass a new --study-name")
