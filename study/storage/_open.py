"""Opening a storage: every path checked before anything is created, SQLite made safe for several
processes, first starts that race made safe, trials born with their owner, URLs shown without password.

pysqlite opens a transaction lazily and upgrades a read lock to a write lock later; when two
processes do that at once SQLite answers SQLITE_BUSY at once, without waiting (the busy timeout
does not help), and Optuna fails the trial. Starting every transaction with BEGIN IMMEDIATE takes
the write lock up front, so a second process waits (up to the connect timeout) instead. WAL mode
lets readers such as optuna-dashboard read while a worker writes. The transactions are short
(one trial record), so serialising them costs nothing next to a training epoch.

Optuna creates its tables when a storage object is made; commands started at once on a fresh
storage (the README's "same command on every machine") race there: one wins, the others hit a
unique constraint (SQLite: alembic_version; PostgreSQL: pg_type). They retry: the winner's tables
are then found and used.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import random
import re
import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.trial import FrozenTrial, TrialState

from study.runtime import StudyError, first_line, process_local
from study.storage._optuna_compat import TemplateTrialStorage
from study.storage._owner import this_process
from study.storage._schema import OWNER

BUSY_TIMEOUT_SECONDS = 60
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30
SCHEMA_ATTEMPTS = 10  # tries to make (or find) Optuna's tables when other processes make them too


def masked(url: str) -> str:
    """The storage URL as it may be printed: its password, if any, replaced by ***.

    Example:
        >>> masked("postgresql+psycopg://study:secret@db.example:5432/study")
        'postgresql+psycopg://study:***@db.example:5432/study'
        >>> masked("sqlite:///storage/studies.db")
        'sqlite:///storage/studies.db'
    """
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except Exception:  # not a URL SQLAlchemy reads: mask anything shaped like user:password@
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
    return parsed.render_as_string(hide_password=True) if parsed.password else url


def masked_args(argv: list[str]) -> list[str]:
    """Command-line arguments with the password of every URL in them masked (for echoing a command).

    Example:
        >>> masked_args(["--storage", "postgresql://u:pw@h/db", "--storage=mysql://u:pw@h/db"])
        ['--storage', 'postgresql://u:***@h/db', '--storage=mysql://u:***@h/db']
    """
    shown = []
    for arg in argv:
        flag, equals, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        shown.append(flag + equals + masked(value) if "://" in value else arg)
    return shown


def check_destinations(url: str, artifact_dir: str, files: Iterable[str | Path] = ()) -> None:
    """Refuse, before anything runs or is created, a storage, artifact folder or output file the
    run could not write: a SQLite file in a folder that cannot be made, a file that is not SQLite,
    an unknown URL scheme or driver, an artifact folder that is a file, an output file (`files`:
    the final model and its .json, `output_files`) that is a folder or whose folder is
    a file. Creates nothing.

    Example:
        >>> check_destinations("sqlite:///storage/studies.db", "storage/artifacts", ["storage/models/a.keras"])
        >>> check_destinations("nosuchdb://host/db", "storage/artifacts")
        Traceback (most recent call last):
        study.runtime.StudyError: --storage nosuchdb://host/db: cannot open it (Can't load plugin: sqlalchemy.dialects:nosuchdb)
    """
    try:
        sqlalchemy.engine.make_url(url).get_dialect()  # the driver is imported, nothing is connected
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
        raise StudyError(f"--storage {masked(url)}: cannot open it ({_error_line(error, url)})") from None
    path = sqlite_path(url)
    if path is not None:
        if path.is_dir():
            raise StudyError(f"--storage {masked(url)}: {path} is a folder; name a file, e.g. {path / 'studies.db'}")
        if path.exists():
            if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
                raise StudyError(f"--storage {masked(url)}: {path} is not writable; choose another path")
            if path.stat().st_size and not _is_sqlite(path):
                raise StudyError(f"--storage {masked(url)}: {path} is not a SQLite database; choose another path")
        else:
            problem = _cannot_create(path.parent)
            if problem:
                raise StudyError(f"--storage {masked(url)}: cannot create {path.parent} ({problem})")
    folder = Path(artifact_dir)
    if folder.exists() and not folder.is_dir():
        raise StudyError(f"--artifact-dir {artifact_dir}: is a file, not a folder; give a folder (made if missing)")
    problem = _cannot_create(folder)
    if problem:
        raise StudyError(f"--artifact-dir {artifact_dir}: cannot write there ({problem}); choose another folder")
    for file in map(Path, files):
        problem = _cannot_write_file(file)
        if problem:
            raise StudyError(f"--artifact-dir {artifact_dir}: cannot write {file}, where the run saves its final "
                             f"model ({problem}); move that away or choose another --artifact-dir")


def _cannot_write_file(path: Path) -> str | None:
    """Why the file `path` (existing or not) cannot be written, None if it can; creates nothing."""
    if path.is_dir():
        return "it is a folder"
    if path.exists():
        return None if os.access(path, os.W_OK) else "it is not writable"
    return _cannot_create(path.parent)


def open_storage(url: str, created: Callable[[FrozenTrial], None] | None = None) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage with heartbeats, whose trials are created with their owner; for SQLite
    the folder is created and checked first. `created(trial)` runs right after a new trial's commit.

    Example:
        >>> storage = open_storage("sqlite:///:memory:")
    """
    path = sqlite_path(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StudyError(f"--storage {masked(url)}: cannot create {path.parent} ({error.strerror})") from None
        if not _writable(path):
            raise StudyError(f"--storage {masked(url)}: {path} is not writable; choose another path")
    # Heartbeats tell other processes that a trial's owner is alive; no other process can reach an
    # in-memory database, and Optuna's heartbeat thread would write to it concurrently with the run.
    alive = {} if process_local(url) else {"heartbeat_interval": HEARTBEAT_SECONDS, "grace_period": GRACE_SECONDS}
    return _rdb_storage(url, new_trial=owned_trial, created=created, **alive)


def open_existing_storage(url: str, missing_ok: bool = False) -> optuna.storages.BaseStorage | None:
    """The storage at `url` for reading: creates nothing, neither a SQLite file nor Optuna's tables.

    A SQLite file that does not exist, or a database without Optuna's tables, is refused (None
    with `missing_ok`).

    Example:
        >>> open_existing_storage("sqlite:///no/such.db")
        Traceback (most recent call last):
        study.runtime.StudyError: --storage sqlite:///no/such.db: no such SQLite file; run `python -m study.run` first
        >>> open_existing_storage("sqlite:///no/such.db", missing_ok=True) is None
        True
    """
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        if missing_ok:
            return None
        raise StudyError(f"--storage {masked(url)}: no such SQLite file; run `python -m study.run` first")
    if not _has_tables(url):
        if missing_ok:
            return None
        raise StudyError(f"--storage {masked(url)}: holds no Optuna studies; run `python -m study.run` first")
    try:  # a SQLite file read-only, neither switched to WAL nor locked for writing (see read_only_engine_kwargs)
        return TemplateTrialStorage(url, engine_kwargs=read_only_engine_kwargs(url), skip_table_creation=True)
    except Exception as error:  # SQLAlchemy, drivers and Optuna raise many types here
        raise StudyError(f"--storage {masked(url)}: cannot open it ({_error_line(error, url)})") from None


@contextlib.contextmanager
def reading(url: str) -> Iterator[optuna.storages.BaseStorage | None]:
    """`open_existing_storage(url, missing_ok=True)` for the block's duration; closed after it, so a
    SQLite file is left as it was found (no -wal or -shm file beside it).

    Example:
        >>> with reading("sqlite:///no/such.db") as storage:
        ...     storage is None
        True
    """
    storage = open_existing_storage(url, missing_ok=True)
    try:
        yield storage
    finally:
        if storage is not None:
            storage.engine.dispose()


def owned_trial() -> FrozenTrial:
    """The template of every new trial: RUNNING, owned by this process from its first commit
    (study.storage's recovery: a trial whose owner is dead is failed at once)."""
    return FrozenTrial(
        number=0, state=TrialState.RUNNING, value=None, datetime_start=datetime.datetime.now(),
        datetime_complete=None, params={}, distributions={}, user_attrs={},
        system_attrs={OWNER: this_process()}, intermediate_values={}, trial_id=0,
    )


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
    connect = {"timeout": BUSY_TIMEOUT_SECONDS, "isolation_level": None}
    if process_local(url):
        # Every connection to ":memory:" is a new, empty database: SQLAlchemy's default pool gives
        # each thread its own, so a thread other than the one that made the tables found none.
        # One connection, shared by every thread of the process, is the one database.
        return {"connect_args": {**connect, "check_same_thread": False}, "poolclass": sqlalchemy.pool.StaticPool}
    return {"connect_args": connect}


def read_only_engine_kwargs(url: str) -> dict:
    """Engine arguments that read a SQLite file without changing it (other URLs: `engine_kwargs`).

    The file is opened read-only: no WAL switch, no write, and no -wal or -shm file made beside
    it. While another connection has it open (a -wal or -journal file is there) it is read under
    that writer's locks (`mode=ro`), so a report during a run sees its latest commits; else
    `immutable=1`, which makes no files (`mode=ro` on a WAL file would make -wal and -shm and,
    read-only, could not remove them). A command that starts writing while an immutable read
    runs is not seen by that read.

    Example:
        >>> sorted(read_only_engine_kwargs("sqlite:///storage/studies.db"))
        ['creator']
        >>> read_only_engine_kwargs("postgresql://db/study")
        {}
    """
    path = sqlite_path(url)
    if path is None:
        return engine_kwargs(url)
    path = path.resolve()
    in_use = any(path.with_name(path.name + suffix).exists() for suffix in ("-wal", "-journal"))
    uri = f"{path.as_uri()}?{'mode=ro' if in_use else 'immutable=1'}"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                               check_same_thread=False)  # SQLAlchemy's pool hands it to any thread

    return dict(creator=connect)  # create_engine(creator=...): a keyword, not the study record of that name


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
    """A TemplateTrialStorage; the schema is retried while other processes create it too."""
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            storage = TemplateTrialStorage(url, engine_kwargs=engine_kwargs(url), **kwargs)
            share_between_processes(storage)  # SQLite: several workers without "database is locked"
            return storage
        except Exception as error:  # SQLAlchemy, drivers and Optuna raise many types here
            if attempt < SCHEMA_ATTEMPTS and _lost_schema_race(error):
                time.sleep(random.uniform(0.05, 0.2) * attempt)
                continue
            raise StudyError(f"--storage {masked(url)}: cannot open it ({_error_line(error, url)})") from None
    raise AssertionError("unreachable")


def _lost_schema_race(error: BaseException) -> bool:
    """Whether making Optuna's tables failed because another process was making them at that moment."""
    while error is not None:
        if isinstance(error, sqlalchemy.exc.IntegrityError):
            return True  # SQLite: alembic_version / version_info rows; PostgreSQL: pg_type names
        text = str(error).lower()
        if "already exists" in text or "deadlock" in text:
            return True
        error = error.__cause__ or error.__context__
    return False


def _has_tables(url: str) -> bool:
    """Whether the database at `url` has Optuna's tables (nothing is created)."""
    try:
        engine = sqlalchemy.create_engine(url, **read_only_engine_kwargs(url))
        try:
            return sqlalchemy.inspect(engine).has_table("studies")
        finally:
            engine.dispose()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
        raise StudyError(f"--storage {masked(url)}: cannot open it ({_error_line(error, url)})") from None


def _cannot_create(folder: Path) -> str | None:
    """Why `folder` (existing or not) cannot be written or made, None if it can; creates nothing."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return f"{probe} does not exist"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def _is_sqlite(path: Path) -> bool:
    """Whether `path` is a SQLite database, asked of SQLite itself (read-only, nothing written).

    Not by reading its header with open(): closing any descriptor of a file drops every POSIX lock
    this process holds on it, the locks of its open SQLite connections too (the protocol runs several
    studies in one process), and another process could then take the WAL for unused and remove it.
    """
    try:
        # immutable: no lock, no -wal or -shm file made (it only reads the file through SQLite).
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)) as connection:
            connection.execute("PRAGMA schema_version").fetchone()
        return True
    except sqlite3.DatabaseError:
        return False


def _error_line(error: BaseException, url: str) -> str:
    """The first line of an error, with the password of `url` masked should a driver echo it."""
    line = first_line(error)
    password = _password(url)
    return line.replace(password, "***") if password and len(password) > 2 else line


def _password(url: str) -> str | None:
    try:
        return sqlalchemy.engine.make_url(url).password
    except Exception:
        return None


def _writable(path: Path) -> bool:
    if path.exists():
        return os.access(path, os.W_OK)
    return os.access(path.parent, os.W_OK)
