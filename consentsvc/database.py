"""How the service talks to its database beyond what Flask-SQLAlchemy sets up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flask import has_request_context, request
from sqlalchemy import Engine, event

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Blueprints whose GET requests also write (see _begin).
WRITING_ON_GET = ("admin", "api")
_reading_only: ContextVar[bool] = ContextVar("reading_only", default=False)


@contextmanager
def reading_only() -> Iterator[None]:
    """Mark work that only reads (reports, exports), so it does not hold SQLite's write lock."""
    token = _reading_only.set(True)
    try:
        yield
    finally:
        _reading_only.reset(token)


def tune_engine(engine: Engine) -> None:
    """On SQLite: WAL, foreign keys, and BEGIN IMMEDIATE for anything that may write.

    pysqlite's own transaction handling starts a deferred transaction and upgrades it on
    the first write, which fails at once under a concurrent writer instead of waiting;
    taking the write lock up front lets busy_timeout do its work.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # Console pages write the audit log (who searched, whom they opened) and the API notes
        # a key's last use, even on GET; a deferred transaction could not take the write lock
        # after a concurrent commit.
        reading = _reading_only.get() or (
            has_request_context()
            and request.method in SAFE_METHODS
            and request.blueprint not in WRITING_ON_GET
        )
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")
