"""The report as one self-contained HTML page: Table I, the decision of each study, every figure."""

from __future__ import annotations

import html
from pathlib import Path

from study.report._decision import decision_text
from study.report._figures import figure_sections
from study.report._studies import StudyRecord
from study.report._table import table_html
from study.runtime import StudyError


def summary_text(record: StudyRecord, others: list[StudyRecord] | tuple = ()) -> str:
    """One paragraph per study: what was searched, then its decision in words (`decision_text`)."""
    finished = len(record.finished())
    searched = f"{record.name} ({record.label}, {finished} of {len(record.candidates)} candidate(s) finished):"
    return f"{searched} {decision_text(record, others)}"


STYLE = (
    "body{font-family:Arial,Helvetica,sans-serif;max-width:1200px;margin:2em auto;color:#222;line-height:1.4}"
    "table.table1{border-collapse:collapse;margin:1em 0}"
    ".table1 th,.table1 td{border:1px solid #bbb;padding:4px 10px;text-align:right;white-space:nowrap}"
    ".table1 thead th{background:#f0f0f0}.table1 tr.summary{background:#fafafa}"
    ".table1 sup.sig{font-size:0.7em;margin-left:2px}"
    "h2{margin-top:2em;font-size:1.2em}.note{color:#555;font-size:0.9em;max-width:70em}"
    ".empty-table,.skipped{color:#555;font-style:italic}"
    "ul.studies li{margin-bottom:0.6em}"
)


def build_report(records: list[StudyRecord], title: str = "Block-wise fine-tuning report") -> str:
    """The whole report as one self-contained HTML page (plotly.js inlined once)."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if not records:
        parts.append("<p>The storage holds no study made by <code>python -m study.run</code>.</p>")
    else:
        parts.append("<h2>Table I: final test accuracy per model and strategy</h2>")
        parts.append(table_html(records))
        parts.append("<h2>Studies: what each searched and decided</h2><ul class='studies'>"
                     + "".join(f"<li>{html.escape(summary_text(r, records))}</li>" for r in records) + "</ul>")
    first = True
    for section in figure_sections(records):
        if section.figure is None:  # one line, no heading: nothing to look at
            parts.append(f"<p class='skipped'><b>{html.escape(section.title)}</b>: not drawn, "
                         f"{html.escape(section.why_not)}.</p>")
            continue
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.append(section.figure.to_html(full_html=False, include_plotlyjs=first,
                                            config={"displaylogo": False, "responsive": True}))
        first = False
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")


def write_text(text: str, output: str) -> Path:
    """Write `text` to `output` (folders made); a one-line StudyError when it cannot be written."""
    path = Path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise StudyError(f"--output {output}: cannot write it ({error.strerror})") from None
    return path


