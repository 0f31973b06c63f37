"""`python -m study.report`: the paper's figures and Table I from a storage, as one HTML file.

It only reads the storage (no model is built, nothing is trained), so it runs in seconds anywhere.

Example:
    python -m study.report --storage sqlite:///storage/studies.db --output storage/reports/report.html
"""

from __future__ import annotations

import argparse
import sys

from study.config import StudyConfig
from study.errors import StudyError
from study.process import EXIT_BAD_INPUT, quiet_libraries
from study.report.page import write_report


def main(argv: list[str] | None = None) -> int:
    """`python -m study.report`: returns the exit code (2 with a one-line error on bad input)."""
    parser = argparse.ArgumentParser(prog="python -m study.report", description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=StudyConfig.storage, help="Optuna storage URL")
    parser.add_argument("--study", action="append", help="a study to include (repeatable; default: all)")
    parser.add_argument("--output", default="storage/reports/report.html", help="the HTML file to write")
    args = parser.parse_args(argv)
    try:
        quiet_libraries()
        path = write_report(args.storage, args.output, args.study)
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"report: {path}")
    return 0
