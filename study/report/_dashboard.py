"""What optuna-dashboard shows for a study: a note in words and numbers, the report's figures as
interactive plots, and PNG copies of them as artifacts (next to the saved final models).

Notes and plots are overwritten in place. A PNG is named by its figure and a digest of the figure's
content (`learning-curves-3fa2b1c0.png`) and uploaded once: a figure that changes gets a new file
next to the old one, never a stale file under a current name.

- A study's own figures get their PNG once its search is complete.
- The per-strategy headline figure (final test accuracy per strategy) is a plot on every study of
  the model as soon as two have a final stage; its PNG is uploaded when every study of that model
  published together has its final stage (the protocol's finals are all in), to each of them.

Example:
    publish([optuna.load_study(study_name="synthetic-vgg16-block", storage=url)], "storage/artifacts")
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import optuna
import optuna_dashboard
import plotly.graph_objects as go

from study.candidates import STRATEGIES
from study.report._decision import (
    baselines_text,
    candidate_label,
    candidate_layers,
    choice_text,
    final_text,
    fmt,
    layers_text,
    search_text,
    seed_values,
)
from study.report._figures import Section, figure_digest, groups, model_sections, study_sections, write_images
from study.report._plots import parameters_figure, set_height
from study.report._studies import StudyRecord, record_of
from study.runtime import writing
from study.storage import ARTIFACT_ID, CLASSES, LAYERS, NAME, TRAINABLE_PARAMS, artifact_store, final_candidate

HEADLINE = "test-accuracy-per-strategy"
PANEL_HEIGHT = 450  # optuna-dashboard draws a plot in a 450 px high, half-width panel
PANEL_LAYER_NAMES = 24  # layer names a panel's parameters axis has room for


def study_note(record: StudyRecord, others: list[StudyRecord] | tuple = (), figures: list[Section] | None = None) -> str:
    """The study's note (markdown): what was searched, the decision in words, the final stage.

    `others` (the other studies of the storage) adds the comparison with Baseline I and II on the
    same seeds; `figures` (`dashboard_sections`) lists the figures and why some are not drawn.

    Example:
        >>> print(study_note(record_of(study)).splitlines()[0])  # doctest: +SKIP
        ## synthetic-vgg16-block: BW on vgg16 / synthetic
    """
    c = record.config
    finished = record.finished()
    pruned = sum(1 for t in finished.values() if t.state.name == "PRUNED")
    select = "search-val" if c.select_on == "val" else "test"
    repeats = record.repeats
    lines = [
        f"## {record.name}: {record.label} on {record.model} / {record.dataset}",
        "",
        f"**Searched:** {len(record.candidates)} candidate(s), {STRATEGIES[c.strategy].description}"
        + (f" (K = {c.top_k})" if c.strategy == "topk" else "")
        + f". Each was fine-tuned with the classifier head on the search-train split "
        f"({record.split_size('search_train') or '?'} images, {len(record.attrs.get(CLASSES, []))} classes) for "
        f"{c.epochs} epochs (Adam {c.learning_rate:g}, batch {c.batch_size}), everything else frozen, "
        + (f"{repeats} times on paired draws, " if repeats > 1 else "")
        + f"and scored on the {select} split ({record.selection_images or '?'} images). "
        f"{len(finished)} finished ({pruned} pruned).",
        "",
        f"**Decision:** {choice_text(record, others) or search_text(record)}",
        "",
        f"**Search:** {search_text(record)}",
    ]
    winner = record.winner()
    if winner is not None:
        trial = finished[winner]
        layers = layers_text(trial.user_attrs.get(LAYERS) or candidate_layers(record, winner))
        params = trial.user_attrs.get(TRAINABLE_PARAMS)
        size = "" if params is None else f"; {params:,} trainable parameters with the head"
        lines += ["", f"**Winner:** `{candidate_label(winner)}` ({layers}{size}), trial {trial.number}."]
    final = record.final
    if final:
        runs = ", ".join(f"seed {s}: {fmt(v)}" for s, v in sorted(seed_values(final).items()))
        lines += ["", f"**Final stage:** {final_text(record, prefix='')} Per seed: {runs}. Pool "
                      f"{record.split_size('pool') or '?'} images, held-out test split {record.split_size('test') or '?'} "
                      "images."]
        versus = baselines_text(record, others, lead="On")
        if versus:
            lines += ["", f"**Against the baselines:** {versus}"]
        lines += ["", f"The saved model of `{candidate_label(final_candidate(final))}` is the artifact "
                      f"`{final.get(ARTIFACT_ID, '-')}` (first seed)."]
    else:
        lines += ["", "**Final stage:** not run yet."]
    if figures:
        drawn = [s.title.split(": ", 1)[-1] for s in figures if s.figure is not None]
        skipped = [f"{s.title.split(': ', 1)[-1]}: {s.why_not}" for s in figures if s.figure is None]
        text = (f"**Figures:** {', '.join(drawn)}: interactive plots, and PNG copies in the artifacts once final."
                if drawn else "**Figures:** none yet.")
        if skipped:
            text += " Not drawn: " + "; ".join(skipped) + "."
        lines += ["", text]
    return "\n".join(lines)


def dashboard_sections(record: StudyRecord, group: list[StudyRecord] | None = None) -> list[Section]:
    """One study's figures on the dashboard (or why not drawn): parameters per layer, per candidate,
    learning curves, and with its model's `group` the per-strategy headline figure."""
    sections = [s for s in model_sections([record]) if s.id == "parameters-per-layer"]
    if record.finished():
        sections += study_sections(record)
    if group and len(group) > 1:  # published alone (e.g. after one final seed): the headline is left as it is
        sections += [s for s in model_sections(group) if s.id == HEADLINE]
    return sections


def publish(studies: list[optuna.Study], artifact_dir: str) -> None:
    """Write each study's note and plots; upload PNG copies of the plots that are not there yet.

    PNGs need kaleido and a Chrome or Chromium; without them the interactive plots are still saved
    and one line says so.

    Example:
        >>> publish([study], "storage/artifacts")  # doctest: +SKIP
    """
    records = [record_of(study) for study in studies]
    by_name = dict(zip((r.name for r in records), studies))
    pending: dict[str, tuple[object, list[optuna.Study]]] = {}  # PNG file name -> figure, studies to get it
    for group in groups(records).values():
        # The headline's PNG once every study of the model published here has its final stage.
        finals_in = all(r.final for r in group)
        for record in group:
            study = by_name[record.name]
            sections = dashboard_sections(record, group)
            optuna_dashboard.save_note(study, study_note(record, group, sections))
            present = {meta.filename for meta in optuna.artifacts.get_all_artifact_meta(study)}
            complete = {c[NAME] for c in record.candidates} <= set(record.finished())
            for section in sections:
                if section.figure is None:
                    continue
                optuna_dashboard.save_plotly_graph_object(study, _fit_panel(section, record), graph_object_id=section.id)
                final_ready = finals_in if section.id == HEADLINE else complete
                filename = f"{section.id}-{figure_digest(section.figure)}.png"
                if final_ready and filename not in present:
                    pending.setdefault(filename, (section.figure, []))[1].append(study)
    if pending:
        _upload_pngs(pending, artifact_dir)


def _fit_panel(section: Section, record: StudyRecord):
    """The figure as the dashboard draws it: a half-width panel 450 px high (fewer layer names)."""
    if section.id == "parameters-per-layer":
        fitted = parameters_figure(record, most=PANEL_LAYER_NAMES)
    else:
        fitted = go.Figure(section.figure)
    return set_height(fitted, PANEL_HEIGHT)


def _upload_pngs(pending: dict[str, tuple[object, list[optuna.Study]]], artifact_dir: str) -> None:
    store = artifact_store(artifact_dir)
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / filename for filename in pending]
        note = write_images([fig for fig, _ in pending.values()], paths)
        if note is not None:
            print(f"note: figures saved as dashboard plots only; {note}", file=sys.stderr)
            return
        for path, (_, studies) in zip(paths, pending.values()):
            for study in studies:
                with writing(artifact_dir):
                    optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)


def show_final_stage(study: optuna.Study, done: int, total: int) -> None:
    """optuna-dashboard shows the final stage as it goes: the study's note after every seed (the
    command line passes this to the final stage as `after_seed`)."""
    note = study_note(record_of(study))
    if done < total:
        note += f"\n\n_Final stage running: {done} of {total} seed(s) done._"
    optuna_dashboard.save_note(study, note)
