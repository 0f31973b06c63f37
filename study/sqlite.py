"""SQLite for several worker processes: no "database is locked" failures.

pysqlite opens a transaction lazily and upgrades a read lock to a write lock later; when two
processes do that at once SQLite answers SQLITE_BUSY at once, without waiting (the busy timeout
does not help), and Optuna fails the trial. Starting every transaction with BEGIN IMMEDIATE takes
the write lock up front, so a second process waits (up to the connect timeout) instead. WAL mode
lets readers such as optuna-dashboard read while a worker writes. The transactions are short
(one trial record), so serialising them costs nothing next to a training epoch.
"""

from __future__ import annotations

import optuna
import sqlalchemy

BUSY_TIMEOUT_SECONDS = 60


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
        >>> storage = optuna.storages.RDBStorage("sqlite:///s.db", engine_kwargs=engine_kwargs(url))
        >>> share_between_processes(storage)
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
