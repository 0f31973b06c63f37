"""The search: the Optuna study of one configuration (created or resumed), its objective with repeats,
the samplers, the pruners (the race across repeats, per-epoch pruners), and worker processes.

Names load on first use, so that a worker process can import `study.search._workers` and load
TensorFlow quietly itself, before anything builds a model.

Example:
    >>> outcome = run_search(config)  # doctest: +SKIP
    >>> outcome.complete, outcome.study.best_trial.params["candidate"]  # doctest: +SKIP
"""

from study.runtime import lazy_exports

_NAMES = {
    "study.search._study": ("SearchOutcome", "SearchPlan", "check_outputs", "load_or_create_study", "prepare_search", "record_tied_set",
                            "run_search", "run_trials"),
    "study.search._objective": ("Objective", "repeat_splits"),
    "study.search._samplers": ("CLAIM_WAIT_SECONDS", "OrderedGridSampler", "make_sampler"),
    "study.search._pruners": ("PRUNERS", "ReportToTrial", "fit_or_prune", "out_of_memory_aware", "make_pruner"),
    "study.search._race": ("RacePruner", "stopped_in_round"),
    "study.search._rounds": ("candidate_values", "run_rounds"),
    "study.search._workers": ("run_workers", "split_trials"),
    "study.search._progress": ("SearchProgress", "best_so_far", "best_text", "is_pair"),
}


__getattr__ = lazy_exports("study.search", _NAMES)


__all__ = [name for names in _NAMES.values() for name in names]
