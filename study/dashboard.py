"""What optuna-dashboard shows for a study: a note in words and numbers, the report's figures as
interactive plots, and PNG copies of them as artifacts (next to the saved final models).

Everything is idempotent: notes and plots are overwritten in place, a PNG is uploaded once.

Example:
    publish([optuna.load_study(study_name="synthetic-vgg16-block", storage=url)], "storage/artifacts")
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import optuna
import optuna_dashboard

from study.records import CLASSES, LAYER_PARAMS, LAYERS, SPLITS, TRAINABLE_PARAMS, final_candidate, score
from study.report.figures import candidates_figure, final_figure, learning_curves_figure, parameters_figure
from study.report.studies import StudyRecord, record_of
from study.strategies import STRATEGIES


def study_note(record: StudyRecord) -> str:
    """The study's note (markdown): what was searched, the winner, its test accuracy.

    Example:
        >>> print(study_note(record_of(study)).splitlines()[0])  # doctest: +SKIP
        ## synthetic-vgg16-block: BW on vgg16 / synthetic
    """
    c = record.config
    finished = record.finished()
    pruned = sum(1 for t in finished.values() if t.state.name == "PRUNED")
    counts = record.attrs.get(SPLITS, {}).get("counts", {})
    size = {split: sum(per_class.values()) for split, per_class in counts.items()}
    select = "search-val" if c.select_on == "val" else "test"
    lines = [
        f"## {record.name}: {record.label} on {record.model} / {record.dataset}",
        "",
        f"**Searched:** {len(record.candidates)} candidate(s), {STRATEGIES[c.strategy].description}"
        + (f" (K = {c.top_k})" if c.strategy == "topk" else "")
        + f". Each was fine-tuned with the classifier head on the search-train split ({size.get('search_train', '?')} "
        f"images, {len(record.attrs.get(CLASSES, []))} classes) for {c.epochs} epochs (Adam {c.learning_rate:g}, "
        f"batch {c.batch_size}), everything else frozen, and scored on the {select} split "
        f"({size.get('search_val' if c.select_on == 'val' else 'test', '?')} images). "
        f"{len(finished)} finished ({pruned} pruned).",
    ]
    best = record.best_candidate()
    if best is not None:
        trial = finished[best]
        lines += ["", f"**Winner:** `{best}` ({len(trial.user_attrs.get(LAYERS, []))} layer(s), "
                      f"{trial.user_attrs.get(TRAINABLE_PARAMS, 0):,} trainable parameters with the head), "
                      f"validation accuracy **{score(trial):.4f}** (trial {trial.number})."]
    final = record.final
    if final:
        runs = ", ".join(f"seed {s}: {final['runs'][str(s)]['test_accuracy']:.4f}" for s in final["seeds"])
        lines += ["", f"**Final stage:** `{final_candidate(final)}` retrained on the 70% pool ({size.get('pool', '?')} "
                      f"images) and tested on the held-out 30% ({size.get('test', '?')} images): test accuracy "
                      f"**{final['mean']:.4f} ± {math.sqrt(final['variance']):.4f}** (mean ± std over "
                      f"{len(final['test_accuracy'])} seed(s), variance {final['variance']:.6f}); {runs}.",
                  "", f"The saved model is the artifact `{final.get('artifact_id', '-')}` (first seed); the "
                      "figures are in the plots below and as PNG artifacts."]
    else:
        lines += ["", "**Final stage:** not run yet."]
    return "\n".join(lines)


def study_figures(record: StudyRecord) -> dict[str, object]:
    """The report's figures of one study, by a stable id (the dashboard overwrites by id)."""
    figs = {}
    if record.attrs.get(LAYER_PARAMS):
        figs["parameters-per-layer"] = parameters_figure(record)
    if record.finished():
        if len(record.candidates) > 1:
            figs["validation-accuracy-per-candidate"] = candidates_figure(record)
        figs["learning-curves"] = learning_curves_figure(record)
    return figs


def publish(studies: list[optuna.Study], artifact_dir: str) -> None:
    """Write each study's note and plots; upload PNG copies of the plots that are not there yet.

    PNGs need kaleido and a Chrome or Chromium; without them the interactive plots are still saved.

    Example:
        >>> publish([study], "storage/artifacts")  # doctest: +SKIP
    """
    pending: list[tuple[optuna.Study, str, object]] = []
    records: list[StudyRecord] = []
    for study in studies:
        record = record_of(study)
        optuna_dashboard.save_note(study, study_note(record))
        present = {meta.filename for meta in optuna.artifacts.get_all_artifact_meta(study)}
        complete = {c["name"] for c in record.candidates} <= set(record.finished())
        for figure_id, fig in study_figures(record).items():
            optuna_dashboard.save_plotly_graph_object(study, fig, graph_object_id=figure_id)
            # A PNG is uploaded once, so only when the search is over and the figure is final.
            if complete and f"{figure_id}.png" not in present:
                pending.append((study, figure_id, fig))
        records.append(record)
    # The comparison across strategies belongs to every study of the model; it changes as more
    # finals land, so it is an overwritten plot only, never a PNG that would go stale.
    finals = [r for r in records if r.final]
    if len(finals) > 1:
        comparison = final_figure(finals)
        for study in studies:
            optuna_dashboard.save_plotly_graph_object(study, comparison, graph_object_id="test-accuracy-per-strategy")
    if pending:
        _upload_pngs(pending, artifact_dir)


def _upload_pngs(pending: list, artifact_dir: str) -> None:
    import plotly.io

    Path(artifact_dir).mkdir(parents=True, exist_ok=True)
    store = optuna.artifacts.FileSystemArtifactStore(artifact_dir)
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / f"{i}" / f"{figure_id}.png" for i, (_, figure_id, _) in enumerate(pending)]
        for path in paths:
            path.parent.mkdir()
        try:  # one browser for every figure: far faster than one write_image each
            plotly.io.write_images([fig for _, _, fig in pending], paths, width=1200, height=560, scale=2)
        except Exception as error:  # kaleido missing, or no Chrome/Chromium on this machine
            print(f"note: figures saved as dashboard plots only; PNG export needs kaleido and Chrome "
                  f"({str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__})",
                  file=sys.stderr)
            return
        for (study, _, _), path in zip(pending, paths):
            optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)
