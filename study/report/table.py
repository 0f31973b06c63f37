"""Table I of the paper: final test accuracy per model and strategy, with Mean and Variance rows."""

from __future__ import annotations

import html

import numpy as np

from study.report.studies import StudyRecord
from study.strategies import COLUMNS


def table_rows(records: list[StudyRecord]) -> tuple[list[str], list[tuple[str, list[float | None]]]]:
    """Table I: one row per model (mean final test accuracy per strategy), then Mean and Variance rows.

    Variance is across models with ddof=1, as the paper's Table I (checked against its numbers).

    Example:
        >>> columns, rows = table_rows(load_records(url))  # doctest: +SKIP
        >>> rows[-1][0]  # doctest: +SKIP
        'Variance'
    """
    present = {r.key: r.label for r in records if r.final}
    columns = [present[k] for k in COLUMNS if k in present] + [v for k, v in present.items() if k not in COLUMNS]
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
