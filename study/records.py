"""The record schema: every key the tool writes to an Optuna storage, and the readers of them.

Names are a contract: the report, the dashboard, the notebook, the benchmarks and users' scripts
read them. Each key is spelled here once; everything else imports it.

Example:
    >>> import optuna
    >>> study = optuna.create_study(direction="maximize")
    >>> study.enqueue_trial({PARAM: "block-01"}); study.optimize(lambda t: t.suggest_categorical(PARAM, ["block-01"]) and 0.5, n_trials=1)
    >>> finished_candidates(study)
    {'block-01'}
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from study.compat import storage_of

# --- the trial parameter -------------------------------------------------------------------------
PARAM = "candidate"  # categorical: the candidate's name

# --- trial user attrs ----------------------------------------------------------------------------
LAYERS = "layers"  # names of the backbone layers the candidate tunes
TRAINABLE_PARAMS = "trainable_params"  # trainable weights, head included
DEVICE = "device"  # GPU:0 or CPU
PEAK_MEMORY = "peak_memory_bytes"  # device peak on a GPU, process peak RSS on the CPU
SECONDS = "seconds"  # wall time of the trial
TRAIN_ACCURACY = "train_accuracy"  # training accuracy of the last epoch
BATCH_SIZE = "batch_size"  # the batch size used (halved after an out-of-memory retry)
PREFIX_CACHE = "prefix_cache"  # "on: ..." or "off: <reason>"
PRUNE_REASON = "prune_reason"  # why a trial was pruned, in words
DUPLICATE_OF = "duplicate_of"  # TPE/random drew a candidate already trained: that trial's number
REPEAT_VALUES = "repeat_values"  # validation accuracy of each repeat (--search-repeats), repeat order
STANDARD_ERROR = "standard_error"  # of the trial value (the mean of the repeats; binomial for one)
INTERVAL_95 = "interval_95"  # [low, high] 95% interval of the trial value
EPOCH_VALUES = "epoch_values"  # validation accuracy after every epoch, one list per repeat

# --- trial system attrs --------------------------------------------------------------------------
OWNER = "owner"  # {"host", "pid", "boot", "started"} of the process running the trial
CLAIM = "grid_candidate"  # the candidate the ordered grid gave this trial (None: nothing left)
FIXED_PARAMS = "fixed_params"  # Optuna's own: parameters of an enqueued trial
FAIL_REASON = "fail_reason"  # why the tool (not the objective) failed a trial
OUT_OF_MEMORY = "out_of_memory"  # the batch sizes that did not fit the device

# --- study user attrs ----------------------------------------------------------------------------
CONFIG = "config"  # StudyConfig.identity(); written last, so it marks a complete study record
SPLITS = "splits"  # {"counts": images per class per split, "fingerprint": hash}
CLASSES = "classes"  # class names, label order
CANDIDATES = "candidates"  # [{"name", "layers"}], input end first
LAYER_PARAMS = "layer_params"  # every backbone layer: name, class, params, weighted, ends_block
FINAL = "final"  # the final stage: candidate, runs per seed, seeds, test accuracies, mean, variance, artifact_id
FINAL_TEST_ACCURACY = "final_test_accuracy"  # the final stage's mean test accuracy, as a plain number
TIED_WITH_WINNER = "tied_with_winner"  # candidates not significantly worse than the winner, winner first

# --- study system attrs --------------------------------------------------------------------------
CREATOR = "creator"  # {"host", "pid", "boot", "started"} of the process that created the study (it writes
#                      the study's records, CONFIG last; others wait for them: study.recovery)

# The large study records (thousands of characters for a real backbone) are kept out of the user
# attrs, which `optuna studies`, `study.user_attrs` and optuna-dashboard show whole: they are study
# system attrs named RECORD_PREFIX + key. Read every record with `study_records`; studies made
# before this keep them as user attrs, which `study_records` reads the same way.
LARGE_RECORDS = (CONFIG, SPLITS, CLASSES, CANDIDATES, LAYER_PARAMS)
RECORD_PREFIX = "study:"

# Measured values (accuracies, losses) are stored and shown with this many significant digits:
# float32 arithmetic gives 0.6666666865348816 for 2/3. Accuracies are fractions k/n; two different
# ones differ by at least 1/n, far more than the rounding (5e-7 at most), so rounding never makes
# two different values equal, never splits equal ones and never reorders: rankings, pruning and
# the winner are what they would be unrounded, and the same run stores the same numbers.
DIGITS = 6

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def rounded(value: float | None, digits: int = DIGITS) -> float | None:
    """A measured value as it is stored and shown: `digits` significant digits (see DIGITS).

    Example:
        >>> rounded(0.6666666865348816), rounded(0.012345678901), rounded(None)
        (0.666667, 0.0123457, None)
    """
    return None if value is None else float(f"{float(value):.{digits}g}")


def study_records(study: optuna.Study) -> dict:
    """Every record of a study made by `python -m study.run`: its user attrs and the large records.

    The one reader of study records (the report, the dashboard, ranking, resume, the notebook):
    new studies keep LARGE_RECORDS as system attrs, older ones as user attrs; both read alike.

    Example:
        >>> study = optuna.create_study()
        >>> save_records(study, {CONFIG: {"epochs": 3}, FINAL_TEST_ACCURACY: 0.5})
        >>> study.user_attrs, study_records(study)[CONFIG]
        ({'final_test_accuracy': 0.5}, {'epochs': 3})
    """
    storage = storage_of(study)
    return stored_records(storage, storage.get_study_id_from_name(study.study_name))


def stored_records(storage: optuna.storages.BaseStorage, study_id: int) -> dict:
    """`study_records` of the study `study_id` of `storage` (for code that has no Study object)."""
    records = dict(storage.get_study_user_attrs(study_id))
    for key, value in storage.get_study_system_attrs(study_id).items():
        if key.startswith(RECORD_PREFIX):
            records[key[len(RECORD_PREFIX):]] = value
    return records


def save_records(study: optuna.Study, records: dict) -> None:
    """Write study records, in the given order: LARGE_RECORDS as system attrs, the rest as user attrs."""
    storage = storage_of(study)
    study_id = storage.get_study_id_from_name(study.study_name)
    for key, value in records.items():
        if key in LARGE_RECORDS:
            storage.set_study_system_attr(study_id, RECORD_PREFIX + key, value)
        else:
            study.set_user_attr(key, value)


def made_by_tool(records: dict) -> bool:
    """Whether `study_records` of a study say `python -m study.run` made it (its config is complete)."""
    return CONFIG in records


def new_final(candidate: str, trial: int) -> dict:
    """An empty `final` record for the winner `candidate` (the search's trial `trial`).

    Example:
        >>> final = add_final_run(new_final("block-02", 4), 0, 0.7500000298, 0.9, 12.3, "val")
        >>> final["mean"], final["seeds"], final["test_accuracy"]
        (0.75, [0], [0.75])
    """
    return {PARAM: candidate, "trial": trial, "runs": {}}


def add_final_run(final: dict, seed: int, test_accuracy: float, train_accuracy: float, seconds: float,
                  select_on: str) -> dict:
    """`final` with one more seed's result, and its summary (seeds, accuracies, mean, variance)."""
    final["runs"][str(seed)] = {"test_accuracy": rounded(test_accuracy), TRAIN_ACCURACY: rounded(train_accuracy),
                                SECONDS: seconds}
    accuracies = [run["test_accuracy"] for run in final["runs"].values()]
    final["seeds"] = [int(s) for s in final["runs"]]
    final["test_accuracy"] = accuracies
    final["mean"] = rounded(np.mean(accuracies))
    final["variance"] = rounded(np.var(accuracies))
    final["select_on"] = select_on
    return final


def final_candidate(final: dict | None) -> str | None:
    """The candidate a `final` record is about (None without one)."""
    return (final or {}).get(PARAM)


def trial_candidate(trial: FrozenTrial) -> str | None:
    """The candidate a trial trains: its parameter, or the grid's claim before it is suggested.

    Example:
        >>> trial_candidate(optuna.trial.create_trial(params={PARAM: "a"}, distributions={
        ...     PARAM: optuna.distributions.CategoricalDistribution(["a"])}, value=1.0))
        'a'
    """
    if PARAM in trial.params:
        return trial.params[PARAM]
    if CLAIM in trial.system_attrs:
        return trial.system_attrs[CLAIM]
    return trial.system_attrs.get(FIXED_PARAMS, {}).get(PARAM)  # enqueued with a fixed candidate


def knows_candidate(trial: FrozenTrial) -> bool:
    """Whether a trial knows its candidate (a claim, possibly None, or a fixed parameter)."""
    return PARAM in trial.params or CLAIM in trial.system_attrs or FIXED_PARAMS in trial.system_attrs


def finished_candidates(study: optuna.Study) -> set[str]:
    """Candidates that have a COMPLETE or PRUNED trial."""
    return {trial_candidate(t) for t in study.get_trials(deepcopy=False, states=FINISHED)} - {None}


def running_candidates(study: optuna.Study) -> set[str]:
    """Candidates whose trial is RUNNING (here or in another worker)."""
    states = (TrialState.RUNNING,)
    return {trial_candidate(t) for t in study.get_trials(deepcopy=False, states=states)} - {None}


def score(trial: FrozenTrial) -> float | None:
    """A trial's validation accuracy: its value; for a pruned trial the mean of the repeats it
    finished, or (one repeat, pruned by epoch) the last value it reported.

    Example:
        >>> score(optuna.trial.create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.4, 2: 0.5}))
        0.5
    """
    if trial.state == TrialState.COMPLETE:
        return float(trial.value)
    if trial.user_attrs.get(REPEAT_VALUES) and len(trial.user_attrs[REPEAT_VALUES]) > 1:
        return float(np.mean(trial.user_attrs[REPEAT_VALUES]))
    steps = trial.intermediate_values
    return float(steps[max(steps)]) if steps else None


def rank_key(trial: FrozenTrial) -> tuple[int, float]:
    """Sort key, best first: complete trials above pruned ones, each by score (higher first)."""
    value = score(trial)
    return (0 if trial.state == TrialState.COMPLETE else 1, float("inf") if value is None else -value)


def finished_trials(trials: list[FrozenTrial]) -> dict[str, FrozenTrial]:
    """The finished trial of each candidate (COMPLETE preferred over PRUNED), TPE's repeats left out.

    Example:
        >>> finished_trials([])
        {}
    """
    chosen: dict[str, FrozenTrial] = {}
    for trial in trials:
        name = trial.params.get(PARAM)
        if name is None or trial.state not in FINISHED or DUPLICATE_OF in trial.user_attrs:
            continue
        if name not in chosen or chosen[name].state != TrialState.COMPLETE:
            chosen[name] = trial
    return chosen


def best_candidate(trials: list[FrozenTrial]) -> str | None:
    """The candidate of the best COMPLETE trial (None if none is complete)."""
    complete = [t for t in finished_trials(trials).values() if t.state == TrialState.COMPLETE]
    return max(complete, key=lambda t: t.value).params[PARAM] if complete else None
