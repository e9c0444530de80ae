"""The retention job: runs ledger.retention for each library, one short transaction per
batch, never two runs of one library at once, and records what each run did (RetentionRun).
Also the worker's daily trigger, which several workers on several hosts share, and the
daily step that ends a guardian's role when a young member turns 16 (ledger/minors.py).

Two runs at once: on PostgreSQL a session-level advisory lock per library makes the second
one skip that library; on SQLite every batch holds the write lock (BEGIN IMMEDIATE, see
database.py) and each person is looked at again under it, so a second run finds nothing
left to do. Either way each person is erased once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import ledger, mailer
from .ledger import retention as rules
from .models import Library, RetentionRun, utcnow

CATEGORIES = rules.PEOPLE_CATEGORIES + rules.ROW_CATEGORIES
# Not a kind of data that goes, so not among CATEGORIES: young members whose guardian's
# role ended because they turned 16 (a step of the same daily run).
GUARDIANSHIP_ENDED = "guardianship_ended"
# Advisory lock keys are one bigint space shared with anything else on the database server;
# this prefix ("RETN") keeps ours apart.
_LOCK_BASE = 0x5245544E << 20


@dataclass
class RunReport:
    library: str
    counts: dict[str, int] = field(default_factory=dict)
    # Another run held the library's lock, so this one did nothing there.
    busy: bool = False


@contextmanager
def library_lock(session: Session, library_id: int) -> Iterator[bool]:
    """Hold the library's retention lock for the length of a run; False if another has it.

    On PostgreSQL a session lock on a connection of its own, so the batches can commit in
    between; SQLite serialises writers by itself.
    """
    engine = session.get_bind()
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = _LOCK_BASE + library_id
    with engine.connect() as connection:
        got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        connection.commit()
        try:
            yield got
        finally:
            if got:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()


def due(session: Session, library: Library, now: datetime | None = None) -> dict[str, int]:
    """What a run would do now, per category; changes nothing."""
    counts = rules.retention_due(session, library, now or utcnow())
    return {category: counts[category] for category in CATEGORIES}


def run_library(
    session: Session,
    library: Library,
    *,
    suppression_key: str,
    batch: int = rules.BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
    run: RetentionRun | None = None,
    now: datetime | None = None,
) -> RunReport:
    """Make what is due true for one library, committing after every batch.

    Idempotent: run again at once, it finds nothing. `progress` hears how many people or
    rows each batch did; `run` is a claimed daily run to fill in.
    """
    library_id, slug = library.id, library.slug
    with library_lock(session, library_id) as got:
        if not got:
            return RunReport(slug, busy=True)
        if run is None:
            run = RetentionRun(library_id=library_id)
            session.add(run)
            session.commit()
        # One moment for the whole run, so it does what the dry run just counted.
        policy = rules.RetentionPolicy.of(library, now or utcnow())
        counts = dict.fromkeys(CATEGORIES, 0)
        # Rows first: erasing a person changes none of them, so the counts are the dry run's.
        for category in rules.ROW_CATEGORIES:
            while True:
                library = session.get_one(Library, library_id)
                number = rules.apply_rows(session, library, policy, category, limit=batch)
                session.commit()
                counts[category] += number
                if progress and number:
                    progress(number)
                if number < batch:
                    break
        # The IBAN and holder of mandates that ended 84 months ago, also of people who stay.
        while True:
            library = session.get_one(Library, library_id)
            number = rules.wipe_ended_mandates(session, library, policy, limit=batch)
            session.commit()
            counts["payment"] += number
            if progress and number:
                progress(number)
            if number < batch:
                break
        after: int | None = 0
        while after is not None:
            library = session.get_one(Library, library_id)
            due_now, after = rules.people_batch(
                session, library, policy, after_id=after, limit=batch
            )
            done = rules.erase_people(session, due_now, suppression_key=suppression_key)
            session.commit()
            for category, number in done.items():
                counts[category] += number
            if progress and done:
                progress(sum(done.values()))
        counts[GUARDIANSHIP_ENDED] = _end_guardianships(session, library_id, now, batch)
        run.counts = counts
        run.finished_at = utcnow()
        session.commit()
        return RunReport(slug, counts)


def _end_guardianships(session: Session, library_id: int, now: datetime | None, batch: int) -> int:
    """The daily step for young members (ledger/minors.py): whoever turned 16 decides
    alone from now; consents stay as they are; the person and the former guardian are told.

    Idempotent: an ended role is stamped (Subject.guardian_ended_at) and never ended again.
    """
    ended = 0
    while True:
        library = session.get_one(Library, library_id)
        people = ledger.turned_sixteen(session, library, now, limit=batch)
        for subject in people:
            ledger.end_guardianship(subject, now)
            mailer.guardianship_ended(session, subject)
        session.commit()
        ended += len(people)
        if len(people) < batch:
            return ended


def last_runs(session: Session, library_id: int, limit: int = 5) -> list[RetentionRun]:
    """The library's latest runs, newest first."""
    return list(
        session.scalars(
            select(RetentionRun)
            .where(RetentionRun.library_id == library_id)
            .order_by(RetentionRun.started_at.desc(), RetentionRun.id.desc())
            .limit(limit)
        )
    )


def daily_due_on(now: datetime, at: time | None, zone: ZoneInfo) -> date | None:
    """The day whose daily run may start now (at or after `at` in `zone`), or None."""
    if at is None:
        return None
    local = now.astimezone(zone)
    return local.date() if local.time() >= at else None


def run_daily(
    session: Session,
    *,
    at: time | None,
    zone: ZoneInfo,
    suppression_key: str,
    now: datetime | None = None,
) -> list[RunReport]:
    """Run retention for every library that has not had today's run yet.

    Each library's day is claimed by inserting its RetentionRun with `scheduled_for` set:
    the unique key lets one worker win, on whichever host, and the others move on.
    """
    day = daily_due_on(now or utcnow(), at, zone)
    if day is None:
        return []
    reports = []
    for library_id in session.scalars(select(Library.id).order_by(Library.id)).all():
        taken = session.scalar(
            select(RetentionRun.id).where(
                RetentionRun.library_id == library_id, RetentionRun.scheduled_for == day
            )
        )
        if taken is not None:
            session.rollback()
            continue
        run = RetentionRun(library_id=library_id, scheduled_for=day)
        session.add(run)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            continue
        library = session.get_one(Library, library_id)
        reports.append(
            run_library(session, library, suppression_key=suppression_key, run=run, now=now)
        )
    return reports
