"""`python -m study.report`: the paper's figures and Table I from a storage, as one HTML file.

It only reads the storage (no model is built, nothing is trained), so it runs in seconds anywhere.

Example:
    python -m study.report --storage sqlite:///storage/studies.db --output storage/reports/report.html
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import math
import sys
from pathlib import Path

import numpy as np
import optuna
import plotly.graph_objects as go
import sqlalchemy.exc
from optuna.trial import FrozenTrial, TrialState

from study.config import StudyConfig
from study.errors import StudyError

EXIT_BAD_INPUT = 2
# The paper's column names (Table I), in its order; random-3 is the baseline of its Fig. 3.
LABELS = {
    "head": "Baseline I",
    "full": "Baseline II",
    "layer": "LW",
    "block": "BW",
    "top3": "BWT3",
    "top5": "BWT5",
    "window": "BWSW",
    "random": "Random-3",
}
STRATEGY_TEXT = {
    "head": "the classifier head only (Baseline I)",
    "full": "every layer (Baseline II)",
    "layer": "one weighted layer at a time (layer-wise, LW)",
    "block": "one block of weighted layers at a time (block-wise, BW)",
    "window": "one sliding window of consecutive weighted layers at a time (BWSW)",
    "random": "randomly drawn sets of weighted layers",
    "topk": "the top-ranked layers of the layer-wise study together",
}
COLORS = {"best": "#d62728", "complete": "#1f77b4", "pruned": "#9ecae1", "other": "#7f7f7f"}
FONT = dict(family="Arial, Helvetica, sans-serif", size=14)


@dataclasses.dataclass
class StudyRecord:
    """One study made by `python -m study.run`, as the report needs it."""

    name: str
    config: StudyConfig
    attrs: dict
    trials: list[FrozenTrial]

    @property
    def key(self) -> str:
        """`head`, `layer`, ..., `top3`: the strategy as a Table I column key."""
        return f"top{self.config.top_k}" if self.config.strategy == "topk" else self.config.strategy

    @property
    def label(self) -> str:
        return LABELS.get(self.key, self.key)

    @property
    def model(self) -> str:
        return self.config.model_label

    @property
    def dataset(self) -> str:
        return self.config.dataset_label

    @property
    def final(self) -> dict | None:
        return self.attrs.get("final")

    @property
    def candidates(self) -> list[dict]:
        return self.attrs.get("candidates", [])

    def finished(self) -> dict[str, FrozenTrial]:
        """The finished (COMPLETE, else PRUNED) trial of each candidate, duplicates of TPE left out."""
        chosen: dict[str, FrozenTrial] = {}
        for trial in self.trials:
            name = trial.params.get("candidate")
            if name is None or trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
                continue
            if "duplicate_of" in trial.user_attrs:
                continue
            if name not in chosen or chosen[name].state != TrialState.COMPLETE:
                chosen[name] = trial
        return chosen

    def best_candidate(self) -> str | None:
        complete = [t for t in self.finished().values() if t.state == TrialState.COMPLETE]
        return max(complete, key=lambda t: t.value).params["candidate"] if complete else None


def score(trial: FrozenTrial) -> float | None:
    """A trial's validation accuracy: its value, or for a pruned trial the last value it reported."""
    if trial.state == TrialState.COMPLETE:
        return float(trial.value)
    steps = trial.intermediate_values
    return float(steps[max(steps)]) if steps else None


def open_existing_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage at `url`, refusing a SQLite file that does not exist (a report creates nothing).

    Example:
        >>> storage = open_existing_storage("sqlite:///storage/studies.db")
    """
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise StudyError(f"--storage {url}: no such SQLite file; run `python -m study.run` first")
    try:
        return optuna.storages.RDBStorage(url)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
        reason = str(error).strip().splitlines()[0][:200]
        raise StudyError(f"--storage {url}: cannot open it ({reason})") from None


def record_of(study: optuna.Study) -> StudyRecord:
    """The report's view of one study (its user attrs and trials)."""
    attrs = study.user_attrs
    known = {f.name for f in dataclasses.fields(StudyConfig)}
    stored = {k: v for k, v in attrs["config"].items() if k in known}
    if stored.get("delimiters") is not None:
        stored["delimiters"] = tuple(stored["delimiters"])
    config = StudyConfig(**stored, study_name=study.study_name)
    return StudyRecord(study.study_name, config, attrs, study.get_trials(deepcopy=False))


def load_records(storage: str | optuna.storages.BaseStorage, names: list[str] | None = None) -> list[StudyRecord]:
    """Every study of `study.run` in the storage (or the named ones), in Table I order per model.

    Example:
        >>> [r.label for r in load_records("sqlite:///storage/studies.db")]
        ['Baseline I', 'Baseline II', 'LW', 'BW', 'BWT3', 'BWT5', 'BWSW', 'Random-3']
    """
    if isinstance(storage, str):
        storage = open_existing_storage(storage)
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    for name in names or []:
        if name not in summaries:
            raise StudyError(f"--study {name!r} is not in the storage; it holds {', '.join(sorted(summaries)) or 'no study'}")
        if "config" not in summaries[name].user_attrs:
            raise StudyError(f"--study {name!r} was not made by `python -m study.run` (it has no config)")
    chosen = names or [n for n, s in summaries.items() if "config" in s.user_attrs]
    records = [record_of(optuna.load_study(study_name=n, storage=storage)) for n in chosen]
    order = list(LABELS)
    return sorted(records, key=lambda r: (r.dataset, r.model, order.index(r.key) if r.key in order else 99, r.name))


def _style(fig: go.Figure, title: str, x: str, y: str, subtitle: str = "", height: int = 480) -> go.Figure:
    # A short title that fits a half-width dashboard panel; the details go to a smaller second line.
    text = f"{title}<br><sup>{subtitle}</sup>" if subtitle else title
    fig.update_layout(
        title=dict(text=text, x=0.01, xanchor="left"),
        template="simple_white",
        font=FONT,
        height=height,
        margin=dict(l=80, r=30, t=90, b=80),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
    )
    fig.update_xaxes(title_text=x, automargin=True)
    fig.update_yaxes(title_text=y, automargin=True, showgrid=True, gridcolor="#e5e5e5")
    return fig


def parameters_figure(record: StudyRecord) -> go.Figure:
    """Parameters of every backbone layer (the paper's Fig. 2), block ends as dashed lines.

    Example:
        >>> parameters_figure(load_records(url)[0]).write_html("params.html")
    """
    layers = record.attrs.get("layer_params") or []
    named = len(layers) <= 60  # beyond that the names are unreadable: number the layers
    fig = go.Figure(
        go.Bar(
            x=[layer["name"] for layer in layers] if named else list(range(1, len(layers) + 1)),
            y=[layer["params"] for layer in layers],
            marker_color=[COLORS["complete"] if layer["weighted"] else COLORS["other"] for layer in layers],
            customdata=[[layer["name"], layer["class"]] for layer in layers],
            hovertemplate="%{customdata[0]} (%{customdata[1]})<br>%{y:,} parameters<extra></extra>",
            showlegend=False,
        )
    )
    for name, color in (("weighted layer", COLORS["complete"]), ("no kernel", COLORS["other"])):
        fig.add_trace(go.Bar(x=[None], y=[None], marker_color=color, name=name))
    ends = [i for i, layer in enumerate(layers) if layer["ends_block"]]
    for i in ends:  # category axes place bar i at i; numbered axes at i + 1
        fig.add_vline(x=i if named else i + 1, line_dash="dash", line_color=COLORS["best"], line_width=1.5, opacity=0.8)
    if ends:  # a legend entry for the dashed lines
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="block boundary",
                                 line=dict(dash="dash", color=COLORS["best"])))
    weighted = sum(1 for layer in layers if layer["weighted"])
    total = sum(layer["params"] for layer in layers)
    _style(fig, f"{record.model}: parameters per layer", "layer (input end first)", "parameters",
           f"{len(layers)} layers, {weighted} weighted, {total:,} parameters; dashed: the {len(ends)} block boundaries")
    fig.update_yaxes(tickformat="~s")
    fig.update_layout(barmode="overlay")  # the legend-only bars must not take a slot next to real ones
    if named:
        fig.update_xaxes(type="category", tickangle=-60, tickfont=dict(size=11))
        fig.update_layout(height=560)
    return fig


def candidates_figure(record: StudyRecord, baselines: dict[str, float] | None = None) -> go.Figure:
    """Validation accuracy of every candidate (the paper's Figs. 4-6), the best one highlighted.

    `baselines` (label -> validation accuracy) draws horizontal reference lines (Fig. 7).

    Example:
        >>> candidates_figure(record, {"Baseline I": 0.71}).show()
    """
    finished = record.finished()
    best = record.best_candidate()
    names = [c["name"] for c in record.candidates if c["name"] in finished]
    values = [score(finished[n]) for n in names]
    colors = [
        COLORS["best"] if n == best else COLORS["pruned"] if finished[n].state == TrialState.PRUNED else COLORS["complete"]
        for n in names
    ]
    short = [_tick(n) for n in names]
    fig = go.Figure(
        go.Bar(
            x=short,
            y=values,
            marker_color=colors,
            customdata=[[n, finished[n].state.name.lower(), finished[n].number] for n in names],
            hovertemplate="%{customdata[0]}<br>val accuracy %{y:.4f} (%{customdata[1]}, trial %{customdata[2]})<extra></extra>",
            showlegend=False,
        )
    )
    for label, color in (("best", COLORS["best"]), ("complete", COLORS["complete"]), ("pruned", COLORS["pruned"])):
        if label == "pruned" and COLORS["pruned"] not in colors:
            continue
        fig.add_trace(go.Bar(x=[None], y=[None], marker_color=color, name=label))
    for i, (label, value) in enumerate((baselines or {}).items()):
        # Legend entries, not annotations: two baselines with close values would overprint.
        dash = ["dot", "dash", "dashdot"][i % 3]
        fig.add_hline(y=value, line_dash=dash, line_color="#444", line_width=1.5)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(dash=dash, color="#444"),
                                 name=f"{label} {value:.3f}"))
    if best is not None:
        value = score(finished[best])
        fig.add_annotation(x=short[names.index(best)], y=value, text=f"best {value:.3f}", showarrow=True,
                           arrowhead=2, ay=-30, font=dict(color=COLORS["best"]))
    split = "search-val" if record.config.select_on == "val" else "test"
    _style(fig, f"{record.model} {record.label}: validation accuracy per candidate", "candidate (input end first)",
           "validation accuracy", f"{len(names)} candidates, trained on the search-train split, scored on {split}; "
           "best in red")
    fig.update_xaxes(tickangle=-45 if len(names) > 8 else 0, type="category")
    fig.update_yaxes(range=[0, 1.05])
    fig.update_layout(barmode="overlay")
    return fig


def _tick(name: str) -> str:
    """A short axis label: `block5_conv3` for `layer-013:block5_conv3`, `block-05` for a long block."""
    prefix, _, layers = name.partition(":")
    return layers if layers and len(layers) <= 16 else prefix


def learning_curves_figure(record: StudyRecord) -> go.Figure:
    """Validation accuracy per epoch of every trial; the best candidate thick, pruned trials dashed."""
    best = record.best_candidate()
    fig = go.Figure()
    few = len(record.candidates) <= 8  # name every curve; else only the best and "other candidates"
    other_shown = False
    for name, trial in sorted(record.finished().items(), key=lambda item: item[0] == best):  # best on top
        steps = sorted(trial.intermediate_values)
        is_best = name == best
        legend = is_best or few or not other_shown
        other_shown = other_shown or not (is_best or few)
        fig.add_trace(go.Scatter(
            x=steps,
            y=[trial.intermediate_values[s] for s in steps],
            mode="lines+markers",
            name=name if is_best or few else "other candidates",
            showlegend=legend,
            line=dict(width=4 if is_best else 1.2, color=COLORS["best"] if is_best else COLORS["other"],
                      dash="dash" if trial.state == TrialState.PRUNED else "solid"),
            marker=dict(size=7 if is_best else 4),
            opacity=1.0 if is_best else 0.6,
            hovertemplate=f"{html.escape(name)}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>",
        ))
    _style(fig, f"{record.model} {record.label}: learning curves", "epoch", "validation accuracy",
           "validation accuracy after each epoch; best candidate in red, pruned trials dashed")
    fig.update_xaxes(dtick=1)
    fig.update_yaxes(range=[0, 1.05])
    return fig


def final_figure(records: list[StudyRecord]) -> go.Figure:
    """Final test accuracy per strategy (70% train, 30% test; Figs. 8-10): mean, ± std bars, each seed."""
    order = list(LABELS)
    done = sorted((r for r in records if r.final), key=lambda r: order.index(r.key) if r.key in order else 99)
    labels = [r.label for r in done]
    means = [r.final["mean"] for r in done]
    stds = [math.sqrt(r.final["variance"]) for r in done]
    best = int(np.argmax(means)) if means else -1
    fig = go.Figure(go.Bar(
        x=labels,
        y=means,
        error_y=dict(type="data", array=stds, visible=True, thickness=1.5, width=8),
        marker_color=[COLORS["best"] if i == best else COLORS["complete"] for i in range(len(done))],
        customdata=[[r.final["candidate"], len(r.final["test_accuracy"])] for r in done],
        hovertemplate="%{x}: %{y:.4f}<br>%{customdata[0]}<br>%{customdata[1]} seed(s)<extra></extra>",
        showlegend=False,
    ))
    for name, color in (("mean ± std", COLORS["complete"]), ("best mean", COLORS["best"])):
        fig.add_trace(go.Bar(x=[None], y=[None], marker_color=color, name=name))
    fig.add_trace(go.Scatter(
        x=[r.label for r in done for _ in r.final["test_accuracy"]],
        y=[a for r in done for a in r.final["test_accuracy"]],
        mode="markers", name="one seed", marker=dict(color="black", size=7, symbol="circle-open"),
    ))
    seeds = sorted({len(r.final["test_accuracy"]) for r in done})
    model = done[0].model if done else ""
    _style(fig, f"{model}: final test accuracy per strategy", "strategy", "test accuracy",
           "each winner retrained on 70%, tested on 30%; "
           f"mean ± std over {'/'.join(map(str, seeds))} seed(s)")
    fig.update_yaxes(range=[0, 1.05])
    fig.update_layout(barmode="overlay")
    return fig


def table_rows(records: list[StudyRecord]) -> tuple[list[str], list[tuple[str, list[float | None]]]]:
    """Table I: one row per model (mean final test accuracy per strategy), then Mean and Variance rows.

    Variance is across models with ddof=1, as the paper's Table I (checked against its numbers).

    Example:
        >>> columns, rows = table_rows(load_records(url))
        >>> rows[-1][0]
        'Variance'
    """
    present = {r.key for r in records if r.final}
    columns = [LABELS[k] for k in LABELS if k in present]
    cells: dict[str, dict[str, float]] = {}
    for r in records:
        if r.final:
            cells.setdefault(f"{r.model} ({r.dataset})", {})[r.label] = r.final["mean"]
    rows = [(model, [values.get(c) for c in columns]) for model, values in cells.items()]
    by_column = [[v for _, values in rows if (v := values[i]) is not None] for i in range(len(columns))]
    rows.append(("Mean", [float(np.mean(v)) if v else None for v in by_column]))
    rows.append(("Variance", [float(np.var(v, ddof=1)) if len(v) > 1 else None for v in by_column]))
    return columns, rows


def table_html(records: list[StudyRecord]) -> str:
    """Table I as an HTML table; the best Mean and the lowest Variance in bold, as the paper."""
    columns, rows = table_rows(records)
    mean, variance = rows[-2][1], rows[-1][1]
    bold = {
        "Mean": _arg(mean, max),
        "Variance": _arg(variance, min),
    }
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["model", *columns])
    body = []
    for name, values in rows:
        cells = []
        for i, value in enumerate(values):
            text = "–" if value is None else f"{value:.6f}"
            cells.append(f"<td><b>{text}</b></td>" if bold.get(name) == i else f"<td>{text}</td>")
        body.append(f"<tr class='{'summary' if name in bold else 'model'}'><th>{html.escape(name)}</th>{''.join(cells)}</tr>")
    return f"<table class='table1'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _arg(values: list[float | None], pick) -> int | None:
    present = [(v, i) for i, v in enumerate(values) if v is not None]
    return pick(present)[1] if present else None


def figures(records: list[StudyRecord]) -> list[tuple[str, go.Figure]]:
    """Every figure of the report, in order, with a section title: per model, then per strategy."""
    out: list[tuple[str, go.Figure]] = []
    groups: dict[tuple[str, str], list[StudyRecord]] = {}
    for r in records:
        groups.setdefault((r.dataset, r.model), []).append(r)
    for (dataset, model), group in groups.items():
        with_layers = next((r for r in group if r.attrs.get("layer_params")), None)
        block = next((r for r in group if r.key == "block" and r.attrs.get("layer_params")), with_layers)
        if block is not None:
            out.append((f"{model} on {dataset}: parameters per layer", parameters_figure(block)))
        if any(r.final for r in group):
            out.append((f"{model} on {dataset}: final test accuracy per strategy", final_figure(group)))
        baselines = {r.label: score(t) for r in group if r.key in ("head", "full")
                     for t in r.finished().values() if score(t) is not None}
        for r in group:
            if not r.finished():
                continue
            if r.key not in ("head", "full"):
                out.append((f"{r.name}: validation accuracy per candidate", candidates_figure(r, baselines)))
            out.append((f"{r.name}: learning curves", learning_curves_figure(r)))
    return out


def summary_text(record: StudyRecord) -> str:
    """One sentence per study: what was searched, the winner, its test accuracy."""
    finished = record.finished()
    best = record.best_candidate()
    text = (f"{record.name}: {len(record.candidates)} candidate(s), {STRATEGY_TEXT.get(record.config.strategy, '')}; "
            f"{len(finished)} finished")
    if best is not None:
        text += f"; best {best} (validation accuracy {score(finished[best]):.4f})"
    final = record.final
    if final:
        text += (f"; test accuracy {final['mean']:.4f} ± {math.sqrt(final['variance']):.4f} "
                 f"over {len(final['test_accuracy'])} seed(s)")
    return text + "."


def build_report(records: list[StudyRecord], title: str = "Block-wise fine-tuning report") -> str:
    """The whole report as one self-contained HTML page (plotly.js inlined once)."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if not records:
        parts.append("<p>The storage holds no study made by <code>python -m study.run</code>.</p>")
    else:
        parts.append("<h2>Table I: final test accuracy (mean over seeds) per model and strategy</h2>")
        parts.append(table_html(records))
        parts.append("<p class='note'>Each cell: the strategy's best candidate retrained on the 70% pool and "
                     "tested on the held-out 30%, mean over seeds. Mean and Variance rows are across models "
                     "(variance with ddof=1, as the paper).</p>")
        parts.append("<h2>Studies</h2><ul>" + "".join(f"<li>{html.escape(summary_text(r))}</li>" for r in records) + "</ul>")
    first = True
    for title_text, fig in figures(records):
        parts.append(f"<h2>{html.escape(title_text)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first, config={"displaylogo": False}))
        first = False
    style = ("body{font-family:Arial,Helvetica,sans-serif;max-width:1200px;margin:2em auto;color:#222}"
             "table.table1{border-collapse:collapse;margin:1em 0}"
             ".table1 th,.table1 td{border:1px solid #bbb;padding:4px 10px;text-align:right}"
             ".table1 thead th{background:#f0f0f0}.table1 tr.summary{background:#fafafa}"
             "h2{margin-top:2em;font-size:1.2em}.note{color:#555;font-size:0.9em}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_report(storage: str, output: str, names: list[str] | None = None) -> Path:
    """Read the storage and write the HTML report; returns its path.

    Example:
        >>> write_report("sqlite:///storage/studies.db", "storage/reports/report.html")
    """
    page = build_report(load_records(storage, names))
    path = Path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as error:
        raise StudyError(f"--output {output}: cannot write it ({error.strerror})") from None
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m study.report`: returns the exit code (2 with a one-line error on bad input)."""
    parser = argparse.ArgumentParser(prog="python -m study.report", description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=StudyConfig.storage, help="Optuna storage URL")
    parser.add_argument("--study", action="append", help="a study to include (repeatable; default: all)")
    parser.add_argument("--output", default="storage/reports/report.html", help="the HTML file to write")
    args = parser.parse_args(argv)
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        path = write_report(args.storage, args.output, args.study)
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
