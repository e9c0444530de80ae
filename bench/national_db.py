"""The national benchmark's database side, through the raw drivers (sqlite3, psycopg):
seeding a million people into the real schema, the marker that lets a run reuse them,
giving the one-click people their consent back between runs, and the ceiling query.

Owns: which people exist and in what state (the mix), the pools the runs draw addresses
from, and what "the raw-driver ceiling" means. The service itself is never imported for
its queries here, only for its schema, its chain hash and its address HMAC, so the seeded
rows are exactly what the service would have written.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask
from psycopg import sql
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import select
from sqlalchemy.schema import CreateIndex, CreateTable

from consentsvc import clients
from consentsvc.demo import seed as seed_demo
from consentsvc.extensions import db
from consentsvc.ledger import chain, email_hmac
from consentsvc.models import Library, Purpose

# Bump when what is seeded changes, so every stored database is made again.
SEED_VERSION = "national-4"
LIBRARY = "borne"
PURPOSE = "newsletter"
# The mix of issue 13: newsletter state per person (the rest has none at all).
MIX = (("granted", 0.60), ("pending", 0.10), ("withdrawn", 0.20))
ACTION_FOR = {"granted": "granted", "pending": "requested", "withdrawn": "withdrawn"}
SUPPRESSED_SHARE = 0.01
# The last 5 % of people are kept for one-click unsubscribes: the batch mixes never draw
# from them, so withdrawing them does not change what the batch checks measure.
CLICK_POOL_SHARE = 0.05
# Rows per transaction (SQLite) or per COPY (PostgreSQL) while seeding.
STEP = 50_000
# Past check answers, as a service in use keeps them (24 months by default). Without them
# PostgreSQL plans the foreign-key check of every new decision_recipient row against an
# empty-looking consent_decision as a sequential scan, and the connection keeps that plan
# while the table grows: each check gets slower than the one before (seen in a first run).
HISTORY_DECISIONS = 20_000
HISTORY_RECIPIENTS = 5  # people allowed per past decision
HISTORY_CLIENT = "bench history"


def email_of(n: int) -> str:
    """The address of seeded person n (1-based)."""
    return f"reader{n}@example.nl"


def nobody(n: int) -> str:
    """An address no seeded person has."""
    return f"nobody{n}@elders.example.org"


@dataclass(frozen=True)
class Marker:
    version: str
    people: int
    fingerprint: str
    subject_base: int
    library_id: int
    purpose_id: int


@dataclass
class Pools:
    """Addresses the runs draw from, read from the database at the start of a run."""

    granted: list[str]  # granted, outside the click pool
    everyone: int  # seeded people (reader1 … readerN)
    click_ids: list[int]  # subject ids of the click pool currently granted


class Raw:
    """One raw-driver connection to the bench database, SQLite or PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith("postgresql")
        if self.postgres:
            self.conn: Any = psycopg.connect(url, autocommit=True)
        else:
            self.conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA busy_timeout=30000")
        self.mark = "%s" if self.postgres else "?"

    def sql(self, statement: str) -> str:
        """Statements are written with ? and get %s on PostgreSQL."""
        return statement.replace("?", "%s") if self.postgres else statement

    def all(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.conn.execute(self.sql(statement), params)
        return list(cursor.fetchall())

    def one(self, statement: str, params: Sequence[Any] = ()) -> Any:
        rows = self.all(statement, params)
        return rows[0][0] if rows else None

    def run(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(self.sql(statement), params)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self.postgres:
            with self.conn.transaction():
                yield
        else:
            # IMMEDIATE: the write lock up front, as the service takes it.
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def write(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Bulk insert: COPY on PostgreSQL, one executemany on SQLite (in the caller's
        transaction)."""
        if not rows:
            return
        names = ", ".join(columns)
        if self.postgres:
            with self.conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            insert = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608 - our names
            self.conn.executemany(insert, rows)

    def stamp(self, moment: datetime) -> Any:
        # SQLAlchemy keeps SQLite times as naive UTC text; psycopg takes the aware datetime.
        if self.postgres:
            return moment
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")

    def close(self) -> None:
        self.conn.close()


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def schema_fingerprint(app: Flask) -> str:
    """A hash of the DDL the current code would create: a database made by other code (the
    optimised tree with a new index, say) is seeded anew instead of being measured as is."""
    with app.app_context():
        dialect = db.engine.dialect
        parts = []
        for table in db.metadata.sorted_tables:
            parts.append(str(CreateTable(table).compile(dialect=dialect)))
            parts.extend(
                str(CreateIndex(index).compile(dialect=dialect))
                for index in sorted(table.indexes, key=lambda i: i.name or "")
            )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def read_marker(raw: Raw) -> Marker | None:
    try:
        row = raw.all(
            "SELECT version, people, fingerprint, subject_base, library_id, purpose_id "
            "FROM bench_seed"
        )
    except (sqlite3.Error, psycopg.Error):
        return None
    return Marker(*row[0]) if row else None


def ensure_seeded(app: Flask, url: str, people: int, suppression_key: str) -> Marker:
    """Reuse the stored database when its marker matches, else make it anew."""
    fingerprint = schema_fingerprint(app)
    raw = Raw(url) if _exists(url) else None
    marker = read_marker(raw) if raw else None
    if raw:
        raw.close()
    if marker and (marker.version, marker.people, marker.fingerprint) == (
        SEED_VERSION,
        people,
        fingerprint,
    ):
        print(f"  reusing {people:,} seeded people ({_where(url)})")
        return marker
    print(f"  seeding {people:,} people into {_where(url)} (marker: {marker})")
    return _seed(app, url, people, suppression_key, fingerprint)


def _where(url: str) -> str:
    return sqlite_path(url) if url.startswith("sqlite") else url


def _exists(url: str) -> bool:
    if url.startswith("sqlite"):
        return Path(sqlite_path(url)).exists()
    target = psycopg.conninfo.conninfo_to_dict(url)
    with psycopg.connect(_server(url), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target["dbname"],))
        return found.fetchone() is not None


def _empty(url: str) -> None:
    if url.startswith("sqlite"):
        path = Path(sqlite_path(url))
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    schema = schema_of(url)
    _create_database(url)
    with psycopg.connect(url, autocommit=True) as conn:
        # Whatever an older schema left (tables, triggers, functions) goes with the schema.
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')


def _create_database(url: str) -> None:
    """Make the benchmark's database on a server that has never seen it (a fresh machine)."""
    name = str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])
    with psycopg.connect(_server(url), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"  created the database {name}")


def _server(url: str) -> str:
    """The same server's maintenance database, which is there before ours is."""
    return psycopg.conninfo.make_conninfo(url, dbname="postgres", options="")


def schema_of(url: str) -> str:
    """The schema a PostgreSQL URL of in_schema() puts everything in (public without)."""
    _, _, options = url.partition("options=-csearch_path%3D")
    return options.split("&")[0] or "public"


def in_schema(url: str, people: int) -> str:
    """The URL with its own schema per number of people, so a quick run (100,000) and a
    full one (1,000,000) each keep their seed in the same database."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3Dnational_{people}"


def sqlite_for(path: str, people: int) -> str:
    """The SQLite URL with its own file per number of people (national-100000.sqlite)."""
    file = Path(path)
    return f"sqlite:///{file.with_name(f'{file.stem}-{people}{file.suffix}')}"


def _seed(app: Flask, url: str, people: int, key: str, fingerprint: str) -> Marker:
    started = time.perf_counter()
    _empty(url)
    with app.app_context():
        # The real schema, append-only triggers included (after_create), and the demo
        # libraries and purposes, exactly as the service makes them.
        db.create_all()
        seed_demo(db.session)
        db.session.commit()
        library = db.session.scalar(select(Library).where(Library.slug == LIBRARY))
        assert library is not None
        purpose = db.session.scalar(
            select(Purpose).where(Purpose.library_id == library.id, Purpose.code == PURPOSE)
        )
        assert purpose is not None
        library_id, purpose_id = library.id, purpose.id
        history, _key = clients.create(db.session, library, HISTORY_CLIENT, [PURPOSE])
        db.session.commit()
        history_id = history.id
        db.session.remove()
        db.engine.dispose()
    raw = Raw(url)
    base = int(raw.one("SELECT coalesce(max(id), 0) FROM subject"))
    now = datetime.now(UTC)
    rng = random.Random(13)
    with _progress() as progress:
        task = progress.add_task("people", total=people)
        for start in range(1, people + 1, STEP):
            numbers = range(start, min(start + STEP, people + 1))
            subjects, states, suppressed = [], [], []
            for n in numbers:
                subjects.append(
                    (base + n, library_id, email_of(n), "nl", raw.stamp(now), raw.stamp(now), 0)
                )
                status = _status(rng.random())
                if status is not None:
                    states.append((base + n, status))
                if rng.random() < SUPPRESSED_SHARE:
                    suppressed.append((library_id, email_hmac(key, email_of(n)), "hard_bounce"))
            with raw.transaction():
                raw.write(
                    "subject",
                    ("id", "library_id", "email", "language", "created_at",
                     "last_activity_at", "recent_confirm_mails"),
                    subjects,
                )  # fmt: skip
                append_events(raw, library_id, purpose_id, states, channel="import", at=now)
                raw.write(
                    "suppression",
                    ("library_id", "email_hmac", "reason", "created_at"),
                    [(*row, raw.stamp(now)) for row in suppressed],
                )
            progress.advance(task, len(numbers))
    _seed_history(raw, library_id, purpose_id, history_id, people, base, now)
    for table in ("subject", "suppression", "consent_event"):
        _advance_sequence(raw, table)
    # A database in use has its old rows frozen and its statistics fresh; a fresh COPY has
    # neither, and the first reads would pay for setting every row's hint bits.
    raw.run("VACUUM (FREEZE, ANALYZE)" if raw.postgres else "ANALYZE")
    marker = Marker(SEED_VERSION, people, fingerprint, base, library_id, purpose_id)
    raw.run(
        "CREATE TABLE bench_seed (version TEXT, people INTEGER, fingerprint TEXT, "
        "subject_base INTEGER, library_id INTEGER, purpose_id INTEGER, seeded_at TEXT)"
    )
    raw.run(
        "INSERT INTO bench_seed VALUES (?, ?, ?, ?, ?, ?, ?)",
        (*_marker_values(marker), now.isoformat()),
    )
    raw.close()
    print(f"  seeded in {time.perf_counter() - started:.0f} s")
    return marker


def _seed_history(
    raw: Raw, library_id: int, purpose_id: int, client_id: int, people: int, base: int,
    now: datetime,
) -> None:  # fmt: skip
    rng = random.Random(17)
    reasons = json.dumps({"granted": 60, "withdrawn": 20, "pending_confirmation": 10})
    decisions, recipients = [], []
    for _ in range(HISTORY_DECISIONS):
        decision = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        checked = raw.stamp(now - timedelta(minutes=rng.randrange(60 * 24 * 365)))
        decisions.append((decision, library_id, client_id, purpose_id, checked, 100, reasons))
        recipients += [
            (decision, base + n) for n in rng.sample(range(1, people + 1), HISTORY_RECIPIENTS)
        ]
    with raw.transaction():
        raw.write(
            "consent_decision",
            ("id", "library_id", "client_id", "purpose_id", "checked_at", "recipients",
             "reasons"),
            decisions,
        )  # fmt: skip
        raw.write("decision_recipient", ("decision_id", "subject_id"), recipients)


def _marker_values(m: Marker) -> tuple[Any, ...]:
    return (m.version, m.people, m.fingerprint, m.subject_base, m.library_id, m.purpose_id)


def _progress() -> Progress:
    return Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeRemainingColumn(),
    )


def _status(r: float) -> str | None:
    for status, share in MIX:
        if r < share:
            return status
        r -= share
    return None


def _advance_sequence(raw: Raw, table: str) -> None:
    # COPY with explicit ids leaves the sequence behind; the service's next insert would
    # collide with a seeded row.
    if raw.postgres:
        raw.run(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - our names
            f"(SELECT coalesce(max(id), 1) FROM {table}))"
        )


def append_events(
    raw: Raw,
    library_id: int,
    purpose_id: int,
    states: Sequence[tuple[int, str]],
    *,
    channel: str,
    at: datetime,
    existing: bool = False,
) -> None:
    """Append one chained event per (subject id, status) and set the state to match, inside
    the caller's transaction: the chain head grows by as many rows, so the service's next
    append (a one-click withdrawal) takes the next place, and the state stays the fold of
    the events. `existing`: the people have a state row already (it is updated)."""
    if not states:
        return
    # The head's row lock on PostgreSQL, as ledger.chain takes it (SQLite: the write lock).
    head = "SELECT length FROM chain_head WHERE library_id = ? AND chain = 'consent'"
    length = int(raw.one(head + (" FOR UPDATE" if raw.postgres else ""), (library_id,)))
    previous = (
        raw.one(
            "SELECT hash FROM consent_event WHERE library_id = ? AND seq = ?",
            (library_id, length),
        )
        if length
        else chain.GENESIS
    )
    slug = raw.one("SELECT slug FROM library WHERE id = ?", (library_id,))
    code = raw.one("SELECT code FROM purpose WHERE id = ?", (purpose_id,))
    first_id = int(raw.one("SELECT coalesce(max(id), 0) FROM consent_event")) + 1
    events, rows = [], []
    for offset, (subject_id, status) in enumerate(states):
        seq = length + 1 + offset
        action = ACTION_FOR[status]
        fields = chain.consent_fields(
            library=slug, seq=seq, subject=subject_id, purpose=code, action=action,
            occurred_at=at, channel=channel, actor=None, text=None, request=None,
        )  # fmt: skip
        previous = chain.link(previous, fields, None)
        event_id = first_id + offset
        stamp = raw.stamp(at)
        events.append(
            (event_id, library_id, seq, previous, subject_id, purpose_id, action, stamp, channel)
        )
        rows.append((subject_id, purpose_id, status, stamp, event_id))
    raw.write(
        "consent_event",
        ("id", "library_id", "seq", "hash", "subject_id", "purpose_id", "action",
         "occurred_at", "channel"),
        events,
    )  # fmt: skip
    if existing:
        raw.conn.executemany(
            raw.sql(
                "UPDATE consent_state SET status = ?, changed_at = ?, last_event_id = ? "
                "WHERE subject_id = ? AND purpose_id = ?"
            ),
            [(status, stamp, eid, sid, pid) for sid, pid, status, stamp, eid in rows],
        )
    else:
        raw.write(
            "consent_state",
            ("subject_id", "purpose_id", "status", "changed_at", "last_event_id"),
            rows,
        )
    raw.run(
        "UPDATE chain_head SET length = ? WHERE library_id = ? AND chain = 'consent'",
        (length + len(states), library_id),
    )
    if raw.postgres:
        _advance_sequence(raw, "consent_event")


def read_pools(raw: Raw, marker: Marker) -> Pools:
    """Granted people outside the click pool, and the click pool's people still granted."""
    cut = marker.subject_base + int(marker.people * (1 - CLICK_POOL_SHARE))
    granted = raw.all(
        "SELECT s.id, s.email FROM subject s JOIN consent_state c ON c.subject_id = s.id "
        "AND c.purpose_id = ? WHERE s.library_id = ? AND c.status = 'granted' "
        "ORDER BY s.id",
        (marker.purpose_id, marker.library_id),
    )
    return Pools(
        granted=[email for sid, email in granted if sid <= cut],
        everyone=marker.people,
        click_ids=[sid for sid, _email in granted if sid > cut],
    )


def regrant_clicked(raw: Raw, marker: Marker) -> int:
    """Give the click pool's people that a one-click withdrew their consent back, as chained
    "granted" events (channel import), so the next run has people to unsubscribe."""
    cut = marker.subject_base + int(marker.people * (1 - CLICK_POOL_SHARE))
    with raw.transaction():
        ids = [
            row[0]
            for row in raw.all(
                "SELECT c.subject_id FROM consent_state c JOIN consent_event e "
                "ON e.id = c.last_event_id WHERE c.purpose_id = ? AND c.subject_id > ? "
                "AND c.status = 'withdrawn' AND e.channel = 'one_click' ORDER BY c.subject_id",
                (marker.purpose_id, cut),
            )
        ]
        for start in range(0, len(ids), 5000):
            append_events(
                raw, marker.library_id, marker.purpose_id,
                [(sid, "granted") for sid in ids[start : start + 5000]],
                channel="import", at=datetime.now(UTC), existing=True,
            )  # fmt: skip
    return len(ids)


def forget_decisions(raw: Raw) -> None:
    """Drop the check answers earlier runs kept (a million-recipient send keeps ~600,000
    rows), so every run measures the same tables rather than ever larger ones; the seeded
    history stays."""
    history = raw.one("SELECT id FROM api_client WHERE name = ?", (HISTORY_CLIENT,))
    with raw.transaction():
        raw.run(
            "DELETE FROM decision_recipient WHERE decision_id IN "
            "(SELECT id FROM consent_decision WHERE client_id <> ?)",
            (history,),
        )
        raw.run("DELETE FROM consent_decision WHERE client_id <> ?", (history,))
    raw.run("VACUUM ANALYZE decision_recipient" if raw.postgres else "ANALYZE decision_recipient")
    raw.run("VACUUM ANALYZE consent_decision" if raw.postgres else "ANALYZE consent_decision")


# -- the ceiling ------------------------------------------------------------------------------

# What a check needs from the database for a batch, asked the fastest ways we know: the
# state per address (a known person without a state comes back with NULL) and the
# suppressions matching the addresses' HMACs, in one round trip.
SQLITE_IN = """
SELECT s.email, s.id, c.status, NULL FROM subject s
LEFT JOIN consent_state c ON c.subject_id = s.id AND c.purpose_id = ?
WHERE s.library_id = ? AND s.email IN ({emails})
UNION ALL
SELECT NULL, NULL, NULL, email_hmac FROM suppression
WHERE library_id = ? AND email_hmac IN ({hashes})
"""
SQLITE_JSON = """
SELECT s.email, s.id, c.status, NULL FROM subject s
LEFT JOIN consent_state c ON c.subject_id = s.id AND c.purpose_id = ?
WHERE s.library_id = ? AND s.email IN (SELECT value FROM json_each(?))
UNION ALL
SELECT NULL, NULL, NULL, email_hmac FROM suppression
WHERE library_id = ? AND email_hmac IN (SELECT value FROM json_each(?))
"""
PG_ANY = """
SELECT s.email, s.id, c.status, NULL FROM subject s
LEFT JOIN consent_state c ON c.subject_id = s.id AND c.purpose_id = %s
WHERE s.library_id = %s AND s.email = ANY(%s::text[])
UNION ALL
SELECT NULL, NULL, NULL, email_hmac FROM suppression
WHERE library_id = %s AND email_hmac = ANY(%s::text[])
"""
PG_UNNEST = """
SELECT s.email, s.id, c.status, NULL FROM unnest(%s::text[]) AS k(email)
JOIN subject s ON s.library_id = %s AND s.email = k.email
LEFT JOIN consent_state c ON c.subject_id = s.id AND c.purpose_id = %s
UNION ALL
SELECT NULL, NULL, NULL, p.email_hmac FROM unnest(%s::text[]) AS h(email_hmac)
JOIN suppression p ON p.library_id = %s AND p.email_hmac = h.email_hmac
"""
CEILING_SQL = {
    "sqlite IN (...)": SQLITE_IN,
    "sqlite json_each": SQLITE_JSON,
    "postgresql = ANY": PG_ANY,
    "postgresql unnest": PG_UNNEST,
}


def ceiling_queries(raw: Raw, marker: Marker) -> dict[str, Callable[[list[str], list[str]], int]]:
    """The ways of asking, by name; each takes the distinct addresses and their HMACs and
    returns the rows fetched."""
    lib, pur = marker.library_id, marker.purpose_id
    conn = raw.conn

    if raw.postgres:

        def pg_any(emails: list[str], hashes: list[str]) -> int:
            return len(conn.execute(PG_ANY, (pur, lib, emails, lib, hashes)).fetchall())

        def pg_unnest(emails: list[str], hashes: list[str]) -> int:
            return len(conn.execute(PG_UNNEST, (emails, lib, pur, hashes, lib)).fetchall())

        return {"postgresql = ANY": pg_any, "postgresql unnest": pg_unnest}

    def sqlite_in(emails: list[str], hashes: list[str]) -> int:
        sql = SQLITE_IN.format(
            emails=",".join("?" * len(emails)), hashes=",".join("?" * len(hashes))
        )
        return len(conn.execute(sql, (pur, lib, *emails, lib, *hashes)).fetchall())

    def sqlite_json(emails: list[str], hashes: list[str]) -> int:
        params = (pur, lib, json.dumps(emails), lib, json.dumps(hashes))
        return len(conn.execute(SQLITE_JSON, params).fetchall())

    return {"sqlite IN (...)": sqlite_in, "sqlite json_each": sqlite_json}
