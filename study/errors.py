"""The one exception type the command line turns into a one-line error."""


class StudyError(Exception):
    """A problem the user can fix: the message says what is wrong and how to fix it.

    `python -m study.run` prints it as a single line and exits with code 2.

    Example:
        >>> raise StudyError("--epochs must be at least 1 (got 0)")
        Traceback (most recent call last):
        study.errors.StudyError: --epochs must be at least 1 (got 0)
    """
