"""The report's figures (the paper's Figs. 2 and 4-10) as plotly figures, from study records only.

Every figure is laid out for a paper and for a half-width dashboard panel alike:

- the title and a short subtitle on the left, the legend to the right of the plot area (never over
  the title, the subtitle or the modebar, which sits in the top margin);
- accuracy axes zoomed to the data (an accuracy spread of one point is visible), with intervals:
  95% intervals per candidate, ± std over seeds per strategy, every seed as a dot;
- one candidate label style (`candidate_label`), the layers in hover text;
- no figure that would show one bar or one curve: `study_sections`/`model_sections` give the
  reason instead, and the page and the dashboard note print it.

Which figures a report or a dashboard shows, and their export, are in study.report's figures module.
"""

from __future__ import annotations

import html
import math
import textwrap

import numpy as np
import plotly.graph_objects as go
from optuna.trial import TrialState

from study.candidates import column_position
from study.report._decision import (
    baseline_comparisons,
    best_positions,
    candidate_label,
    candidate_layers,
    final_summary,
    fmt,
    layers_text,
    seed_values,
)
from study.report._studies import StudyRecord
from study.storage import CLASS, ENDS_BLOCK, LAYER_PARAMS, NAME, PARAMS, TIED_WITH_WINNER, WEIGHTED, final_candidate

# Colour-blind-safe (Okabe-Ito) and told apart by marker symbol too, so a grey print reads.
COLORS = {
    "winner": "#D55E00",  # vermillion
    "tied": "#E69F00",  # orange
    "worse": "#0072B2",  # blue
    "pruned": "#56B4E9",  # sky blue, hollow marker
    "other": "#999999",
    "boundary": "#CC79A7",  # reddish purple
    "seed": "#333333",
}
# Lines of a learning-curves figure with few candidates (the winner keeps COLORS["winner"]).
PALETTE = ("#0072B2", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000", "#999999")
SYMBOLS = {"winner": "star", "tied": "diamond", "worse": "circle", "pruned": "circle-open"}
FONT = dict(family="Arial, Helvetica, sans-serif", size=14)
MODEBAR = 44  # pixels at the top kept free for plotly's modebar (the title starts below)
SUBTITLE_WIDTH = 80  # characters per subtitle line (about 450 px: fits a half-width dashboard panel)
MANY_LAYERS = 60  # above this, the parameters axis names a readable subset (every name in hover)


def _style(fig: go.Figure, title: str, subtitle: str, x: str, y: str, height: int = 500) -> go.Figure:
    # Title and subtitle in the top margin, below the modebar's row (top right); the legend right of
    # the plot area, from its top down: nothing overprints. `set_height` keeps the title's place.
    lines = textwrap.wrap(subtitle, SUBTITLE_WIDTH) or [""]
    text = f"<b>{html.escape(title)}</b><br>" + "<br>".join(
        f"<span style='font-size:12px;color:#555'>{line}</span>" for line in lines)
    fig.update_layout(
        title=dict(text=text, x=0, xref="paper", xanchor="left", y=1 - MODEBAR / height, yref="container",
                   yanchor="top", font=dict(size=16)),
        template="simple_white",
        font=FONT,
        height=height,
        margin=dict(l=70, r=20, t=MODEBAR + 34 + 16 * len(lines), b=60),
        legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top", font=dict(size=12),
                    itemsizing="constant", tracegroupgap=4),
        hoverlabel=dict(font_size=12),
    )
    fig.update_xaxes(title_text=x, automargin=True, ticks="outside")
    fig.update_yaxes(title_text=y, automargin=True, showgrid=True, gridcolor="#e5e5e5", ticks="outside")
    return fig


def set_height(fig: go.Figure, height: int) -> go.Figure:
    """Give the figure another height, the title kept below the modebar's row."""
    fig.update_layout(height=height, title_y=1 - MODEBAR / height)
    return fig


def _zoom(values: list[float], floor: float = 0.0, ceiling: float = 1.0, least: float = 0.02) -> list[float]:
    """An axis range around `values` with a margin (at least `least` wide), kept near [floor, ceiling]."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return [floor, ceiling]
    low, high = min(values), max(values)
    span = max(high - low, least)
    pad = 0.12 * span
    low, high = low - pad, high + pad
    if high - low < least + 2 * pad:
        middle = (high + low) / 2
        low, high = middle - (least / 2 + pad), middle + (least / 2 + pad)
    return [max(low, floor - pad / 2), min(high, ceiling + pad / 2)]


def parameters_figure(record: StudyRecord, most: int = MANY_LAYERS) -> go.Figure:
    """Parameters of every backbone layer (the paper's Fig. 2), block boundaries dashed.

    Every layer is a bar and every name is in its hover text. The axis names every layer when there
    are at most `most` (60: a page or a paper), else weighted layers spaced so that the rotated
    names never overprint (the dashboard's half-width panel passes 24).

    Example:
        >>> parameters_figure(load_records(url)[0]).write_html("params.html")  # doctest: +SKIP
    """
    layers = record.attrs.get(LAYER_PARAMS) or []
    positions = list(range(len(layers)))
    fig = go.Figure()
    for weighted, name, color in ((True, "weighted layer", COLORS["worse"]), (False, "no kernel", COLORS["other"])):
        chosen = [i for i in positions if bool(layers[i][WEIGHTED]) == weighted]
        fig.add_trace(go.Bar(
            x=chosen, y=[layers[i][PARAMS] for i in chosen], name=name, marker_color=color,
            customdata=[[i + 1, layers[i][NAME], layers[i][CLASS]] for i in chosen],
            hovertemplate="layer %{customdata[0]}: %{customdata[1]} (%{customdata[2]})<br>%{y:,} parameters<extra></extra>",
        ))
    ends = [i for i in positions if layers[i][ENDS_BLOCK]]
    for i in ends:
        fig.add_vline(x=i, line_dash="dash", line_color=COLORS["boundary"], line_width=1.2, opacity=1)
    if ends:  # a legend entry for the dashed lines
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="block boundary",
                                 line=dict(dash="dash", color=COLORS["boundary"])))
    named = _named_ticks(layers, most)
    weighted = sum(1 for layer in layers if layer[WEIGHTED])
    total = sum(layer[PARAMS] for layer in layers)
    subset = "" if len(named) == len(layers) else f"; axis: {len(named)} of the weighted layers"
    _style(fig, f"{record.model}: parameters per layer", f"{len(layers)} layers ({weighted} weighted), {total:,} "
           f"parameters; dashed: the {len(ends)} block boundaries{subset}; every name in hover",
           "layer (input end first)", "parameters", height=600 if len(named) > 20 else 500)
    size = 11 if len(named) <= 40 else 10
    fig.update_xaxes(tickmode="array", tickvals=named, ticktext=[layers[i][NAME] for i in named],
                     tickangle=-60, tickfont=dict(size=size), range=[-0.7, len(layers) - 0.3])
    fig.update_yaxes(tickformat="~s", rangemode="tozero")
    fig.update_layout(barmode="overlay", bargap=0.15)  # rotated names: the x axis's automargin makes room
    return fig


def _named_ticks(layers: list[dict], most: int = MANY_LAYERS) -> list[int]:
    """Which layer positions the parameters axis names: all, or a readable subset.

    Beyond `most` layers: weighted layers, each at least len(layers)/most positions after the
    previous named one, so rotated names never overprint (the first layers of a network are dense).
    """
    if len(layers) <= most:
        return list(range(len(layers)))
    gap = math.ceil(len(layers) / most)
    named: list[int] = []
    for i, layer in enumerate(layers):
        if layer[WEIGHTED] and (not named or i - named[-1] >= gap):
            named.append(i)
    return named


def _testable(record: StudyRecord) -> bool:
    """Whether the candidates were tested against the winner (repeats, a split size, or a stored tied set)."""
    return record.repeats > 1 or bool(record.selection_images) or bool(record.attrs.get(TIED_WITH_WINNER))


def _group(record: StudyRecord, name: str, tied: list[str]) -> str:
    if name == (tied[0] if tied else record.winner()):
        return "winner"
    if name in tied:
        return "tied"
    return "pruned" if record.finished()[name].state == TrialState.PRUNED else "worse"


# Long: one figure, its traces (winner, tied, worse, pruned; baselines; the intervals) built in order.
def candidates_figure(record: StudyRecord, baselines: dict[str, float] | None = None) -> go.Figure:
    """Selection accuracy of every candidate (the paper's Figs. 4-6): mean and 95% interval.

    The winner is a star, the candidates statistically tied with it (not significantly worse) are
    diamonds in another colour, the others circles (hollow: stopped early). `baselines` (label ->
    validation accuracy) draws horizontal reference lines (the paper's Fig. 7). The axis is zoomed
    to the intervals.

    Example:
        >>> candidates_figure(record, {"Baseline I": 0.71}).show()  # doctest: +SKIP
    """
    finished = record.finished()
    names = [c[NAME] for c in record.candidates if c[NAME] in finished]
    names += [n for n in finished if n not in names]  # a candidate the stored list lacks, last
    tied = record.tied()
    summaries = {n: record.summary(n) for n in names}
    names = [n for n in names if summaries[n] is not None]  # pruned before any value (out of memory)
    labels = [candidate_label(n) for n in names]
    legend = {
        "winner": "winner",
        "tied": "tied with the winner<br>(not significantly worse)",
        "worse": "significantly worse" if _testable(record) else "not tested (split size unknown)",
        "pruned": "stopped early (pruned)",
    }
    span, traces = [], []
    for group in ("worse", "pruned", "tied", "winner"):  # the winner drawn last, on top
        chosen = [n for n in names if _group(record, n, tied) == group]
        if not chosen:
            continue
        means = [summaries[n].mean for n in chosen]
        lows = [(summaries[n].interval_95 or [m, m])[0] for n, m in zip(chosen, means)]
        highs = [(summaries[n].interval_95 or [m, m])[1] for n, m in zip(chosen, means)]
        span += lows + highs
        name = legend[group] + (f": {candidate_label(chosen[0])} {fmt(means[0])}" if group == "winner" else "")
        traces.append(go.Scatter(
            x=[candidate_label(n) for n in chosen], y=means, mode="markers", name=name,
            legendrank={"winner": 1, "tied": 2, "worse": 3, "pruned": 4}[group],
            marker=dict(color=COLORS[group], symbol=SYMBOLS[group], size=15 if group == "winner" else 10,
                        line=dict(width=1.5, color=COLORS[group])),
            error_y=dict(type="data", symmetric=False, array=[h - m for h, m in zip(highs, means)],
                         arrayminus=[m - lo for lo, m in zip(lows, means)], thickness=1.5, width=5,
                         color=COLORS[group]),
            customdata=[[layers_text(candidate_layers(record, n)), fmt(lo), fmt(h), summaries[n].repeats,
                         finished[n].state.name.lower(), finished[n].number,
                         ", ".join(fmt(v) for v in record.repeat_values(n))] for n, lo, h in zip(chosen, lows, highs)],
            hovertemplate="<b>%{x}</b>: %{customdata[0]}<br>mean %{y:.4f}, 95% interval %{customdata[1]} to "
                          "%{customdata[2]}<br>%{customdata[3]} repeat(s): %{customdata[6]}<br>"
                          "%{customdata[4]}, trial %{customdata[5]}<extra></extra>",
        ))
    fig = go.Figure(traces)
    for i, (label, value) in enumerate((baselines or {}).items()):
        # Legend entries, not annotations: two baselines with close values would overprint.
        dash = ["dot", "dash", "dashdot"][i % 3]
        fig.add_hline(y=value, line_dash=dash, line_color="#333", line_width=1.8, opacity=1)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(dash=dash, color="#333", width=1.8),
                                 name=f"{label} {fmt(value)}"))
        span.append(value)
    split = "search-val" if record.config.select_on == "val" else "test"
    n_images = record.selection_images
    repeats = record.repeats
    how = (f"mean and 95% interval over {repeats} repeats" if repeats > 1 else
           f"one repeat: binomial 95% interval on {n_images} images" if n_images else "one repeat")
    if _testable(record):
        test = "paired t-test over the repeats, pooled noise" if repeats > 1 else "two-proportion z-test"
        how += f"; tied/worse: {test}, alpha {record.alpha:g} overall (Bonferroni)"
    measured = "validation accuracy" if split == "search-val" else "test-split accuracy"
    _style(fig, f"{record.model} {record.label}: {measured} per candidate",
           f"{len(names)} candidates scored on the {split} split; {how}", "candidate (input end first)", measured)
    # Every label shown: upright when few and short, else rotated, smaller and vertical when many.
    many = len(names) > 20
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=labels,
                     tickangle=-90 if many else -45 if len(names) > 8 or max(map(len, labels)) > 12 else 0,
                     tickfont=dict(size=10 if many else 12))
    if many:
        set_height(fig, 620)
    fig.update_yaxes(range=_zoom(span), tickformat=".3f")
    return fig


def mean_curve(curves: list[list[float]]) -> tuple[list[float], list[int]]:
    """The mean over repeats at every epoch, and how many repeats reached that epoch."""
    longest = max(map(len, curves))
    means, counts = [], []
    for epoch in range(longest):
        values = [curve[epoch] for curve in curves if len(curve) > epoch]
        means.append(float(np.mean(values)))
        counts.append(len(values))
    return means, counts


def learning_curves_figure(record: StudyRecord) -> go.Figure:
    """Validation accuracy after every epoch, one line per candidate (the mean over its repeats).

    Up to 8 candidates: a colour each, named in the legend (winner first, marked, thick). More:
    the winner thick, the candidates tied with it in one colour, the others thin grey. Pruned
    trials dashed.
    """
    tied = record.tied()
    finished = record.finished()
    curves = {name: c for name in finished if (c := record.curves(name))}
    rank = {"winner": 0, "tied": 1, "worse": 2, "pruned": 2}
    order = sorted(curves, key=lambda n: rank[_group(record, n, tied)])  # legend order: winner first
    few = len(curves) <= len(PALETTE) + 1
    fig = go.Figure()
    shown: set[str] = set()
    span = []
    palette = iter(PALETTE)
    for position, name in enumerate(order):
        group = _group(record, name, tied)
        means, counts = mean_curve(curves[name])
        span += means
        if few:
            color = COLORS["winner"] if group == "winner" else next(palette)
            legend_name = candidate_label(name) + {"winner": " (winner)", "tied": " (tied)"}.get(group, "")
        else:
            color = {"winner": COLORS["winner"], "tied": COLORS["tied"]}.get(group, COLORS["other"])
            legend_name = {"winner": f"winner: {candidate_label(name)}",
                           "tied": "tied with the winner"}.get(group, "other candidates")
        pruned = finished[name].state == TrialState.PRUNED
        fig.add_trace(go.Scatter(
            x=list(range(1, len(means) + 1)), y=means, mode="lines+markers", name=legend_name,
            legendgroup=legend_name, showlegend=legend_name not in shown, legendrank=position + 1,
            line=dict(width=4 if group == "winner" else 2 if few else 1.5 if group == "tied" else 1.2, color=color,
                      dash="dash" if pruned else "solid"),
            marker=dict(size=8 if group == "winner" else 5, color=color),
            opacity=1.0 if few or group in ("winner", "tied") else 0.7,
            customdata=counts,
            hovertemplate=f"<b>{html.escape(candidate_label(name))}</b><br>epoch %{{x}}: %{{y:.4f}} "
                          "(mean of %{customdata} repeat(s))<extra></extra>",
        ))
        shown.add(legend_name)
    fig.data = fig.data[::-1]  # drawn last = on top: the winner
    split = "search-val" if record.config.select_on == "val" else "test"
    repeats = max((len(c) for c in curves.values()), default=1)
    details = [f"{len(curves)} candidates, accuracy on {split} after each epoch"]
    if repeats > 1:
        details.append(f"mean over {repeats} repeats")
    if any(finished[n].state == TrialState.PRUNED for n in curves):
        details.append("pruned: dashed")
    _style(fig, f"{record.model} {record.label}: learning curves", "; ".join(details),
           "epoch", "validation accuracy" if split == "search-val" else "test-split accuracy")
    fig.update_xaxes(dtick=1)
    fig.update_yaxes(range=_zoom(span), tickformat=".3f")
    return fig


def final_figure(records: list[StudyRecord]) -> go.Figure:
    """Final test accuracy per strategy (70% train, 30% test; Figs. 8-10): mean ± std, every seed.

    The best mean(s) marked (every mean equal to the best at 3 decimals, the rule Table I bolds
    with); a significance marker vs the baselines above each (as in Table I).
    """
    done = sorted((r for r in records if r.final), key=lambda r: column_position(r.key))
    summaries = [final_summary(r.final) for r in done]
    means = [s.mean for s in summaries]
    stds = [s.std or 0.0 for s in summaries]
    best = set(best_positions(means, max))
    fig = go.Figure()
    span = []
    for is_best, name, color, symbol in ((False, "mean ± std", COLORS["worse"], "circle"),
                                         (True, "best mean", COLORS["winner"], "star")):
        chosen = [i for i in range(len(done)) if (i in best) == is_best]
        if not chosen:
            continue
        fig.add_trace(go.Scatter(
            x=[i for i in chosen], y=[means[i] for i in chosen], mode="markers", name=name,
            marker=dict(color=color, symbol=symbol, size=15 if is_best else 11),
            error_y=dict(type="data", array=[stds[i] for i in chosen], thickness=1.5, width=8, color=color),
            customdata=[[done[i].label, candidate_label(final_candidate(done[i].final)), summaries[i].seeds,
                         fmt(summaries[i].std)] for i in chosen],
            hovertemplate="<b>%{customdata[0]}</b>: %{y:.4f} ± %{customdata[3]}<br>winner %{customdata[1]}"
                          "<br>%{customdata[2]} seed(s)<extra></extra>",
        ))
        span += [means[i] + s * stds[i] for i in chosen for s in (-1, 1)]
    xs, ys, text = [], [], []
    for i, record in enumerate(done):
        seeds = seed_values(record.final)
        offsets = np.linspace(-0.18, 0.18, len(seeds)) if len(seeds) > 1 else [0.0]
        for offset, (seed, value) in zip(offsets, sorted(seeds.items())):
            xs.append(i + 0.25 + offset * 0.5)
            ys.append(value)
            text.append(f"{record.label}, seed {seed}")
    if xs:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="one seed", text=text,
                                 marker=dict(color=COLORS["seed"], size=6, symbol="circle-open", line=dict(width=1.2)),
                                 hovertemplate="%{text}: %{y:.4f}<extra></extra>"))
        span += ys
    markers = [" ".join(c.marker for c in baseline_comparisons(r, records) if c.marker) for r in done]
    for i, marker in enumerate(markers):
        if marker:
            fig.add_annotation(x=i, y=means[i] + stds[i], text=marker, showarrow=False, yshift=14,
                               font=dict(size=12, color="#222"))
    seeds = sorted({s.seeds for s in summaries})
    model = done[0].model if done else ""
    alphas = "/".join(f"{a:g}" for a in sorted({r.alpha for r in done}))
    note = (f"; +I/−II: significantly better/worse than Baseline I/II (paired t-test over seeds, alpha {alphas})"
            if any(markers) else "")
    _style(fig, f"{model}: final test accuracy per strategy",
           f"each winner retrained on the 70% pool, tested on the 30% split; mean ± std over "
           f"{'/'.join(map(str, seeds))} seeds, dots: seeds{note}", "strategy", "test accuracy")
    fig.update_xaxes(tickmode="array", tickvals=list(range(len(done))), ticktext=[r.label for r in done],
                     range=[-0.6, len(done) - 0.4])
    fig.update_yaxes(range=_zoom(span, least=0.04), tickformat=".3f")
    return fig


