"""Bringing in a subscriber list from an old system: who on it becomes a grant (or a
reconfirmation request), whose "no" it carries over as a withdrawal or suppression, and
who it must leave alone.

What the old list says never overrides what is known here: an address withdrawn, objected
to or suppressed in this service is never granted again by an import, and a restricted or
erased person is not touched. A rerun of the same file (same SHA-256, library and purpose)
goes on after the last row stored, and rows stored already find their consent in place.

Grants go in batches with a few set-based look-ups and inserts each, so a list of 100,000
is in within seconds; each row still gets its own event, state and evidence, so the state
stays the fold of the events. Withdrawals and suppressions are few and go through the same
functions as any other (withdraw, suppress).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session

from .. import outbox
from ..models import (
    ConsentEvent,
    ConsentState,
    Evidence,
    Library,
    Purpose,
    Subject,
    SubscriberImport,
    Suppression,
    utcnow,
)
from .addresses import email_hmac
from .chain import chain_rows
from .changes import withdraw, withdraw_all
from .events import Action, Channel, Proof, Status
from .minors import minor_by
from .purposes import current_text, purpose_by_code
from .suppression import suppress

BATCH = 1000


class Listed:
    """What the old list said about a person."""

    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    CLEANED = "cleaned"


class Outcome:
    """What an import does with one row (the keys of the counts)."""

    GRANTED = "granted"
    RECONFIRM_REQUESTED = "reconfirm_requested"
    ALREADY_GRANTED = "already_granted"
    WITHDRAWN = "withdrawn"
    SUPPRESSED = "suppressed"
    # Subscribed on the old list, but withdrawn, objected or suppressed here: never re-granted.
    KEPT_STOPPED = "kept_stopped"
    # Unsubscribed or cleaned on the old list, and not running here either.
    ALREADY_STOPPED = "already_stopped"
    # Restricted or erased here: an import does not touch them.
    LEFT_ALONE = "left_alone"
    ALL = (GRANTED, RECONFIRM_REQUESTED, ALREADY_GRANTED, WITHDRAWN, SUPPRESSED, KEPT_STOPPED,
           ALREADY_STOPPED, LEFT_ALONE)  # fmt: skip


@dataclass(frozen=True)
class ListedPerson:
    """One row of an old list, as read (see subscriber_file)."""

    line: int
    email: str
    listed: str
    optin_time: datetime | None = None
    optin_ip: str | None = None
    confirm_time: datetime | None = None
    confirm_ip: str | None = None
    # When the old system says they left (unsubscribed or cleaned).
    left_time: datetime | None = None
    language: str | None = None


@dataclass(frozen=True)
class SourceFile:
    """The file the rows came from, as the evidence names it."""

    name: str
    sha256: str
    file_format: str


@dataclass
class ImportReport:
    counts: Counter[str] = field(default_factory=Counter)
    # The line a rerun went on after (0: from the start).
    resumed_after: int = 0
    # The file was imported completely before; nothing was done.
    already_done: bool = False
    import_id: int | None = None


_RUNNING = (Status.GRANTED, Status.PENDING, Status.RECONFIRM_REQUESTED)


@dataclass
class _Known:
    subject_id: int
    language: str
    untouchable: bool
    status: str | None


def preview(
    session: Session,
    library: Library,
    purpose_code: str,
    people: Sequence[ListedPerson],
    *,
    suppression_key: str,
    reconfirm: bool = False,
) -> ImportReport:
    """What an import of these rows would do, row by row; stores nothing."""
    purpose = purpose_by_code(library, purpose_code)
    report = ImportReport()
    for batch in _batches(people):
        for _person, outcome, _known in _decide(
            session, library, purpose, batch, suppression_key, reconfirm
        ):
            report.counts[outcome] += 1
    return report


def begin(
    session: Session,
    library: Library,
    purpose_code: str,
    source: SourceFile,
    *,
    actor: str,
    reconfirm: bool = False,
    refused: int = 0,
) -> SubscriberImport:
    """The import of this file for this purpose: the one begun before, or a new one.

    refused is the number of rows the file reading refused, kept with the counts."""
    purpose = purpose_by_code(library, purpose_code)
    record = session.scalar(
        select(SubscriberImport).where(
            SubscriberImport.library_id == library.id,
            SubscriberImport.purpose_id == purpose.id,
            SubscriberImport.sha256 == source.sha256,
        )
    )
    if record is None:
        record = SubscriberImport(
            library_id=library.id, purpose_id=purpose.id, file_name=source.name[:200],
            sha256=source.sha256, file_format=source.file_format, actor=actor[:100],
            reconfirm=reconfirm, counts={"refused": refused} if refused else {},
        )  # fmt: skip
        session.add(record)
        session.flush()
    return record


def run(
    session: Session,
    record: SubscriberImport,
    people: Sequence[ListedPerson],
    *,
    suppression_key: str,
    actor: str,
    reconfirm_per_minute: int = 0,
    after_batch: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import the rows after the record's last line, a batch at a time.

    after_batch(rows) is called after each batch is written (the caller commits there, so a
    crash loses at most one batch, and moves its progress bar). The reconfirmation mails of
    a --reconfirm import are spread at reconfirm_per_minute (0: all at once).
    """
    report = ImportReport(import_id=record.id, resumed_after=record.last_line)
    if record.finished_at is not None:
        report.already_done = True
        report.counts.update(record.counts)
        return report
    purpose = session.get(Purpose, record.purpose_id)
    library = session.get(Library, record.library_id)
    assert purpose is not None and library is not None
    source = SourceFile(record.file_name, record.sha256, record.file_format)
    todo = [p for p in people if p.line > record.last_line]
    counts = Counter(record.counts)
    for done, batch in enumerate(_batches(todo)):
        decided = _decide(session, library, purpose, batch, suppression_key, record.reconfirm)
        now = utcnow()
        grants = [(p, o, k) for p, o, k in decided if o in (Outcome.GRANTED,
                  Outcome.RECONFIRM_REQUESTED)]  # fmt: skip
        _grant_many(
            session, library, purpose, record, source, grants, now, actor=actor,
            reconfirm_per_minute=reconfirm_per_minute,
            mails_before=counts[Outcome.RECONFIRM_REQUESTED],
        )  # fmt: skip
        for person, outcome, _known in decided:
            if outcome in (Outcome.WITHDRAWN, Outcome.SUPPRESSED):
                _stop(session, library, purpose, record, source, person, suppression_key, actor)
            counts[outcome] += 1
            report.counts[outcome] += 1
        record.last_line = batch[-1].line
        record.counts = dict(counts)
        session.flush()
        if done % 10 == 0 and session.get_bind().dialect.name == "postgresql":
            # A list of thousands grows the tables faster than autovacuum looks at them; on
            # stale statistics PostgreSQL reads every person of the library per look-up
            # instead of using the (library, address) index, and each batch gets slower.
            session.execute(text("ANALYZE subject, consent_state, suppression"))
        if after_batch is not None:
            after_batch(len(batch))
    record.finished_at = utcnow()
    session.flush()
    return report


def _batches(people: Sequence[ListedPerson]) -> Iterable[Sequence[ListedPerson]]:
    for start in range(0, len(people), BATCH):
        yield people[start : start + BATCH]


def _decide(
    session: Session,
    library: Library,
    purpose: Purpose,
    batch: Sequence[ListedPerson],
    suppression_key: str,
    reconfirm: bool,
) -> list[tuple[ListedPerson, str, _Known | None]]:
    """The outcome of each row, from three look-ups for the whole batch."""
    emails = [p.email for p in batch]
    found = session.execute(
        select(
            Subject.id, Subject.email, Subject.language, Subject.restricted_at, Subject.erased_at,
            Subject.birth_year, Subject.marked_minor,
        ).where(Subject.library_id == library.id, Subject.email.in_(emails))
    )  # fmt: skip
    # A young member is left alone too: an old list's consent was not their guardian's
    # (ledger/minors.py).
    known = {
        email: _Known(
            id_,
            language,
            restricted is not None or erased is not None or minor_by(birth_year, marked),
            None,
        )
        for id_, email, language, restricted, erased, birth_year, marked in found
    }
    by_id = {k.subject_id: k for k in known.values()}
    if by_id:
        for subject_id, status in session.execute(
            select(ConsentState.subject_id, ConsentState.status).where(
                ConsentState.purpose_id == purpose.id, ConsentState.subject_id.in_(by_id)
            )
        ):
            by_id[subject_id].status = status
    digests = {p.email: email_hmac(suppression_key, p.email) for p in batch}
    suppressed = set(
        session.scalars(
            select(Suppression.email_hmac).where(
                Suppression.library_id == library.id,
                Suppression.email_hmac.in_(list(digests.values())),
            )
        )
    )
    decided = []
    for person in batch:
        here = known.get(person.email)
        status = here.status if here else None
        is_suppressed = digests[person.email] in suppressed
        if here is not None and (here.untouchable or status == Status.ERASED):
            outcome = Outcome.LEFT_ALONE
        elif person.listed == Listed.SUBSCRIBED:
            if is_suppressed or status in (Status.WITHDRAWN, Status.OBJECTED):
                outcome = Outcome.KEPT_STOPPED
            elif status in (Status.GRANTED, Status.RECONFIRM_REQUESTED):
                outcome = Outcome.ALREADY_GRANTED
            else:
                outcome = Outcome.RECONFIRM_REQUESTED if reconfirm else Outcome.GRANTED
        elif status in _RUNNING:
            outcome = Outcome.WITHDRAWN
        elif person.listed == Listed.CLEANED and not is_suppressed:
            outcome = Outcome.SUPPRESSED
        elif here is None and not is_suppressed:
            # Nobody here yet: their "no" is kept as a keyed hash only, so no address of
            # someone who left is stored, and no later import can grant it again.
            outcome = Outcome.SUPPRESSED
        else:
            outcome = Outcome.ALREADY_STOPPED
        decided.append((person, outcome, here))
    return decided


def _details(
    record: SubscriberImport, source: SourceFile, person: ListedPerson, actor: str
) -> dict[str, Any]:
    """The evidence of one row: where it came from and what the old system knew."""
    details: dict[str, Any] = {
        "import_id": record.id,
        "file": source.name,
        "sha256": source.sha256,
        "format": source.file_format,
        "line": person.line,
        "listed": person.listed,
        "imported_by": actor,
    }
    for key in ("optin_time", "confirm_time", "left_time"):
        moment = getattr(person, key)
        if moment is not None:
            details[key] = moment.isoformat().replace("+00:00", "Z")
    if person.confirm_ip:
        details["confirm_ip"] = person.confirm_ip
    return details


def _grant_many(
    session: Session,
    library: Library,
    purpose: Purpose,
    record: SubscriberImport,
    source: SourceFile,
    grants: list[tuple[ListedPerson, str, _Known | None]],
    now: datetime,
    *,
    actor: str,
    reconfirm_per_minute: int,
    mails_before: int,
) -> None:
    if not grants:
        return
    new = [p for p, _o, k in grants if k is None]
    ids: dict[str, int] = {p.email: k.subject_id for p, _o, k in grants if k is not None}
    languages = {p.email: k.language for p, _o, k in grants if k is not None}
    if new:
        rows = [
            dict(library_id=library.id, email=p.email,
                 language=p.language or library.default_language,
                 created_at=now, last_activity_at=now)
            for p in new
        ]  # fmt: skip
        made = _insert_many(session, Subject, rows)
        for person, subject_id in zip(new, made, strict=True):
            ids[person.email] = subject_id
            languages[person.email] = person.language or library.default_language
    evidence = [
        dict(subject_id=ids[p.email], created_at=now, ip_address=p.optin_ip,
             user_agent=None, origin=None, details=_details(record, source, p, actor))
        for p, _o, _k in grants
    ]  # fmt: skip
    evidence_ids = _insert_many(session, Evidence, evidence)
    texts = {lang: current_text(purpose, lang) for lang in set(languages.values())}
    actions = []
    event_rows = []
    for (person, outcome, _known), evidence_id in zip(grants, evidence_ids, strict=True):
        action = Action.GRANTED if outcome == Outcome.GRANTED else Action.RECONFIRM_REQUESTED
        # A grant from an old list names no wording of ours: the person never saw it. A
        # reconfirmation asks them to agree to the current one, which it therefore names.
        wording = texts[languages[person.email]] if action == Action.RECONFIRM_REQUESTED else None
        actions.append(action)
        event_rows.append(dict(
            subject_id=ids[person.email], purpose_id=purpose.id, action=action,
            occurred_at=now, channel=Channel.IMPORT, actor=actor[:100],
            consent_text_id=wording.id if wording else None, evidence_id=evidence_id,
            request_id=None,
        ))  # fmt: skip
    wordings = {text.id: text for text in texts.values() if text is not None}
    chain_rows(session, library, purpose, event_rows, evidence, wordings)
    event_ids = _insert_many(session, ConsentEvent, event_rows)
    fresh, changed = [], []
    for (_person, _o, known), row, event_id in zip(grants, event_rows, event_ids, strict=True):
        state = dict(
            subject_id=row["subject_id"], purpose_id=purpose.id,
            status=Status.GRANTED if row["action"] == Action.GRANTED
            else Status.RECONFIRM_REQUESTED,
            consent_text_id=row["consent_text_id"], changed_at=now, last_event_id=event_id,
        )  # fmt: skip
        (changed if known is not None and known.status is not None else fresh).append(state)
    if fresh:
        session.execute(insert(ConsentState.__table__), fresh)
    if changed:
        session.execute(update(ConsentState), changed)
    stamp = now.isoformat().replace("+00:00", "Z")
    events, mails = [], []
    for row, event_id, person in zip(event_rows, event_ids, (g[0] for g in grants), strict=True):
        if row["action"] == Action.GRANTED:
            # Senders hear of every grant, as of one made at the desk.
            events.append(("consent.granted", {
                "event_id": event_id, "library": library.slug, "email": person.email,
                "purpose": purpose.code, "channel": Channel.IMPORT, "occurred_at": stamp,
            }))  # fmt: skip
        else:
            n = mails_before + len(mails)
            # Spread over minutes, so a list of thousands does not leave at once and
            # trip the mail server's limits or the receivers' spam filters.
            due = now + timedelta(minutes=n // reconfirm_per_minute if reconfirm_per_minute else 0)
            mails.append(("reconfirm", row["subject_id"], due, {"request_ids": [event_id]}))
    outbox.enqueue_many(session, library.id, events=events, mails=mails)
    # The ORM's copies of these people (if any were loaded) no longer match the rows.
    session.expire_all()


def _insert_many(session: Session, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the rows; return their new ids, in the order of the rows."""
    if session.get_bind().dialect.name != "postgresql":
        statement = insert(model).returning(model.id, sort_by_parameter_order=True)
        return list(session.execute(statement, rows).scalars())
    # PostgreSQL: take the ids from the table's sequence first, so the rows go as one
    # prepared statement in pipeline mode; with RETURNING, psycopg would have to parse an
    # INSERT of a thousand rows on every batch, which took most of the time.
    table = model.__table__.name
    ids = list(session.scalars(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
        {"table": table, "n": len(rows)},
    ))  # fmt: skip
    for row, id_ in zip(rows, ids, strict=True):
        row["id"] = id_
    session.execute(insert(model.__table__), rows)
    return ids


def _stop(
    session: Session,
    library: Library,
    purpose: Purpose,
    record: SubscriberImport,
    source: SourceFile,
    person: ListedPerson,
    suppression_key: str,
    actor: str,
) -> None:
    """Carry the old list's "no" over: withdraw what runs here, suppress a dead mailbox
    or an address nobody here knows yet."""
    proof = Proof(details=_details(record, source, person, actor))
    subject = session.scalar(
        select(Subject).where(Subject.library_id == library.id, Subject.email == person.email)
    )
    if subject is not None:
        if person.listed == Listed.CLEANED:
            # The mailbox is gone: every mail stops, as after a reported hard bounce.
            withdraw_all(session, subject, channel=Channel.IMPORT, actor=actor, proof=proof)
        else:
            withdraw(session, subject, purpose.code, channel=Channel.IMPORT, actor=actor,
                     proof=proof)  # fmt: skip
    if subject is None or person.listed == Listed.CLEANED:
        reason = "hard_bounce" if person.listed == Listed.CLEANED else "unsubscribed"
        suppress(session, library, person.email, reason, suppression_key=suppression_key,
                 actor=actor)  # fmt: skip
