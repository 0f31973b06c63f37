"""The report: Table I, the paper's figures, the decision in words and what optuna-dashboard shows,
read from a storage alone (nothing is built or trained).

`python -m study.report` writes it as one HTML page, Table I as CSV or LaTeX, and the figures as
PNG and SVG; notebooks import the same functions. The plotly and optuna-dashboard parts load on
first use, so `from study.report import decision_text` (the command line's summary) does not import
plotly.

Example:
    >>> from study import report
    >>> records = report.load_records("sqlite:///storage/studies.db")  # doctest: +SKIP
    >>> print(report.decision_text(records[3], records))  # doctest: +SKIP
    >>> report.final_figure(records).show()  # doctest: +SKIP
"""

from __future__ import annotations

from study.candidates import COLUMNS, column_label
from study.report._decision import (
    baseline_comparisons,
    best_positions,
    candidate_label,
    choice_text,
    decision_text,
    final_summary,
    seed_values,
)
from study.report._studies import StudyRecord, load_records, record_of
from study.report._table import (
    empty_reason,
    nothing_to_report,
    table_csv,
    table_html,
    table_latex,
    table_notes,
    table_rows,
)
from study.runtime import lazy_exports
from study.storage import score

# Table I's column labels by study key, in the paper's order.
LABELS = {key: column_label(key) for key in COLUMNS}

_LAZY = {
    "study.report._plots": ("candidates_figure", "final_figure", "learning_curves_figure", "parameters_figure"),
    "study.report._figures": ("export_figures", "figure_sections", "figures", "png_export_problem"),
    "study.report._page": ("build_report", "summary_text", "write_text"),
    "study.report._dashboard": ("dashboard_sections", "publish", "show_final_stage", "study_note"),
}


__getattr__ = lazy_exports("study.report", _LAZY)


__all__ = [
    "LABELS", "StudyRecord", "baseline_comparisons", "best_positions", "candidate_label", "choice_text",
    "decision_text", "empty_reason", "final_summary", "load_records", "nothing_to_report", "record_of", "score",
    "seed_values", "table_csv", "table_html", "table_latex",
    "table_notes", "table_rows", *(name for names in _LAZY.values() for name in names),
]
