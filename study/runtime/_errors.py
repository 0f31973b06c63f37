"""The one exception type the command line turns into a one-line error, and the exit codes."""

EXIT_OK = 0
EXIT_BAD_INPUT = 2  # a StudyError: one line on stderr, nothing written
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


class StudyError(Exception):
    """A problem the user can fix: the message says what is wrong and how to fix it.

    `python -m study.run` prints it as a single line and exits with code 2 (`EXIT_BAD_INPUT`).

    Example:
        >>> raise StudyError("--epochs must be at least 1 (got 0)")
        Traceback (most recent call last):
        study.runtime.StudyError: --epochs must be at least 1 (got 0)
    """

    __module__ = "study.runtime"  # where users import it from (study.runtime re-exports it)


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an error's message (its type's name if it has none), at most `limit` characters.

    Example:
        >>> first_line(ValueError("bad shape\\nmore detail")), first_line(KeyError())
        ('bad shape', 'KeyError')
    """
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]
