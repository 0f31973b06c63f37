"""Table I of the paper: final test accuracy per model and strategy, with Mean and Variance rows.

Each cell is the strategy's winner retrained on the 70% pool and tested on the held-out 30%:
mean ± std over the final stage's seeds (sample std, ddof=1), 3 decimals. The best value of every
row is bold, all of them when several are equal at 3 decimals (`decision.best_positions`, the rule
the figures mark with; the Variance row: the lowest). Where Baseline I or II of the same model ran
the same seeds, a marker says the strategy is significantly better (`+I`) or worse (`−I`) than it
(two-sided paired t-test over the seeds, at the study's `--race-alpha`, stated in the notes). As HTML,
CSV (one row per cell, full precision) or LaTeX (booktabs).
"""

from __future__ import annotations

import dataclasses
import html

import numpy as np
import pandas as pd

from study.candidates import COLUMNS
from study.report._decision import (
    REFERENCES,
    Comparison,
    baseline_comparisons,
    best_positions,
    candidate_label,
    final_summary,
    fmt,
    seed_values,
)
from study.report._studies import StudyRecord
from study.storage import PARAM, SEEDS, final_candidate


@dataclasses.dataclass
class Cell:
    """One cell of Table I."""

    value: float | None  # mean test accuracy (model rows), mean across models, or variance across models
    std: float | None = None  # over seeds (model rows, 2 seeds or more)
    seeds: dict[int, float] = dataclasses.field(default_factory=dict)
    candidate: str | None = None
    comparisons: list[Comparison] = dataclasses.field(default_factory=list)
    bold: bool = False

    @property
    def markers(self) -> list[str]:
        return [c.marker for c in self.comparisons if c.marker]


@dataclasses.dataclass
class Row:
    name: str  # "vgg16 (tf_flowers)", "Mean", "Variance"
    kind: str  # "model", or across models: "average", "spread"
    cells: list[Cell]


def _columns(records: list[StudyRecord]) -> list[str]:
    present = {r.key: r.label for r in records if r.final}
    return [present[k] for k in COLUMNS if k in present] + [v for k, v in present.items() if k not in COLUMNS]


def table(records: list[StudyRecord]) -> tuple[list[str], list[Row]]:
    """Table I as cells: model rows, then Mean and Variance rows across models (ddof=1, as the paper)."""
    columns = _columns(records)
    by_model: dict[str, dict[str, Cell]] = {}
    for r in records:
        summary = final_summary(r.final)
        if summary is None:
            continue
        by_model.setdefault(f"{r.model} ({r.dataset})", {})[r.label] = Cell(
            summary.mean, summary.std, seed_values(r.final), final_candidate(r.final), baseline_comparisons(r, records))
    rows = [Row(model, "model", [cells.get(c) or Cell(None) for c in columns]) for model, cells in by_model.items()]
    by_column = [[cell.value for row in rows if (cell := row.cells[i]).value is not None] for i in range(len(columns))]
    rows.append(Row("Mean", "average", [Cell(float(np.mean(v)) if v else None) for v in by_column]))
    rows.append(Row("Variance", "spread", [Cell(float(np.var(v, ddof=1)) if len(v) > 1 else None) for v in by_column]))
    for row in rows:
        for i in best_positions([c.value for c in row.cells], min if row.kind == "spread" else max,
                                decimals=6 if row.kind == "spread" else 3):
            row.cells[i].bold = True
    return columns, rows


def table_rows(records: list[StudyRecord]) -> tuple[list[str], list[tuple[str, list[float | None]]]]:
    """Table I's numbers: one row per model (mean final test accuracy per strategy), then Mean and Variance.

    Variance is across models with ddof=1, as the paper's Table I (checked against its numbers).

    Example:
        >>> columns, rows = table_rows(load_records(url))  # doctest: +SKIP
        >>> rows[-1][0]  # doctest: +SKIP
        'Variance'
    """
    columns, rows = table(records)
    return columns, [(row.name, [cell.value for cell in row.cells]) for row in rows]


def _seeds_used(rows: list[Row]) -> list[int]:
    return sorted({len(c.seeds) for row in rows if row.kind == "model" for c in row.cells if c.value is not None})


def table_notes(records: list[StudyRecord]) -> list[str]:
    """The sentences under Table I: what a cell is, what bold and the markers mean, or why it is empty."""
    columns, rows = table(records)
    if not columns:
        return [empty_reason(records)]
    seeds = _seeds_used(rows)
    counts = "/".join(map(str, seeds)) or "1"
    notes = [f"Each cell: the strategy's winner retrained on the 70% pool and tested on the held-out 30%, mean ± std "
             f"over {counts} seed(s) (sample std, ddof=1; none with one seed). Bold: the best of each row, every value "
             "equal to it at 3 decimals (Variance: the lowest). Mean and Variance: across models (ddof=1, as the paper)."]
    comparisons = [c for row in rows for cell in row.cells for c in cell.comparisons]
    if comparisons:
        tested = sorted({c.seeds for c in comparisons if c.seeds >= 2})
        if tested:
            n = "/".join(map(str, tested))
            alphas = "/".join(f"{a:g}" for a in sorted({c.alpha for c in comparisons}))
            notes.append(f"+I / −I: significantly better / worse than Baseline I on the same {n} seeds, +II / −II: "
                         f"than Baseline II, +BW / −BW: than the block-wise winner "
                         f"(two-sided paired t-test over seeds, alpha {alphas} per comparison: --race-alpha of the "
                         "study); no marker: no significant difference.")
        else:
            notes.append("No significance markers: the paired test over seeds against the baselines needs at least 2 "
                         "seeds both ran (run with --repeats 2 or more).")
    return notes


def nothing_to_report(records: list[StudyRecord]) -> str | None:
    """Why a storage gives no report at all (no study of `python -m study.run`, or not one finished
    trial in them), None when there is something to show.

    Example:
        >>> nothing_to_report([])
        'holds no study made by python -m study.run; run it first'
    """
    if not records:
        return "holds no study made by python -m study.run; run it first"
    if not any(r.finished() for r in records):
        return (f"no trial of {', '.join(r.name for r in records)} has finished yet, so there is nothing to report; "
                "run (or wait for) python -m study.run")
    return None


def empty_reason(records: list[StudyRecord]) -> str:
    """Why Table I has no cell, in one sentence (what each study still lacks)."""
    if not records:
        return "Table I is empty: the storage holds no study made by python -m study.run."
    states = []
    for r in records:
        finished, total = len(r.finished()), len(r.candidates)
        if total and finished < total:
            states.append(f"{r.name}: search {finished} of {total} candidates")
        else:
            states.append(f"{r.name}: search done, no final stage")
    return ("Table I is empty: no study has a final stage yet (it runs after a complete search unless --skip-final "
            "was given; run the same python -m study.run command again to finish). " + "; ".join(states) + ".")


def _title(cell: Cell) -> str:
    parts = [f"{cell.value:.6f}"]
    if cell.seeds:
        parts.append(f"mean of {len(cell.seeds)} seed(s): " + ", ".join(f"seed {s} {v:.6f}" for s, v in sorted(cell.seeds.items())))
    if cell.candidate:
        parts.append(f"winner {candidate_label(cell.candidate)}")
    parts += [f"{c.verdict} vs {c.baseline}" + ("" if c.p_value is None else f" (p = {c.p_value:.3g})")
              for c in cell.comparisons]
    return "; ".join(parts)


def _text(cell: Cell, kind: str) -> str:
    if cell.value is None:
        return "–"
    if kind == "spread":
        return f"{cell.value:.6f}"
    return fmt(cell.value) + (f" ± {fmt(cell.std)}" if cell.std is not None else "")


def table_html(records: list[StudyRecord]) -> str:
    """Table I as an HTML table (exact values and per-seed results in each cell's tooltip), notes under it."""
    columns, rows = table(records)
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in table_notes(records))
    if not columns:
        return f"<p class='empty-table'>{html.escape(empty_reason(records))}</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["model", *columns])
    body = []
    for row in rows:
        cells = []
        for cell in row.cells:
            text = html.escape(_text(cell, row.kind))
            if cell.markers:
                text += f"<sup class='sig'>{html.escape(' '.join(cell.markers))}</sup>"
            if cell.bold:
                text = f"<b>{text}</b>"
            title = f" title='{html.escape(_title(cell), quote=True)}'" if cell.value is not None else ""
            cells.append(f"<td{title}>{text}</td>")
        body.append(f"<tr class='{'model' if row.kind == 'model' else 'summary'}'><th>{html.escape(row.name)}</th>"
                    f"{''.join(cells)}</tr>")
    return f"<table class='table1'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{notes}"


CSV_FIELDS = ["row", "strategy", "statistic", "value", "std", SEEDS, PARAM, "best",
              *[f"{field}_baseline_{numeral}" for _, numeral in REFERENCES.values() for field in ("vs", "p")]]


def table_csv(records: list[StudyRecord]) -> str:
    """Table I as CSV, one line per cell (full precision), in the table's order.

    Columns: row (model, Mean or Variance), strategy (Table I label), statistic, value, std (over
    seeds), seeds, candidate (the winner, short label), best (bold in the table), and per baseline
    vs_baseline_I (better / worse / not significant / not tested) and p_baseline_I (two-sided).
    An empty table is the header line only (the reason: `empty_reason`).
    """
    columns, rows = table(records)
    lines = []
    statistic = {"model": "mean test accuracy over seeds", "average": "mean across models",
                 "spread": "variance across models (ddof=1)"}
    for row in rows:
        for column, cell in zip(columns, row.cells):
            if cell.value is None:
                continue
            line = {"row": row.name, "strategy": column, "statistic": statistic[row.kind], "value": repr(cell.value),
                    "std": "" if cell.std is None else repr(cell.std), SEEDS: len(cell.seeds) or "",
                    PARAM: candidate_label(cell.candidate) if cell.candidate else "", "best": int(cell.bold)}
            for c in cell.comparisons:
                line[f"vs_baseline_{c.numeral}"] = c.verdict
                line[f"p_baseline_{c.numeral}"] = "" if c.p_value is None else repr(c.p_value)
            lines.append(line)
    # Every value a string already (floats as repr: full precision), so pandas writes them as they are.
    return pd.DataFrame(lines, columns=CSV_FIELDS, dtype=object).to_csv(index=False, lineterminator="\n")


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\textasciicircum{}")):
        text = text.replace(a, b) if a != "\\" else text.replace(a, "\x00")
    return text.replace("\x00", r"\textbackslash{}")


def table_latex(records: list[StudyRecord]) -> str:
    """Table I as a LaTeX table (needs `\\usepackage{booktabs}`), the notes as its caption.

    An empty table is a LaTeX comment saying why.
    """
    columns, rows = table(records)
    if not columns:
        return f"% {empty_reason(records)}\n"
    lines = ["% Table I, written by python -m study.report --format latex; needs \\usepackage{booktabs}",
             "\\begin{table}[t]", "\\centering",
             "\\caption{" + _latex_escape(" ".join(table_notes(records))).replace("±", "$\\pm$").replace("−", "$-$") + "}",
             "\\label{tab:table1}", "\\begin{tabular}{l" + "c" * len(columns) + "}", "\\toprule",
             " & ".join(["Model", *(_latex_escape(c) for c in columns)]) + " \\\\", "\\midrule"]
    for row in rows:
        if row.kind == "average":
            lines.append("\\midrule")
        cells = []
        for cell in row.cells:
            if cell.value is None:
                cells.append("--")
                continue
            number = _text(cell, row.kind).replace(" ± ", " \\pm ")
            number = f"\\mathbf{{{number}}}" if cell.bold else number
            marks = "".join(f"{m[0].replace('−', '-')}\\mathrm{{{m[1:]}}}" for m in cell.markers)
            cells.append(f"${number}{'^{' + marks + '}' if marks else ''}$")
        lines.append(" & ".join([_latex_escape(row.name), *cells]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


__all__ = ["CSV_FIELDS", "Cell", "Row", "empty_reason", "table", "table_csv", "table_html",
           "table_latex", "table_notes", "table_rows"]
