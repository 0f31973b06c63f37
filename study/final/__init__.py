"""The final stage: retrain the search's winner on the 70% pool, test it on the held-out 30%, and save
the model a user gets back (raw pixels in, class probabilities out, usable without this package).

Example:
    >>> final = run_final(config, run_search(config))  # doctest: +SKIP
    >>> final["mean"], saved_metadata(study.storage.final_model_path(config))["classes"]  # doctest: +SKIP
"""

from study.final._export import save_standalone, saved_metadata, standalone_model
from study.final._progress import FinalProgress
from study.final._stage import chosen_trial, run_final

__all__ = ["FinalProgress", "chosen_trial", "run_final", "save_standalone", "saved_metadata", "standalone_model"]
