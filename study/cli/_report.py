"""`python -m study.report`: Table I and the paper's figures from a storage (study.report builds them).

It only reads the storage (no model is built, nothing is trained), so it runs in seconds anywhere.
`--format html` (default) writes the whole report as one HTML page; `csv` and `latex` write Table I
alone, to `--output` or to stdout. `--figures DIR` also writes every figure as PNG and SVG (HTML
and plotly JSON when no Chrome/Chromium is there for kaleido).

Example:
    python -m study.report --storage sqlite:///storage/studies.db --output storage/reports/report.html
    python -m study.report --format latex > table1.tex
    python -m study.report --figures storage/reports/figures
"""

from __future__ import annotations

import sys

from study.config import StudyConfig
from study.runtime import EXIT_BAD_INPUT, OneLineParser, StudyError, quiet_libraries

DEFAULT_HTML = "storage/reports/report.html"


def main(argv: list[str] | None = None) -> int:
    """`python -m study.report`: returns the exit code (2 with a one-line error on bad input, on a
    storage with nothing to report, and on one that cannot be read)."""
    parser = OneLineParser(prog="python -m study.report", description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=StudyConfig.storage, help="Optuna storage URL")
    parser.add_argument("--study", action="append", help="a study to include (repeatable; default: all)")
    parser.add_argument("--format", choices=("html", "csv", "latex"), default="html",
                        help="html: the whole report; csv, latex: Table I alone")
    parser.add_argument("--output", help=f"the file to write ('-': stdout; default: html {DEFAULT_HTML}, "
                                          "csv and latex stdout)")
    parser.add_argument("--figures", metavar="DIR", help="also write every figure to DIR as PNG and SVG")
    try:
        args = parser.parse_args(argv)
        output = args.output or (DEFAULT_HTML if args.format == "html" else "-")
        info = sys.stderr if output == "-" else sys.stdout  # stdout may carry the table itself
        quiet_libraries()
        from study.report import build_report, empty_reason, load_records, nothing_to_report, table_csv, table_latex, write_text
        from study.storage import masked

        records = load_records(args.storage, args.study)
        if nothing_to_report(records):
            raise StudyError(f"--storage {masked(args.storage)}: {nothing_to_report(records)}")
        text = {"html": build_report, "csv": table_csv, "latex": table_latex}[args.format](records)
        if output == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            print(f"report: {write_text(text, output)}" if args.format == "html" else
                  f"table: {write_text(text, output)}", file=info)
        if not any(r.final for r in records):  # the same note whatever the format (the page says it too)
            print(f"note: {empty_reason(records)}", file=sys.stderr)
        if args.figures:
            _write_figures(records, args.figures, info)
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _write_figures(records, folder: str, info) -> None:
    from study.report import export_figures, figures

    try:
        paths, note = export_figures(figures(records), folder)
    except OSError as error:
        raise StudyError(f"--figures {folder}: cannot write there ({error.strerror})") from None
    print(f"figures: {len(paths)} files in {folder}", file=info)
    if note:
        print(f"note: figures saved as HTML and plotly JSON only; {note}", file=sys.stderr)
