"""The report as one self-contained HTML page: Table I, a sentence per study, every figure."""

from __future__ import annotations

import html
import math
from pathlib import Path

from study.errors import StudyError
from study.records import score
from study.report.figures import figures
from study.report.studies import StudyRecord, load_records
from study.report.table import table_html
from study.strategies import STRATEGIES


def summary_text(record: StudyRecord) -> str:
    """One sentence per study: what was searched, the winner, its test accuracy."""
    finished = record.finished()
    best = record.best_candidate()
    text = (f"{record.name}: {len(record.candidates)} candidate(s), {STRATEGIES[record.config.strategy].description}; "
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
        >>> write_report("sqlite:///storage/studies.db", "storage/reports/report.html")  # doctest: +SKIP
    """
    page = build_report(load_records(storage, names))
    path = Path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as error:
        raise StudyError(f"--output {output}: cannot write it ({error.strerror})") from None
    return path
