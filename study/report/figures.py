"""The report's figures (the paper's Figs. 2 and 4-10) as plotly figures, from study records only."""

from __future__ import annotations

import html
import math

import numpy as np
import plotly.graph_objects as go
from optuna.trial import TrialState

from study.records import LAYER_PARAMS, final_candidate, score
from study.report.studies import StudyRecord
from study.strategies import column_position

COLORS = {"best": "#d62728", "complete": "#1f77b4", "pruned": "#9ecae1", "other": "#7f7f7f"}
FONT = dict(family="Arial, Helvetica, sans-serif", size=14)


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
        >>> parameters_figure(load_records(url)[0]).write_html("params.html")  # doctest: +SKIP
    """
    layers = record.attrs.get(LAYER_PARAMS) or []
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
        >>> candidates_figure(record, {"Baseline I": 0.71}).show()  # doctest: +SKIP
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
    done = sorted((r for r in records if r.final), key=lambda r: column_position(r.key))
    labels = [r.label for r in done]
    means = [r.final["mean"] for r in done]
    stds = [math.sqrt(r.final["variance"]) for r in done]
    best = int(np.argmax(means)) if means else -1
    fig = go.Figure(go.Bar(
        x=labels,
        y=means,
        error_y=dict(type="data", array=stds, visible=True, thickness=1.5, width=8),
        marker_color=[COLORS["best"] if i == best else COLORS["complete"] for i in range(len(done))],
        customdata=[[final_candidate(r.final), len(r.final["test_accuracy"])] for r in done],
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


def figures(records: list[StudyRecord]) -> list[tuple[str, go.Figure]]:
    """Every figure of the report, in order, with a section title: per model, then per strategy."""
    out: list[tuple[str, go.Figure]] = []
    groups: dict[tuple[str, str], list[StudyRecord]] = {}
    for r in records:
        groups.setdefault((r.dataset, r.model), []).append(r)
    for (dataset, model), group in groups.items():
        with_layers = next((r for r in group if r.attrs.get(LAYER_PARAMS)), None)
        block = next((r for r in group if r.key == "block" and r.attrs.get(LAYER_PARAMS)), with_layers)
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
