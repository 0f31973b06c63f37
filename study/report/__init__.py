"""The report: Table I and the paper's figures, read from a storage alone (nothing is built or trained).

`python -m study.report` writes it as one HTML page, Table I as CSV or LaTeX, and the figures as
PNG and SVG; notebooks import the same functions. The plotly parts load on first use, so
`from study.report import decision_text` (the command line's summary) does not import plotly.

Example:
    >>> from study import report
    >>> records = report.load_records("sqlite:///storage/studies.db")  # doctest: +SKIP
    >>> print(report.decision_text(records[3], records))  # doctest: +SKIP
    >>> report.final_figure(records).show()  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

from study.records import score
from study.report.cli import main
from study.report.decision import baseline_comparisons, best_positions, candidate_label, decision_text
from study.report.studies import StudyRecord, load_records, record_of
from study.report.table import table_csv, table_html, table_latex, table_notes, table_rows
from study.strategies import COLUMNS, column_label

# Table I's column labels by study key, in the paper's order.
LABELS = {key: column_label(key) for key in COLUMNS}

_LAZY = {
    "study.report.plots": ("candidates_figure", "export_figures", "figure_sections", "figures", "final_figure",
                             "learning_curves_figure", "parameters_figure", "png_export_problem"),
    "study.report.page": ("build_report", "summary_text", "write_report"),
}


def __getattr__(name: str):
    for module, names in _LAZY.items():
        if name in names:
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'study.report' has no attribute {name!r}")


__all__ = [
    "LABELS", "StudyRecord", "baseline_comparisons", "best_positions", "candidate_label", "decision_text",
    "load_records", "main", "record_of", "score", "table_csv", "table_html", "table_latex", "table_notes",
    "table_rows", *(name for names in _LAZY.values() for name in names),
]
