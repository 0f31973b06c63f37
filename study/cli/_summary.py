"""The end of a run: what came out of each study, and the commands that show it."""

from __future__ import annotations

import math
import shlex

import optuna

from study.cli._report import DEFAULT_HTML
from study.runtime import process_local
from study.search import best_so_far, best_text, is_pair
from study.storage import (
    ARTIFACT_ID,
    INTERVAL_95,
    MEAN,
    PARAM,
    SELECT,
    STANDARD_ERROR,
    TEST_ACCURACY,
    TIED_WITH_WINNER,
    TRIAL,
    VARIANCE,
    final_candidate,
    score,
)


def study_summary(name: str, study: optuna.Study, final: dict | None, left: int, total: int,
                  model_path: str, decision: str = "") -> list[str]:
    """Lines about one study: the winner with its uncertainty, the test accuracy, the saved model,
    then `decision` (what to fine-tune, `study.report.choice_text`) when given."""
    if left:
        best = best_so_far(study)
        return [f"{name}: search unfinished, {left} of {total} candidates left ({best_text(best)}); "
                "run the same command to continue"]
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    winner = final_candidate(final)
    chosen = trials.get(final.get(TRIAL)) if final else None
    if chosen is None:
        best = best_so_far(study)
        chosen = trials.get(best[1]) if best else None
        winner = chosen.params.get(PARAM) if chosen else None
    lines = [f"{name}: {total} candidate(s) searched"]
    if chosen is None:
        return lines + ["  no complete trial: nothing to retrain"]
    if decision:
        lines.append(f"  decision: {decision}")
    error, interval = chosen.user_attrs.get(STANDARD_ERROR), chosen.user_attrs.get(INTERVAL_95)
    uncertainty = ""
    if isinstance(error, (int, float)):
        uncertainty += f" ± {error:.4f} (standard error)"
    if is_pair(interval):
        uncertainty += f", 95% interval {interval[0]:.4f}-{interval[1]:.4f}"
    role = "winner" if (final or {}).get(SELECT, "best") == "best" else f"chosen (--select {final[SELECT]})"
    lines.append(f"  {role}: {winner} (#{chosen.number}), validation accuracy {score(chosen):.4f}{uncertainty}")
    tied = [n for n in study.user_attrs.get(TIED_WITH_WINNER) or [] if n != winner]
    if tied:
        lines.append(f"  statistically tied with it (not significantly worse, paired t-test): {', '.join(tied)}")
    if not final:
        return lines + ["  retrained: not yet (--skip-final); run without it to retrain and test the winner"]
    runs = final.get(TEST_ACCURACY, [])
    spread = f" ± {math.sqrt(final[VARIANCE]):.4f} (mean ± std over {len(runs)} seeds)" if len(runs) > 1 else ""
    lines.append(f"  test accuracy {final[MEAN]:.4f}{spread}: the winner retrained on the pool, tested on the test split")
    if final.get(ARTIFACT_ID):
        lines.append(f"  saved model: {model_path} (raw RGB pixels in, class probabilities out: "
                     "keras.models.load_model(path).predict(images); class names in the .json beside it)")
    return lines



def next_steps(storage: str, artifact_dir: str) -> list[str]:
    """The commands that show the results: optuna-dashboard and the HTML report (none for a storage
    that lived in this process only: it is gone when the run ends).

    Example:
        >>> next_steps("sqlite:///:memory:", "storage/artifacts")[1]  # doctest: +ELLIPSIS
        '  the study was in memory (--storage sqlite:///:memory:) and ends with this run; to keep it ...'
    """
    if process_local(storage):
        return ["next:", f"  the study was in memory (--storage {storage}) and ends with this run; to keep it for "
                         "optuna-dashboard and the report, pass a file: --storage sqlite:///storage/studies.db"]
    return [
        "next:",
        f"  optuna-dashboard {shlex.quote(storage)} --artifact-dir {shlex.quote(artifact_dir)}",
        f"  python -m study.report --storage {shlex.quote(storage)} --output {DEFAULT_HTML}",
    ]
