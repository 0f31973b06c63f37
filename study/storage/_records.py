"""The study records: the one reader and writer of a study's records, and the final stage's record.

Example:
    >>> study = optuna.create_study()
    >>> save_records(study, {FINAL_TEST_ACCURACY: 0.5}); study_records(study)
    {'final_test_accuracy': 0.5}
"""

from __future__ import annotations

import numpy as np
import optuna

from study.storage._optuna_compat import storage_of
from study.storage._schema import (
    CONFIG,
    FINAL_TEST_ACCURACY,  # noqa: F401 (the examples)
    FINGERPRINT,
    LARGE_RECORDS,
    MEAN,
    PARAM,
    RECORD_PREFIX,
    RUNS,
    SECONDS,
    SEEDS,
    SELECT_ON,
    SPLITS,
    TEST_ACCURACY,
    TRAIN_ACCURACY,
    TRIAL,
    VARIANCE,
    rounded,
)


def study_records(study: optuna.Study) -> dict:
    """Every record of a study made by `python -m study.run`: its user attrs and the large records.

    The one reader of study records (the report, the dashboard, ranking, resume, the notebook):
    LARGE_RECORDS are kept as system attrs, the others as user attrs; both read alike.

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



def resume_mismatch(config, records: dict, fingerprint: str) -> str | None:
    """Why a study's stored records do not match `config` (a StudyConfig) and images of `fingerprint`: the
    differing options ("epochs: 50 -> 3; ..."), "images" when the splits differ, None when they match.

    Example:
        >>> from study.config import StudyConfig
        >>> config = StudyConfig(epochs=3)
        >>> resume_mismatch(config, {CONFIG: StudyConfig().identity(), SPLITS: {FINGERPRINT: "f"}}, "f")
        'epochs: 50 -> 3'
        >>> resume_mismatch(config, {CONFIG: config.identity(), SPLITS: {FINGERPRINT: "f"}}, "g")
        'images'
    """
    changed = config.differences(records[CONFIG])
    if changed:
        return "; ".join(changed)
    return "images" if records.get(SPLITS, {}).get(FINGERPRINT) != fingerprint else None


def made_by_tool(records: dict) -> bool:
    """Whether `study_records` of a study say `python -m study.run` made it (its config is complete)."""
    return CONFIG in records



def new_final(candidate: str, trial: int) -> dict:
    """An empty `final` record for the winner `candidate` (the search's trial `trial`).

    Example:
        >>> final = add_final_run(new_final("block-02", 4), 0, 0.7500000298, 0.9, 12.3, "val")
        >>> final[MEAN], final[SEEDS], final[TEST_ACCURACY]
        (0.75, [0], [0.75])
    """
    return {PARAM: candidate, TRIAL: trial, RUNS: {}}



def add_final_run(final: dict, seed: int, test_accuracy: float, train_accuracy: float, seconds: float,
                  select_on: str) -> dict:
    """`final` with one more seed's result, and its summary (seeds, accuracies, mean, variance)."""
    final[RUNS][str(seed)] = {TEST_ACCURACY: rounded(test_accuracy), TRAIN_ACCURACY: rounded(train_accuracy),
                              SECONDS: seconds}
    accuracies = [run[TEST_ACCURACY] for run in final[RUNS].values()]
    final[SEEDS] = [int(s) for s in final[RUNS]]
    final[TEST_ACCURACY] = accuracies
    final[MEAN] = rounded(np.mean(accuracies))
    final[VARIANCE] = rounded(np.var(accuracies))
    final[SELECT_ON] = select_on
    return final



def final_candidate(final: dict | None) -> str | None:
    """The candidate a `final` record is about (None without one)."""
    return (final or {}).get(PARAM)
