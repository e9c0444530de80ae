"""How the service talks to its database beyond what Flask-SQLAlchemy sets up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any, TypeVar

from alembic.script import ScriptDirectory
from flask import current_app, has_request_context, request
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Blueprints whose GET requests also write (see _begin).
WRITING_ON_GET = ("admin", "api")
_reading_only: ContextVar[bool] = ContextVar("reading_only", default=False)
_writing: ContextVar[bool] = ContextVar("writing", default=False)
View = TypeVar("View", bound=Callable[..., Any])


@contextmanager
def reading_only() -> Iterator[None]:
    """Mark work that only reads (reports, exports), so it does not hold SQLite's write lock."""
    token = _reading_only.set(True)
    try:
        yield
    finally:
        _reading_only.reset(token)


def reads_first(view: View) -> View:
    """Mark a view that reads first and writes briefly at the end, inside `writing()`.

    On SQLite its request starts a plain (deferred) transaction, so many such requests
    read side by side; only the short write at the end takes the one write lock. Without
    this a consent check held the lock from the key look-up to its commit, and two senders
    at once queued behind each other until one timed out (docs/performance.md).
    """
    view.reads_first = True  # type: ignore[attr-defined]
    return view


@contextmanager
def writing() -> Iterator[None]:
    """A transaction begun inside this block takes SQLite's write lock up front.

    For the write of a reads_first view: commit the read before entering, so the write
    starts a transaction of its own instead of upgrading one that has already read.
    """
    token = _writing.set(True)
    try:
        yield
    finally:
        _writing.reset(token)


def end_read(session: Any) -> None:
    """End a reads_first view's read before its write begins, on SQLite only.

    SQLite's write lock comes with a transaction of its own (`writing()`), so the read must
    be over first. PostgreSQL reads and writes side by side: there a second transaction
    would only cost round trips (the commit, the pool's ping on the next checkout, a new
    BEGIN), so the read and the write share one. Keeps what was loaded (commit_keeping).
    """
    real = _real(session)
    if real.get_bind().dialect.name == "sqlite":
        commit_keeping(real)


def commit_keeping(session: Any) -> None:
    """Commit without expiring what the session has loaded.

    For a page rendered from what its request just read or wrote: a plain commit forgets
    every loaded row, and the page would load the person, library, purposes and texts
    again. Only for rows that are either settings or reloaded under the next transaction's
    lock (ledger.lock refreshes the person; a change reads its state row anew).
    """
    real = _real(session)
    keep = real.expire_on_commit
    real.expire_on_commit = False
    try:
        real.commit()
    finally:
        real.expire_on_commit = keep


def _real(session: Any) -> Any:
    return session() if callable(session) else session  # db.session is a scoped_session


def _reads_first() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "reads_first", False)


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
        reading = not _writing.get() and (
            _reading_only.get()
            or (
                has_request_context()
                and (
                    (request.method in SAFE_METHODS and request.blueprint not in WRITING_ON_GET)
                    or _reads_first()
                )
            )
        )
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


# Tables whose rows the database itself refuses to change or remove, whoever asks: the
# consent ledger and the staff audit trail (docs/proof.md). Personal data that retention or
# erasure must remove lives in other tables (Subject, Evidence, AuditNote).
APPEND_ONLY = ("consent_event", "audit_entry")
_REFUSAL = "consentsvc: %s on %s is refused: rows are only ever added (docs/proof.md)"


def append_only_sql(dialect: str, table: str) -> list[str]:
    """The statements that make `table` refuse UPDATE and DELETE (and TRUNCATE)."""
    if dialect == "postgresql":
        return [
            "CREATE OR REPLACE FUNCTION consentsvc_refuse_change() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '"
            + _REFUSAL % ("%", "%")
            + "', TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation'; END $$",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION consentsvc_refuse_change()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION consentsvc_refuse_change()",
        ]
    return [
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSAL % (op, table)}'); END"
        for op in ("UPDATE", "DELETE")
    ]


def drop_append_only_sql(dialect: str, table: str) -> list[str]:
    """What an operator runs to lift the refusal (verify will show what changed after).

    SQLite drops a table's triggers with it: a migration that rebuilds consent_event or
    audit_entry (batch_alter_table) must create them again with append_only_sql.
    """
    if dialect == "postgresql":
        return [
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
            f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        ]
    return [f"DROP TRIGGER IF EXISTS {table}_no_{op}" for op in ("update", "delete")]


def refuses_changes(connection: Any, table: str) -> bool:
    """Whether both refusing triggers on `table` are in place (verify reports it if not)."""
    if connection.dialect.name == "postgresql":
        sql = (
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(:t) "
            "AND tgname IN (:t || '_append_only', :t || '_no_truncate')"
        )
    else:
        sql = (
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t "
            "AND name IN (:t || '_no_update', :t || '_no_delete')"
        )
    return int(connection.execute(text(sql), {"t": table}).scalar_one()) == 2


def refuse_changes_ddl(table: Any, connection: Any, **_kw: Any) -> None:
    """after_create hook: the triggers of database.APPEND_ONLY on a freshly made table."""
    for statement in append_only_sql(connection.dialect.name, table.name):
        # text(), as the migration's op.execute does: it escapes the % for psycopg.
        connection.execute(text(statement))


@cache
def _code_head() -> str | None:
    # Read once per process: the migrations in the package do not change while it runs.
    from . import MIGRATIONS

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def schema_behind(session: Session) -> str | None:
    """None when the database's migrations are at the code's head, else what to do.

    For /readyz and `consentsvc check-config`; a database that does not answer raises.
    """
    try:
        at = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        session.rollback()
        session.execute(text("SELECT 1"))  # no revision table, or no database at all
        at = None
    if at == _code_head():
        return None
    at = at or "no revision"
    return f"database at {at}, the code needs {_code_head()}: run consentsvc db upgrade"
