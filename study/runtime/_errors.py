"""The exception types the command line turns into a one-line error and their exit codes, the argument
parser whose errors are that exception (`python -m study.run` and `python -m study.report` share it),
and how a failed write is told apart from other failures."""

from __future__ import annotations

import argparse
import contextlib
import errno
import sqlite3
from pathlib import Path
from typing import Iterator

EXIT_OK = 0
EXIT_BAD_INPUT = 2  # a StudyError: one line on stderr, nothing written
EXIT_WRITE_FAILED = 74  # a WriteError (EX_IOERR of sysexits.h): a full disk midway; finished work kept
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT

# errno values that only a write gives: a full disk or quota, a file over its size limit, a read-only mount.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
# What SQLite (SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY) and PostgreSQL (SQLSTATE 53100) say when they cannot write.
STORAGE_WRITE_MESSAGES = ("database or disk is full", "disk I/O error", "attempt to write a readonly database",
                          "No space left on device", "could not extend file", "Disk quota exceeded")
STORAGE_MODULES = ("sqlalchemy", "psycopg", "psycopg2", "pymysql", "MySQLdb", "optuna")  # whose errors carry them


class StudyError(Exception):
    """A problem the user can fix: the message says what is wrong and how to fix it.

    `python -m study.run` prints it as a single line and exits with code 2 (`EXIT_BAD_INPUT`).

    Example:
        >>> raise StudyError("--epochs must be at least 1 (got 0)")
        Traceback (most recent call last):
        study.runtime.StudyError: --epochs must be at least 1 (got 0)
    """

    __module__ = "study.runtime"  # where users import it from (study.runtime re-exports it)



class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose bad arguments raise StudyError (one `error:` line, exit 2, from the
    caller's handler) instead of printing the usage block and exiting.

    Example:
        >>> parser = OneLineParser(prog="demo")
        >>> _ = parser.add_argument("--format", choices=("html", "csv"))
        >>> parser.parse_args(["--format", "pdf"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        study.runtime.StudyError: argument --format: invalid choice: 'pdf' (choose from ...) (see --help)
    """

    def error(self, message: str) -> None:
        raise StudyError(f"{message} (see --help)")


class WriteError(Exception):
    """A write that failed midway through a run (most often: the disk is full). What was finished
    before it is kept; the message says what could not be written.

    `python -m study.run` prints it as a single line (with what the storage keeps and how to resume)
    and exits with code 74 (`EXIT_WRITE_FAILED`).

    Example:
        >>> raise WriteError("cannot write storage/models/flowers.keras (No space left on device)")
        Traceback (most recent call last):
        study.runtime.WriteError: cannot write storage/models/flowers.keras (No space left on device)
    """

    __module__ = "study.runtime"  # where users import it from (study.runtime re-exports it)


@contextlib.contextmanager
def writing(path: str | Path, partial: tuple[Path, ...] = ()) -> Iterator[None]:
    """An OSError inside the block becomes a WriteError that names `path`; the `partial` files
    (half-written by the block) are removed first, as a half-written model is worse than none.

    Example:
        >>> with writing("storage/models/flowers.keras"):
        ...     raise OSError(errno.ENOSPC, "No space left on device")  # what a write on a full disk raises
        Traceback (most recent call last):
        study.runtime.WriteError: cannot write storage/models/flowers.keras (No space left on device)
    """
    try:
        yield
    except OSError as error:
        for file in partial:
            with contextlib.suppress(OSError):
                Path(file).unlink(missing_ok=True)
        raise WriteError(f"cannot write {path} ({error.strerror or error})") from error


def write_problem(error: BaseException) -> str | None:
    """What could not be written, if `error` or an error it came from is a failed write: a
    WriteError, an OSError with a write-only errno (full disk, quota, file size limit, read-only
    mount), or a storage that cannot write (SQLite's "database or disk is full", PostgreSQL's
    "No space left on device"); else None.

    Example:
        >>> write_problem(OSError(errno.ENOSPC, "No space left on device", "storage/models/a.keras"))
        'cannot write storage/models/a.keras (No space left on device)'
        >>> write_problem(sqlite3.OperationalError("database or disk is full"))
        'cannot write the storage (database or disk is full)'
        >>> write_problem(ValueError("x")) is None
        True
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, WriteError):
            return str(error)
        if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
            return f"cannot write {error.filename or 'a file'} ({error.strerror or error})"
        if isinstance(error, sqlite3.Error) or type(error).__module__.split(".")[0] in STORAGE_MODULES:
            text = str(error).lower()
            found = next((m for m in STORAGE_WRITE_MESSAGES if m.lower() in text), None)
            if found:
                return f"cannot write the storage ({found})"
        # The error it was raised from, or while handling (unless `raise ... from None` hid that).
        error = error.__cause__ if error.__cause__ is not None else (
            None if error.__suppress_context__ else error.__context__)
    return None



def causes(error: BaseException) -> list[BaseException]:
    """`error` and the exceptions it was raised from or while handling, outermost first.

    Example:
        >>> try:
        ...     try:
        ...         raise KeyError("inner")
        ...     except KeyError as inner:
        ...         raise ValueError("outer") from inner
        ... except ValueError as outer:
        ...     [type(e).__name__ for e in causes(outer)]
        ['ValueError', 'KeyError']
    """
    chain: list[BaseException] = []
    while error is not None and not any(error is seen for seen in chain):
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain



def network_failure(error: BaseException) -> BaseException | None:
    """The innermost cause of `error` that is a failed connection (no network, name lookup failed, host
    unreachable, timeout), or None: not one (a server that answered with an error is not).

    Example:
        >>> import socket
        >>> network_failure(socket.gaierror(-2, "Name or service not known")), network_failure(ValueError("x"))
        (gaierror(-2, 'Name or service not known'), None)
    """
    import socket
    import urllib.error

    kinds = (ConnectionError, TimeoutError, socket.gaierror, urllib.error.URLError)
    found = [e for e in causes(error) if isinstance(e, kinds) and not isinstance(e, urllib.error.HTTPError)]
    return found[-1] if found else None


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an error's message (its type's name if it has none), at most `limit` characters.

    Example:
        >>> first_line(ValueError("bad shape\\nmore detail")), first_line(KeyError())
        ('bad shape', 'KeyError')
    """
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]
