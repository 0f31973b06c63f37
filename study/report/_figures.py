"""Which figures the report and the dashboard show (or why one is not drawn), and their files:
`export_figures` writes PNG and SVG (kaleido with Chrome or Chromium), or HTML and plotly JSON with a
one-line note when no browser is there (`png_export_problem` decides, at once).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import plotly.graph_objects as go

from study.report._decision import BASELINES, candidate_label, fmt
from study.report._plots import (
    candidates_figure,
    final_figure,
    learning_curves_figure,
    mean_curve,
    parameters_figure,
)
from study.report._studies import StudyRecord
from study.runtime import first_line
from study.storage import LAYER_PARAMS

EXPORT_WIDTH = 1200  # pixels of an exported figure (PNG at scale 2; SVG is vector)


@dataclasses.dataclass
class Section:
    """One figure of the report or the dashboard, or why it is not drawn.

    `id` is stable (the dashboard overwrites its plot by id; export file names start with it).
    """

    id: str
    title: str
    figure: go.Figure | None
    why_not: str = ""



def study_sections(record: StudyRecord, baselines: dict[str, float] | None = None) -> list[Section]:
    """The figures of one study (per candidate, learning curves), or why each is not drawn."""
    if not record.finished():
        return [Section("validation-accuracy-per-candidate", f"{record.name}: accuracy per candidate", None,
                        "no candidate has finished yet")]
    sections = []
    title = f"{record.name}: validation accuracy per candidate"
    count = len(record.finished())
    if count < 2:
        only = candidate_label(next(iter(record.finished())))
        sections.append(Section("validation-accuracy-per-candidate", title, None,
                                f"the study has one candidate ({only}): a figure of one point adds nothing"))
    else:
        sections.append(Section("validation-accuracy-per-candidate", title, candidates_figure(record, baselines)))
    title = f"{record.name}: learning curves"
    with_curves = [n for n in record.finished() if record.curves(n)]
    distinct = {tuple(round(v, 6) for v in mean_curve(record.curves(n))[0]) for n in with_curves}
    if len(distinct) >= 2:
        sections.append(Section("learning-curves", title, learning_curves_figure(record)))
    elif len(with_curves) >= 2:
        sections.append(Section("learning-curves", title, None,
                                f"all {len(with_curves)} candidates have the same curve, "
                                + ", ".join(fmt(v) for v in next(iter(distinct))) + " after each epoch"))
    elif count >= 2:
        sections.append(Section("learning-curves", title, None,
                                "no per-epoch validation accuracy is stored for these trials"))
    else:
        sections.append(Section("learning-curves", title, None, "one candidate: a single curve adds nothing"))
    return sections



def model_sections(group: list[StudyRecord]) -> list[Section]:
    """The figures of one model's studies together: parameters per layer, final accuracy per strategy."""
    sections = []
    first = group[0]
    where = f"{first.model} on {first.dataset}"
    with_layers = [r for r in group if r.attrs.get(LAYER_PARAMS)]
    source = next((r for r in with_layers if r.key == "block"), with_layers[0] if with_layers else None)
    if source is not None:
        sections.append(Section("parameters-per-layer", f"{where}: parameters per layer", parameters_figure(source)))
    finals = [r for r in group if r.final]
    title = f"{where}: final test accuracy per strategy"
    if len(finals) >= 2:
        sections.append(Section("test-accuracy-per-strategy", title, final_figure(group)))
    elif finals:
        sections.append(Section("test-accuracy-per-strategy", title, None,
                                f"only {finals[0].label} has a final stage yet (see Table I)"))
    return sections



def groups(records: list[StudyRecord]) -> dict[tuple[str, str], list[StudyRecord]]:
    """The records per (dataset, model), in the order given."""
    out: dict[tuple[str, str], list[StudyRecord]] = {}
    for r in records:
        out.setdefault((r.dataset, r.model), []).append(r)
    return out



def baseline_values(group: list[StudyRecord]) -> dict[str, float]:
    """Validation accuracy of Baseline I and II (their one candidate) in a model's studies, by label."""
    out = {}
    for r in group:
        if r.key in BASELINES and r.winner() is not None:
            out[r.label] = r.summary(r.winner()).mean
    return out



def figure_sections(records: list[StudyRecord]) -> list[Section]:
    """Every figure of the report, in order, or why it is not drawn: per model, then per study."""
    out: list[Section] = []
    for group in groups(records).values():
        out += model_sections(group)
        baselines = baseline_values(group)
        for r in group:
            if r.finished() or r.final:
                mine = {k: v for k, v in baselines.items() if k != r.label}
                out += study_sections(r, mine)
    return out



def figures(records: list[StudyRecord]) -> list[tuple[str, go.Figure]]:
    """Every figure of the report that is drawn, in order, with a section title."""
    return [(s.title, s.figure) for s in figure_sections(records) if s.figure is not None]



def figure_digest(fig: go.Figure) -> str:
    """8 hex digits that change when the figure's content does (dashboard artifact names)."""
    return hashlib.sha256(fig.to_json().encode()).hexdigest()[:8]



def file_stem(title: str) -> str:
    """A file name from a section title: 'synthetic-tiny-block: learning curves' -> 'synthetic-tiny-block-learning-curves'."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", title).strip("-.").lower() or "figure"



def png_export_problem() -> str | None:
    """Why figures cannot be rendered to PNG or SVG here, None if they can: decided at once, from
    where kaleido looks for a browser, without starting one. The report (`--figures`), the
    dashboard's PNG artifacts and the notebook all ask this first.

    Kaleido 1.x renders with Chrome or Chromium, found by choreographer's `Chromium.find_browser`:
    a browser kaleido downloaded itself (`kaleido.get_chrome`, `plotly_get_chrome`), BROWSER_PATH,
    the Chrome, Chromium, Edge, Brave or Vivaldi names on PATH, their usual install paths. That
    search is asked here, so the two never disagree. Without a browser, kaleido's sync server
    (`kaleido.start_sync_server`, the notebook's fast path) waits forever for a browser thread that
    died at once.

    Example:
        >>> png_export_problem() is None or png_export_problem().startswith("PNG and SVG need")
        True
    """
    try:
        import kaleido  # noqa: F401  (plotly.io renders through it)
        from choreographer.browsers import Chromium
    except ImportError as error:
        return f"PNG and SVG need kaleido ({error.name} is not installed; pip install kaleido)"
    found = Chromium.find_browser(skip_local=False)
    if found and Path(found).is_file():
        return None
    where = f"BROWSER_PATH={found} is not a file" if found else "none on PATH, in the usual places or downloaded by kaleido"
    return f"PNG and SVG need Chrome or Chromium for kaleido ({where}): apt-get install chromium, or plotly_get_chrome"


def write_images(figs: list[go.Figure], paths: list[Path]) -> str | None:
    """Render figures to PNG/SVG files (format from the suffix) with kaleido; None, or why it failed.

    One browser renders every figure (far faster than one `write_image` each). Kaleido needs Chrome
    or Chromium on this machine (`apt-get install chromium`); without one this returns at once
    (`png_export_problem`).
    """
    if not figs:
        return None
    problem = png_export_problem()
    if problem is not None:
        return problem
    import plotly.io

    try:
        plotly.io.write_images(figs, paths, width=EXPORT_WIDTH, height=[fig.layout.height or 500 for fig in figs],
                               scale=[2 if Path(p).suffix == ".png" else 1 for p in paths])
    except Exception as error:  # kaleido missing, or no Chrome/Chromium on this machine
        first = first_line(error, limit=120)
        return f"PNG and SVG need kaleido and Chrome or Chromium (apt-get install chromium): {first}"
    return None



def export_figures(named: list[tuple[str, go.Figure]], folder: str | Path,
                   formats: tuple[str, ...] = ("png", "svg")) -> tuple[list[Path], str | None]:
    """Write every figure as PNG and SVG files under `folder`, plus its plotly JSON (reloadable).

    Without a browser for kaleido, each figure is written as HTML instead (plotly.js once, as
    `plotly.min.js` next to them) and the returned note says why; the JSON is always written.
    Returns the paths written and the note (None when PNG/SVG worked).

    Example:
        >>> paths, note = export_figures(figures(records), "storage/reports/figures")  # doctest: +SKIP
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stems = _unique([file_stem(title) for title, _ in named])
    written = []
    for stem, (_, fig) in zip(stems, named):
        path = folder / f"{stem}.json"
        path.write_text(fig.to_json(), encoding="utf-8")
        written.append(path)
    images = [(fig, folder / f"{stem}.{fmt_}") for stem, (_, fig) in zip(stems, named) for fmt_ in formats]
    note = write_images([f for f, _ in images], [p for _, p in images])
    if note is None:
        written += [p for _, p in images]
    else:
        for p in (p for _, p in images):
            p.unlink(missing_ok=True)  # a half-written image is worse than none
        for stem, (_, fig) in zip(stems, named):
            path = folder / f"{stem}.html"
            fig.write_html(path, include_plotlyjs="directory", config={"displaylogo": False})
            written.append(path)
    return written, note



def _unique(stems: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return out
