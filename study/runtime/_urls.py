"""Storage URLs as every stage may ask about them (the storage itself is study.storage)."""

from __future__ import annotations


def process_local(url: str) -> bool:
    """Whether the storage at `url` lives inside this process (an in-memory SQLite database), so no
    other process (a `--workers` process, optuna-dashboard, the report) can reach it.

    Example:
        >>> process_local("sqlite:///:memory:"), process_local("sqlite://"), process_local("sqlite:///s.db")
        (True, True, False)
    """
    import sqlalchemy  # here: validating a configuration loads it only when it asks this

    try:
        parsed = sqlalchemy.engine.make_url(url)
    except Exception:  # not a URL: check_destinations says so
        return False
    database = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and (
        database in ("", ":memory:") or database.startswith("file::memory:") or parsed.query.get("mode") == "memory"
    )
