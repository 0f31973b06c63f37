"""Everything written to and read from an Optuna storage: the record schema (every key, at any depth),
the study records and trial readers, opening a storage safely, trial owners and the recovery of dead
trials, the artifact store, and the private Optuna internals this needs (one module).

Example:
    >>> open_storage("sqlite:///:memory:").get_all_studies()
    []
"""

from study.storage._artifacts import (
    artifact_store,
)
from study.storage._open import (
    check_destinations,
    engine_kwargs,
    masked,
    masked_args,
    open_existing_storage,
    open_storage,
    owned_trial,
    reading,
    share_between_processes,
    sqlite_path,
)
from study.storage._optuna_compat import (
    TemplateTrialStorage,
    enqueued_params,
    fail_trial,
    is_enqueued,
    set_trial_system_attr,
    set_trial_user_attr,
    storage_of,
    trial_id,
    trial_system_attrs,
)
from study.storage._owner import (
    this_process,
)
from study.storage._records import (
    add_final_run,
    final_candidate,
    made_by_tool,
    new_final,
    save_records,
    stored_records,
    study_records,
)
from study.storage._recovery import (
    claim_new_study,
    fail_dead_trials,
    interruption_note,
    is_abandoned,
    owner_is_dead,
    stamp_owner,
    wait_for_records,
    with_owner,
)
from study.storage._schema import (
    ARTIFACT_ID,
    BATCH_SIZE,
    BOOT,
    CANDIDATES,
    CLAIM,
    CLASS,
    CLASSES,
    CONFIG,
    COUNTS,
    CREATOR,
    DEVICE,
    DIGITS,
    DUPLICATE_OF,
    ENDS_BLOCK,
    EPOCH_VALUES,
    FAIL_REASON,
    FINAL,
    FINAL_TEST_ACCURACY,
    FINGERPRINT,
    HOST,
    INTERVAL_95,
    LARGE_RECORDS,
    LAYER_PARAMS,
    LAYERS,
    MEAN,
    NAME,
    OUT_OF_MEMORY,
    OWNER,
    PARAM,
    PARAMS,
    PEAK_MEMORY,
    PID,
    PREFIX_CACHE,
    PRUNE_REASON,
    RECORD_PREFIX,
    REPEAT_EPOCHS,
    REPEAT_VALUES,
    RUNS,
    SECONDS,
    SEEDS,
    SELECT_ON,
    SPLITS,
    STANDARD_ERROR,
    STARTED,
    TEST_ACCURACY,
    TIED_WITH_WINNER,
    TRAIN_ACCURACY,
    TRAINABLE_PARAMS,
    TRIAL,
    VARIANCE,
    WEIGHTED,
    rounded,
)
from study.storage._trials import (
    FINISHED,
    best_candidate,
    finished_candidates,
    finished_trials,
    knows_candidate,
    rank_key,
    running_candidates,
    score,
    trial_candidate,
)

__all__ = [
    "ARTIFACT_ID", "BATCH_SIZE", "BOOT", "CANDIDATES", "CLAIM", "CLASS", "CLASSES", "CONFIG", "COUNTS", "CREATOR",
    "DEVICE", "DIGITS", "DUPLICATE_OF", "ENDS_BLOCK", "EPOCH_VALUES", "FAIL_REASON", "FINAL",
    "FINAL_TEST_ACCURACY", "FINGERPRINT", "FINISHED", "HOST", "INTERVAL_95", "LARGE_RECORDS", "LAYERS",
    "LAYER_PARAMS", "MEAN", "NAME", "OUT_OF_MEMORY", "OWNER", "PARAM", "PARAMS", "PEAK_MEMORY", "PID",
    "PREFIX_CACHE", "PRUNE_REASON", "RECORD_PREFIX", "REPEAT_EPOCHS", "REPEAT_VALUES", "RUNS", "SECONDS", "SEEDS", "SELECT_ON",
    "SPLITS", "STANDARD_ERROR", "STARTED", "TEST_ACCURACY", "TIED_WITH_WINNER", "TRAINABLE_PARAMS",
    "TRAIN_ACCURACY", "TRIAL", "TemplateTrialStorage", "VARIANCE", "WEIGHTED", "add_final_run", "artifact_store",
    "best_candidate", "check_destinations", "claim_new_study", "engine_kwargs", "fail_dead_trials", "fail_trial",
    "final_candidate", "finished_candidates", "finished_trials", "enqueued_params", "interruption_note",
    "is_abandoned", "is_enqueued", "knows_candidate", "made_by_tool", "masked", "masked_args", "new_final",
    "open_existing_storage", "open_storage", "owned_trial", "owner_is_dead", "rank_key", "reading", "rounded",
    "running_candidates", "save_records", "score", "set_trial_system_attr", "set_trial_user_attr",
    "share_between_processes", "sqlite_path", "stamp_owner", "storage_of", "stored_records", "study_records",
    "this_process", "trial_candidate", "trial_id", "trial_system_attrs", "wait_for_records", "with_owner",
]
