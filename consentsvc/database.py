"""How the service talks to its database beyond what Flask-SQLAlchemy sets up."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from sqlalchemy import Engine, event

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
        reading = has_request_context() and request.method in SAFE_METHODS
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")
