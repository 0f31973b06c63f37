"""The report: Table I and the paper's figures, read from a storage alone (nothing is built or trained).

`python -m study.report` writes it as one HTML page; notebooks import the same functions.

Example:
    >>> from study import report
    >>> records = report.load_records("sqlite:///storage/studies.db")  # doctest: +SKIP
    >>> report.final_figure(records).show()  # doctest: +SKIP
"""

from study.records import score
from study.report.cli import main
from study.report.figures import (
    candidates_figure,
    figures,
    final_figure,
    learning_curves_figure,
    parameters_figure,
)
from study.report.page import build_report, summary_text, write_report
from study.report.studies import StudyRecord, load_records, record_of
from study.report.table import table_html, table_rows
from study.strategies import COLUMNS, column_label

# Table I's column labels by study key, in the paper's order.
LABELS = {key: column_label(key) for key in COLUMNS}

__all__ = [
    "LABELS", "StudyRecord", "build_report", "candidates_figure", "figures", "final_figure",
    "learning_curves_figure", "load_records", "main", "parameters_figure", "record_of", "score",
    "summary_text", "table_html", "table_rows", "write_report",
]
