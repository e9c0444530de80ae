"""The auditor's view of one person: for a moment in the past, what held for each purpose
of their library then, and the events that led there, with the texts they agreed to, the
evidence, and each event's place in the library's hash chain.

The state then is the fold of the events up to the moment (the same STATUS_AFTER as the
current state), so it can be shown to agree with the chain. A moment is a day (its end) or
a day and a time, in Europe/Amsterdam as the console shows times. Everything comes from
the person's own rows, read by index: nothing here reads the rest of the library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, selectinload

from ..models import (
    AMSTERDAM,
    ApiClient,
    ConsentEvent,
    ConsentState,
    ConsentText,
    Evidence,
    LedgerAnchor,
    Purpose,
    StaffUser,
    Subject,
    Suppression,
    utcnow,
)
from .addresses import email_hmac
from .chain import receipt_id
from .events import STATUS_AFTER, Action
from .purposes import on_as_member

# The events a member gets a signed receipt of (the same as consentsvc.receipts, which
# builds on the ledger and so cannot be imported here).
RECEIPT_ACTIONS = frozenset({Action.GRANTED, Action.WITHDRAWN, Action.OBJECTED})
# The earliest year asked about: nothing in the ledger is older, and much older dates do
# not survive a conversion to UTC.
FIRST_YEAR = 1900

_ISO_DAY = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_DUTCH_DAY = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})")
_TIME = re.compile(r"(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?")


class InvalidMoment(ValueError):
    """A day or time that cannot be asked about; `code` says why (day, time, future)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Moment:
    """A day, or a day and a time (to the minute or second), in Europe/Amsterdam.

    It includes everything up to its end: the whole day, or the whole minute.
    """

    day: date
    at: time | None = None
    seconds: bool = False

    @property
    def start(self) -> datetime:
        return datetime.combine(self.day, self.at or time(), AMSTERDAM)

    @property
    def until(self) -> datetime:
        """The first instant after the moment (UTC-aware): events before it count."""
        if self.at is None:
            return datetime.combine(self.day + timedelta(days=1), time(), AMSTERDAM)
        return self.start + (timedelta(seconds=1) if self.seconds else timedelta(minutes=1))


def read_moment(day_text: str, time_text: str = "", *, now: datetime | None = None) -> Moment:
    """The moment typed into a form: 2026-03-03 or 3-3-2026, and optionally 14:30.

    Raises InvalidMoment: `day` (not a date), `time` (not a time) or `future`.
    """
    day_text, time_text = (day_text or "").strip(), (time_text or "").strip()
    day = _read_day(day_text)
    at, seconds = None, False
    if time_text:
        found = _TIME.fullmatch(time_text)
        if found is None:
            raise InvalidMoment("time")
        hour, minute, second = int(found[1]), int(found[2]), int(found[3] or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise InvalidMoment("time")
        at, seconds = time(hour, minute, second), found[3] is not None
    moment = Moment(day, at, seconds)
    if moment.start > (now or utcnow()):
        raise InvalidMoment("future")
    return moment


def _read_day(text: str) -> date:
    iso, dutch = _ISO_DAY.fullmatch(text), _DUTCH_DAY.fullmatch(text)
    if iso is not None:
        year, month, day = int(iso[1]), int(iso[2]), int(iso[3])
    elif dutch is not None:
        day, month, year = int(dutch[1]), int(dutch[2]), int(dutch[3])
    else:
        raise InvalidMoment("day")
    try:
        result = date(year, month, day)
    except ValueError:
        raise InvalidMoment("day") from None
    if result.year < FIRST_YEAR:
        raise InvalidMoment("day")
    return result


@dataclass(frozen=True)
class EvidenceSummary:
    """How an event reached the service, as far as it is still kept (retention and erasure
    take the personal parts out; the chain's commitment to them stays)."""

    created_at: datetime
    ip_address: str | None
    user_agent: str | None
    origin: str | None
    # Other details as recorded (how, note, client, identification, …), as text.
    details: dict[str, str]

    @property
    def wiped(self) -> bool:
        return not (self.ip_address or self.user_agent or self.origin or self.details)


@dataclass(frozen=True)
class EventRecord:
    """One event with what proves it."""

    id: int
    action: str
    status_after: str
    occurred_at: datetime
    channel: str
    actor: str | None
    # The actor's name where it is a colleague or an API key of the library.
    actor_name: str | None
    text: ConsentText | None
    evidence: EvidenceSummary | None
    # Its place in the library's consent chain, and the keyed hash standing in the chain
    # for its evidence (which may have been wiped since).
    seq: int
    hash: str
    evidence_commitment: str | None
    receipt_id: str | None
    # The signed head statements (anchors) that include it: the first, which shows the
    # event was there by that day, and the latest. None: not yet anchored.
    first_anchor: LedgerAnchor | None = None
    latest_anchor: LedgerAnchor | None = None


@dataclass(frozen=True)
class PurposeThen:
    """One purpose: what held at the moment, why, and what holds now."""

    purpose: Purpose
    # The fold of the events up to the moment; None: never asked by then.
    status: str | None
    since: datetime | None
    text: ConsentText | None
    # On as a member then (legitimate interest, soft opt-in), by the membership known now.
    as_member: bool
    events: list[EventRecord]
    later: list[EventRecord]
    status_now: str | None
    since_now: datetime | None


@dataclass(frozen=True)
class AuditorView:
    subject: Subject
    moment: Moment
    purposes: list[PurposeThen]
    # An address never to be mailed, whatever the consent: when, why (None: not then).
    suppressed_then: Suppression | None = None
    suppressed_now: Suppression | None = None
    looked_at: datetime = field(default_factory=utcnow)


def view_at(
    session: Session, subject: Subject, moment: Moment, *, suppression_key: str
) -> AuditorView:
    """What held for each purpose of the person's library at the moment, and now."""
    until = moment.until
    events = list(
        session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subject_id == subject.id)
            .order_by(ConsentEvent.id)
            .options(selectinload(ConsentEvent.consent_text), selectinload(ConsentEvent.evidence))
        )
    )
    names = _actor_names(session, subject, events)
    first_anchors = _first_anchors(session, subject)
    latest = session.scalar(
        select(LedgerAnchor)
        .where(LedgerAnchor.library_id == subject.library_id)
        .order_by(LedgerAnchor.issued_at.desc(), LedgerAnchor.id.desc())
        .limit(1)
    )

    def record(event: ConsentEvent) -> EventRecord:
        covered = latest is not None and latest.consent_length >= event.seq
        return _record(event, names, first_anchors.get(event.id), latest if covered else None)

    now_states = {
        s.purpose_id: s
        for s in session.scalars(select(ConsentState).where(ConsentState.subject_id == subject.id))
    }
    by_purpose: dict[int, list[ConsentEvent]] = {}
    for event in events:
        by_purpose.setdefault(event.purpose_id, []).append(event)
    purposes = []
    for purpose in subject.library.purposes:
        own = by_purpose.get(purpose.id, [])
        before = [e for e in own if e.occurred_at < until]
        after = [e for e in own if e.occurred_at >= until]
        last = before[-1] if before else None
        status = STATUS_AFTER[last.action] if last else None
        state = now_states.get(purpose.id)
        purposes.append(
            PurposeThen(
                purpose=purpose,
                status=status,
                since=last.occurred_at if last else None,
                text=last.consent_text if last else None,
                as_member=on_as_member(purpose, subject, status, moment.day),
                events=[record(e) for e in before],
                later=[record(e) for e in after],
                status_now=state.status if state else None,
                since_now=state.changed_at if state else None,
            )
        )
    suppression = _suppression(session, subject, suppression_key)
    return AuditorView(
        subject=subject,
        moment=moment,
        purposes=purposes,
        suppressed_then=(
            suppression if suppression is not None and suppression.created_at < until else None
        ),
        suppressed_now=suppression,
    )


def suppression_of(
    session: Session, subject_library_id: int, email: str, *, suppression_key: str
) -> Suppression | None:
    """The suppression of an address in a library (it outlives an erased person)."""
    return session.scalar(
        select(Suppression).where(
            Suppression.library_id == subject_library_id,
            Suppression.email_hmac == email_hmac(suppression_key, email),
        )
    )


def _suppression(session: Session, subject: Subject, suppression_key: str) -> Suppression | None:
    if subject.erased_at is not None:
        return None  # the address is gone, and with it the key to its suppression
    return suppression_of(
        session, subject.library_id, subject.email, suppression_key=suppression_key
    )


def _first_anchors(session: Session, subject: Subject) -> dict[int, LedgerAnchor]:
    """Per event of the person, the first anchor that includes it (one statement for the
    ids, one for the anchors)."""
    anchor = aliased(LedgerAnchor)
    first = (
        select(anchor.id)
        .where(
            anchor.library_id == ConsentEvent.library_id,
            anchor.consent_length >= ConsentEvent.seq,
        )
        .order_by(anchor.issued_at, anchor.id)
        .limit(1)
        .correlate(ConsentEvent)
        .scalar_subquery()
    )
    pairs = {
        event_id: anchor_id
        for event_id, anchor_id in session.execute(
            select(ConsentEvent.id, first).where(ConsentEvent.subject_id == subject.id)
        )
        if anchor_id is not None
    }
    if not pairs:
        return {}
    anchors = {
        a.id: a
        for a in session.scalars(
            select(LedgerAnchor).where(LedgerAnchor.id.in_(set(pairs.values())))
        )
    }
    return {event_id: anchors[anchor_id] for event_id, anchor_id in pairs.items()}


def _record(
    event: ConsentEvent,
    names: dict[str, str],
    first_anchor: LedgerAnchor | None,
    latest_anchor: LedgerAnchor | None,
) -> EventRecord:
    return EventRecord(
        id=event.id,
        action=event.action,
        status_after=STATUS_AFTER[event.action],
        occurred_at=event.occurred_at,
        channel=event.channel,
        actor=event.actor,
        actor_name=names.get(event.actor or ""),
        text=event.consent_text,
        evidence=_summary(event.evidence) if event.evidence is not None else None,
        seq=event.seq,
        hash=event.hash,
        evidence_commitment=event.evidence_commitment,
        receipt_id=receipt_id(event.hash) if event.action in RECEIPT_ACTIONS else None,
        first_anchor=first_anchor,
        latest_anchor=latest_anchor,
    )


def _summary(evidence: Evidence) -> EvidenceSummary:
    return EvidenceSummary(
        created_at=evidence.created_at,
        ip_address=evidence.ip_address,
        user_agent=evidence.user_agent,
        origin=evidence.origin,
        details={str(k): _as_text(v) for k, v in sorted((evidence.details or {}).items())},
    )


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _actor_names(
    session: Session, subject: Subject, events: Sequence[ConsentEvent]
) -> dict[str, str]:
    """Names for "staff:3" and "client:5" among the actors: the library's own only."""
    wanted: dict[str, set[int]] = {"staff": set(), "client": set()}
    for event in events:
        kind, _, number = (event.actor or "").partition(":")
        if kind in wanted and number.isdigit():
            wanted[kind].add(int(number))
    names = {}
    if wanted["staff"]:
        for person in session.scalars(select(StaffUser).where(StaffUser.id.in_(wanted["staff"]))):
            names[f"staff:{person.id}"] = person.name
    if wanted["client"]:
        for client in session.scalars(
            select(ApiClient).where(
                ApiClient.id.in_(wanted["client"]), ApiClient.library_id == subject.library_id
            )
        ):
            names[f"client:{client.id}"] = client.name
    return names
