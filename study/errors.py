"""The one exception type the command line turns into a one-line error, and the argument parser
whose errors are that exception (`python -m study.run` and `python -m study.report` share it)."""

import argparse


class StudyError(Exception):
    """A problem the user can fix: the message says what is wrong and how to fix it.

    `python -m study.run` prints it as a single line and exits with code 2.

    Example:
        >>> raise StudyError("--epochs must be at least 1 (got 0)")
        Traceback (most recent call last):
        study.errors.StudyError: --epochs must be at least 1 (got 0)
    """


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose bad arguments raise StudyError (one `error:` line, exit 2, from the
    caller's handler) instead of printing the usage block and exiting.

    Example:
        >>> parser = OneLineParser(prog="demo")
        >>> _ = parser.add_argument("--format", choices=("html", "csv"))
        >>> parser.parse_args(["--format", "pdf"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        study.errors.StudyError: argument --format: invalid choice: 'pdf' (choose from ...) (see --help)
    """

    def error(self, message: str) -> None:
        raise StudyError(f"{message} (see --help)")
