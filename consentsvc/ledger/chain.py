"""The hash chains that make the ledger tamper-evident.

Each library keeps two chains: its consent events and its staff audit entries. A row's hash
is SHA-256 over the previous row's hash, the canonical encoding of the row's non-personal
fields, and a keyed commitment (HMAC) to its personal part (the evidence, or whom an audit
entry was about). The personal part can be wiped by retention or erasure; the chain stays
whole. docs/proof.md gives the encoding so anyone can re-compute it without this code.

Appending takes the library's ChainHead row first (a row lock on PostgreSQL, the write lock
on SQLite), so concurrent writers queue and never fork a chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session, aliased

from ..database import APPEND_ONLY, refuses_changes
from ..models import (
    AuditEntry,
    AuditNote,
    ChainHead,
    ConsentEvent,
    ConsentText,
    Evidence,
    Library,
    Purpose,
)

CONSENT = "consent"
AUDIT = "audit"
GENESIS = "0" * 64
# Receipt ids are UUIDs derived from the event's chain hash (RFC 9562 version 5).
RECEIPT_NAMESPACE = uuid.UUID("5d6f0a52-6c1e-5d0b-9a53-2f1c3f0e8a41")
_CACHE = "consentsvc.chain_links"


def canonical(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys and no spaces: one byte string per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def timestamp(moment: datetime) -> str:
    """A time as the chain writes it: UTC, microseconds, a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def link(previous: str, fields: dict[str, Any], commitment: str | None) -> str:
    """SHA-256 over previous hash ‖ canonical fields ‖ commitment (64 zeros without one)."""
    data = previous.encode() + canonical(fields) + (commitment or GENESIS).encode()
    return hashlib.sha256(data).hexdigest()


def commitment_key() -> bytes:
    """The key of the commitments, derived from SUPPRESSION_KEY (which is never rotated)."""
    secret = current_app.config["SUPPRESSION_KEY"].encode()
    return hmac.new(secret, b"consentsvc ledger commitment v1", hashlib.sha256).digest()


def commit_to(personal: dict[str, Any], key: bytes | None = None) -> str:
    """The keyed hash that stands in the chain for a row's personal part."""
    return hmac.new(key or commitment_key(), canonical(personal), hashlib.sha256).hexdigest()


def evidence_part(evidence: Evidence) -> dict[str, Any]:
    """The evidence as it is committed to."""
    return {
        "created_at": timestamp(evidence.created_at),
        "ip_address": evidence.ip_address,
        "user_agent": evidence.user_agent,
        "origin": evidence.origin,
        "details": evidence.details or {},
    }


def note_part(subject_id: int | None, detail: str | None, reason: str | None) -> dict[str, Any]:
    """An audit entry's note as it is committed to."""
    return {"subject": subject_id, "detail": detail, "reason": reason}


def text_part(text: ConsentText | None) -> dict[str, Any] | None:
    if text is None:
        return None
    return {
        "id": text.id,
        "version": text.version,
        "language": text.language,
        "sha256": text.sha256,
    }


def consent_fields(
    *,
    library: str,
    seq: int,
    subject: int,
    purpose: str,
    action: str,
    occurred_at: datetime,
    channel: str,
    actor: str | None,
    text: dict[str, Any] | None,
    request: int | None,
) -> dict[str, Any]:
    """The non-personal fields of a consent event, as they are hashed."""
    return {
        "chain": CONSENT,
        "library": library,
        "seq": seq,
        "subject": subject,
        "purpose": purpose,
        "action": action,
        "occurred_at": timestamp(occurred_at),
        "channel": channel,
        "actor": actor,
        "text": text,
        "request": request,
    }


def audit_fields(
    *, library: str, seq: int, staff: int, at: datetime, action: str
) -> dict[str, Any]:
    """The non-personal fields of a staff audit entry, as they are hashed."""
    return {
        "chain": AUDIT,
        "library": library,
        "seq": seq,
        "staff": staff,
        "at": timestamp(at),
        "action": action,
    }


def receipt_id(event_hash: str) -> str:
    """The id of the receipt of the event with this chain hash."""
    return str(uuid.uuid5(RECEIPT_NAMESPACE, event_hash))


def _next_place(session: Session, library_id: int, chain: str) -> tuple[int, str]:
    """Take the chain's head (and with it the lock); the new row's place and previous hash."""
    length = session.execute(
        update(ChainHead)
        .where(ChainHead.library_id == library_id, ChainHead.chain == chain)
        .values(length=ChainHead.length + 1)
        .returning(ChainHead.length)
    ).scalar_one_or_none()
    if length is None:
        # A library made without the ORM (its after_insert hook makes the heads).
        session.add(ChainHead(library_id=library_id, chain=chain, length=1))
        session.flush()
        length = 1
    if length == 1:
        return 1, GENESIS
    known = session.info.setdefault(_CACHE, {})
    previous = known.get((library_id, chain, length - 1))
    if previous is None:
        model = ConsentEvent if chain == CONSENT else AuditEntry
        previous = session.scalar(
            select(model.hash).where(model.library_id == library_id, model.seq == length - 1)
        )
    return length, previous or GENESIS


def _remember(session: Session, library_id: int, chain: str, seq: int, digest: str) -> None:
    session.info.setdefault(_CACHE, {})[(library_id, chain, seq)] = digest


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, *_args: Any) -> None:
    # The lock is gone with the transaction: the next append reads the head again.
    session.info.pop(_CACHE, None)


def chain_event(
    session: Session,
    event: ConsentEvent,
    *,
    library: Library,
    purpose: Purpose,
    text: ConsentText | None,
    evidence: Evidence | None,
) -> None:
    """Give a new (not yet flushed) event its place, commitment and hash."""
    seq, previous = _next_place(session, library.id, CONSENT)
    request_seq = None
    if event.request_id is not None:
        # Usually still in the session (the confirmation has just read it): no query.
        request = session.get(ConsentEvent, event.request_id)
        request_seq = request.seq if request is not None else None
    event.library_id, event.seq = library.id, seq
    event.evidence_commitment = commit_to(evidence_part(evidence)) if evidence else None
    event.hash = link(
        previous,
        consent_fields(
            library=library.slug,
            seq=seq,
            subject=event.subject_id,
            purpose=purpose.code,
            action=event.action,
            occurred_at=event.occurred_at,
            channel=event.channel,
            actor=event.actor,
            text=text_part(text),
            request=request_seq,
        ),
        event.evidence_commitment,
    )
    _remember(session, library.id, CONSENT, seq, event.hash)


def chain_audit(
    session: Session, entry: AuditEntry, note: AuditNote | None, library_slug: str
) -> None:
    """Give a new (not yet flushed) audit entry its place, commitment and hash."""
    seq, previous = _next_place(session, entry.library_id, AUDIT)
    entry.seq = seq
    entry.note_commitment = (
        commit_to(note_part(note.subject_id, note.detail, note.reason)) if note else None
    )
    entry.hash = link(
        previous,
        audit_fields(
            library=library_slug, seq=seq, staff=entry.staff_id, at=entry.at, action=entry.action
        ),
        entry.note_commitment,
    )
    _remember(session, entry.library_id, AUDIT, seq, entry.hash)


@dataclass(frozen=True)
class Head:
    """Where a library's chain stands: its length, last hash and the time of its last row."""

    library: str
    chain: str
    length: int
    hash: str
    last_at: datetime | None


def heads(session: Session, library: Library) -> dict[str, Head]:
    """Both chains' heads, read from the rows themselves (not from ChainHead)."""
    found = {}
    for chain, model, at in (
        (CONSENT, ConsentEvent, ConsentEvent.occurred_at),
        (AUDIT, AuditEntry, AuditEntry.at),
    ):
        row = session.execute(
            select(model.seq, model.hash, at)
            .where(model.library_id == library.id)
            .order_by(model.seq.desc())
            .limit(1)
        ).first()
        found[chain] = (
            Head(library.slug, chain, row[0], row[1], row[2])
            if row
            else Head(library.slug, chain, 0, GENESIS, None)
        )
    return found


@dataclass(frozen=True)
class Break:
    """The first place where a chain no longer holds, in words an operator can act on."""

    library: str
    chain: str
    seq: int | None
    row_id: int | None
    kind: str  # changed | missing | inserted | reordered | head | text | trigger
    detail: str

    def __str__(self) -> str:
        where = f"row {self.seq}" if self.seq is not None else "chain"
        row = f" (id {self.row_id})" if self.row_id is not None else ""
        return f"{self.library} {self.chain} chain, {where}{row}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class _Row:
    id: int
    seq: int
    hash: str
    commitment: str | None
    fields: dict[str, Any]


def _consent_rows(session: Session, library: Library) -> Generator[_Row, None, None]:
    request = aliased(ConsentEvent)
    query = (
        select(
            ConsentEvent.id,
            ConsentEvent.seq,
            ConsentEvent.hash,
            ConsentEvent.evidence_commitment,
            ConsentEvent.subject_id,
            Purpose.code,
            ConsentEvent.action,
            ConsentEvent.occurred_at,
            ConsentEvent.channel,
            ConsentEvent.actor,
            ConsentText.id,
            ConsentText.version,
            ConsentText.language,
            ConsentText.sha256,
            request.seq,
        )
        .join(Purpose, Purpose.id == ConsentEvent.purpose_id)
        .outerjoin(ConsentText, ConsentText.id == ConsentEvent.consent_text_id)
        .outerjoin(request, request.id == ConsentEvent.request_id)
        .where(ConsentEvent.library_id == library.id)
        .order_by(ConsentEvent.seq, ConsentEvent.id)
        .execution_options(yield_per=5000)
    )
    with session.execute(query) as result:
        for r in result:
            text = (
                None
                if r[10] is None
                else {"id": r[10], "version": r[11], "language": r[12], "sha256": r[13]}
            )
            fields = consent_fields(
                library=library.slug,
                seq=r[1],
                subject=r[4],
                purpose=r[5],
                action=r[6],
                occurred_at=r[7],
                channel=r[8],
                actor=r[9],
                text=text,
                request=r[14],
            )
            yield _Row(r[0], r[1], r[2], r[3], fields)


def _audit_rows(session: Session, library: Library) -> Generator[_Row, None, None]:
    query = (
        select(
            AuditEntry.id,
            AuditEntry.seq,
            AuditEntry.hash,
            AuditEntry.note_commitment,
            AuditEntry.staff_id,
            AuditEntry.at,
            AuditEntry.action,
        )
        .where(AuditEntry.library_id == library.id)
        .order_by(AuditEntry.seq, AuditEntry.id)
        .execution_options(yield_per=5000)
    )
    with session.execute(query) as result:
        for r in result:
            fields = audit_fields(library=library.slug, seq=r[1], staff=r[4], at=r[5], action=r[6])
            yield _Row(r[0], r[1], r[2], r[3], fields)


def _walk(
    rows: Iterator[_Row], library: str, chain: str, recorded_length: int, newest_id: int
) -> tuple[Break | None, int, str]:
    """Re-compute one chain; the first break (or None), the length and the last hash.

    A broken link is told apart by what else is odd about it: a place taken twice or
    skipped, a row written after the rows that follow it (the newest row of all sitting in
    the middle was inserted; an older one was moved), or else an edit.
    """
    expected, previous, last_id = 1, GENESIS, 0
    rows = iter(rows)
    row = next(rows, None)
    while row is not None:
        after = next(rows, None)
        found = _odd_link(row, after, expected, previous, last_id, recorded_length, newest_id)
        if found is not None:
            kind, detail, seq, row_id = found
            return Break(library, chain, seq, row_id, kind, detail), expected - 1, previous
        previous, last_id, expected, row = row.hash, row.id, expected + 1, after
    length = expected - 1
    if recorded_length > length:
        detail = f"the chain had {recorded_length} rows, {length} are left: the last were deleted"
        return Break(library, chain, length + 1, None, "missing", detail), length, previous
    return None, length, previous


def _odd_link(
    row: _Row,
    after: _Row | None,
    expected: int,
    previous: str,
    last_id: int,
    recorded_length: int,
    newest_id: int,
) -> tuple[str, str, int | None, int | None] | None:
    """What is wrong at this row (kind, words, place, row id), or None if it follows."""
    if row.seq < expected:
        return "inserted", "a second row at this place: it was added afterwards", row.seq, row.id
    if row.seq > expected:
        gone = f"{expected}" if row.seq == expected + 1 else f"{expected}–{row.seq - 1}"
        return "missing", f"row {gone} is gone: it was deleted", expected, None
    if row.seq > recorded_length:
        return "inserted", "beyond the chain's length: added outside the service", row.seq, row.id
    if row.id < last_id:
        if last_id == newest_id:
            detail = "the newest row of all sits here: it was inserted afterwards"
            return "inserted", detail, row.seq - 1, last_id
        return "reordered", "written before the row above it: rows were moved", row.seq, row.id
    if link(previous, row.fields, row.commitment) == row.hash:
        return None
    if after is not None and after.id < row.id:
        if row.id == newest_id:
            detail = "the newest row of all sits here: it was inserted afterwards"
            return "inserted", detail, row.seq, row.id
        return "reordered", "written after the row below it: rows were moved", row.seq, row.id
    if row.id == newest_id and row.seq < recorded_length:
        return (
            "inserted",
            "the newest row of all sits here: it was inserted afterwards",
            row.seq,
            row.id,
        )
    return "changed", "its content no longer matches its hash: the row was edited", row.seq, row.id


def verify_library(session: Session, library: Library) -> tuple[list[Break], dict[str, Head]]:
    """Re-compute both chains of a library; what broke first in each, and the heads."""
    recorded = dict(
        session.execute(
            select(ChainHead.chain, ChainHead.length).where(ChainHead.library_id == library.id)
        ).all()
    )
    breaks: list[Break] = []
    found: dict[str, Head] = {}
    for chain, model, rows in (
        (CONSENT, ConsentEvent, _consent_rows(session, library)),
        (AUDIT, AuditEntry, _audit_rows(session, library)),
    ):
        newest = session.scalar(select(func.max(model.id)).where(model.library_id == library.id))
        try:
            broken, length, last = _walk(
                rows, library.slug, chain, recorded.get(chain, 0), newest or 0
            )
        finally:
            rows.close()  # a break stops the walk early: close its cursor now
        if broken:
            breaks.append(broken)
        found[chain] = Head(library.slug, chain, length, last, None)
    breaks.extend(_changed_texts(session, library))
    return breaks, found


def unguarded_tables(session: Session) -> list[str]:
    """The append-only tables whose refusing triggers are gone (dropped by an operator)."""
    connection = session.connection()
    return [table for table in APPEND_ONLY if not refuses_changes(connection, table)]


def _changed_texts(session: Session, library: Library) -> list[Break]:
    """Wordings whose stored hash no longer matches their title and body."""
    texts = session.scalars(
        select(ConsentText).join(Purpose).where(Purpose.library_id == library.id)
    )
    return [
        Break(
            library.slug,
            CONSENT,
            None,
            text.id,
            "text",
            f"wording {text.id} ({text.language} v{text.version}) was edited after it was shown",
        )
        for text in texts
        if ConsentText.digest(text.title, text.body) != text.sha256
    ]


def hash_at(session: Session, library: Library, chain: str, seq: int) -> str | None:
    """The stored hash at place `seq` of a chain (the start for 0; None if there is none)."""
    if seq == 0:
        return GENESIS
    model = ConsentEvent if chain == CONSENT else AuditEntry
    return session.scalar(
        select(model.hash).where(model.library_id == library.id, model.seq == seq)
    )
