"""Opening a storage: the URL checked first, SQLite made safe for several processes.

pysqlite opens a transaction lazily and upgrades a read lock to a write lock later; when two
processes do that at once SQLite answers SQLITE_BUSY at once, without waiting (the busy timeout
does not help), and Optuna fails the trial. Starting every transaction with BEGIN IMMEDIATE takes
the write lock up front, so a second process waits (up to the connect timeout) instead. WAL mode
lets readers such as optuna-dashboard read while a worker writes. The transactions are short
(one trial record), so serialising them costs nothing next to a training epoch.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import sqlalchemy
import sqlalchemy.exc

from study.errors import StudyError

BUSY_TIMEOUT_SECONDS = 60
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage with heartbeats; for SQLite the folder is created and checked first.

    Example:
        >>> storage = open_storage("sqlite:///:memory:")
    """
    path = sqlite_path(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StudyError(f"--storage {url}: cannot create {path.parent} ({error.strerror})") from None
        if not _writable(path):
            raise StudyError(f"--storage {url}: {path} is not writable; choose another path")
    return _rdb_storage(url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS)


def open_existing_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage at `url`, refusing a SQLite file that does not exist (a reader creates nothing).

    Example:
        >>> open_existing_storage("sqlite:///no/such.db")
        Traceback (most recent call last):
        study.errors.StudyError: --storage sqlite:///no/such.db: no such SQLite file; run `python -m study.run` first
    """
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise StudyError(f"--storage {url}: no such SQLite file; run `python -m study.run` first")
    return _rdb_storage(url)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other URLs and for an in-memory database).

    Example:
        >>> sqlite_path("sqlite:///storage/studies.db"), sqlite_path("postgresql://db/x")
        (PosixPath('storage/studies.db'), None)
    """
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///"))
    return None


def engine_kwargs(url: str) -> dict:
    """Engine arguments for an SQLite URL: a generous busy timeout, and no implicit BEGIN from
    pysqlite (share_between_processes issues BEGIN IMMEDIATE instead). Other URLs: none.

    Example:
        >>> engine_kwargs("sqlite:///storage/studies.db")
        {'connect_args': {'timeout': 60, 'isolation_level': None}}
    """
    if not url.startswith("sqlite"):
        return {}
    return {"connect_args": {"timeout": BUSY_TIMEOUT_SECONDS, "isolation_level": None}}


def share_between_processes(storage: optuna.storages.RDBStorage) -> None:
    """Make an SQLite-backed Optuna storage safe for several processes (no-op for other URLs).

    Example:
        >>> url = "sqlite:///:memory:"
        >>> share_between_processes(optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url)))
    """
    engine = storage.engine
    if engine.dialect.name != "sqlite":
        return
    if engine.url.database not in (None, "", ":memory:"):
        with engine.connect() as connection:  # WAL is a property of the file: once is enough
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _rdb_storage(url: str, **kwargs) -> optuna.storages.RDBStorage:
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url), **kwargs)
        share_between_processes(storage)  # SQLite: several workers without "database is locked"
        return storage
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
        reason = str(error).strip().splitlines()[0][:200]
        raise StudyError(f"--storage {url}: cannot open it ({reason})") from None


def _writable(path: Path) -> bool:
    if path.exists():
        return os.access(path, os.W_OK)
    return os.access(path.parent, os.W_OK)
