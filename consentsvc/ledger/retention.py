"""Retention: what is due to go, per library and data category, at a given moment, and
making it go in batches.

Two kinds of category. People: a person is erased (or anonymised, which here is the same
erasure: nothing that identifies them stays) when a sign-up was never confirmed, when no
consent and no membership holds them any more, after years without their own activity, or
at the library's overall maximum — but never while a legal duty (direct-debit proof) still
holds. Rows: evidence details, desk notes, check decisions, audit entries and delivered
outbox messages go, or lose their personal part, when they are old enough.

The periods are the library's settings (libraries.retention_of). Nothing here commits or
locks a library: the job runner (consentsvc.retention) does, one batch per transaction.
ConsentEvent and AuditEntry rows are never touched (the database refuses it); an audit
entry's personal part is its AuditNote; what stays forever is described in docs/retention.md.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.orm import Session

from ..libraries import RETENTION_UNITS, retention_of
from ..models import (
    AuditEntry,
    AuditNote,
    ConsentDecision,
    ConsentEvent,
    ConsentState,
    DecisionRecipient,
    Evidence,
    Library,
    OutboxMessage,
    Purpose,
    Subject,
    local_today,
)
from .events import Action, Status
from .mandates import ended_due as mandates_ended_due
from .mandates import wipe as wipe_mandates
from .rights import erase_expired

# Categories that erase a person, in the order they are looked at; the first that applies
# is the one the run counts.
PEOPLE_CATEGORIES = (
    "pending_signup",
    "payment",
    "contact_after_membership",
    "overall_maximum",
    "inactive",
)
# Categories that remove rows, or the personal part of rows, once they are old enough.
ROW_CATEGORIES = ("evidence_details", "desk_notes", "check_decisions", "audit", "outbox")
# The audit actions whose reason is the note typed at the desk (consent recorded, mail
# stopped). The identification written down for a rights request (export, erasure,
# correction, restriction) is not a desk note: it shows how the request was checked, and
# goes with its audit note.
DESK_STOP_ACTIONS = ("withdrawal", "objection")
# Network addresses evidence may hold in its details besides ip_address (an imported list's
# confirmation IP); they go with the other evidence details.
ADDRESS_DETAILS = ("confirm_ip",)
BATCH_SIZE = 500
# A consent that still runs keeps a person (a pending one only while it may be confirmed).
_RUNNING = (Status.GRANTED, Status.RECONFIRM_REQUESTED)
_STOPPED = (Status.WITHDRAWN, Status.OBJECTED)


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (the 31st becomes the last day
    of a shorter month)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


@dataclass(frozen=True)
class RetentionPolicy:
    """One library's periods, turned into cut-offs at one moment: data from before a
    category's cut-off is due."""

    library_id: int
    now: datetime
    periods: dict[str, int]

    @classmethod
    def of(cls, library: Library, now: datetime) -> RetentionPolicy:
        return cls(library.id, now, retention_of(library))

    def cutoff(self, category: str) -> datetime | None:
        """None where the library switched the category off (an overall maximum of 0)."""
        amount = self.periods[category]
        if amount <= 0:
            return None
        if RETENTION_UNITS[category] == "days":
            return self.now - timedelta(days=amount)
        return months_before(self.now, amount)


@dataclass
class Person:
    """What retention needs to know of one person."""

    subject: Subject
    # purpose id -> (status, changed_at)
    states: dict[int, tuple[str, datetime]] = field(default_factory=dict)
    actions: set[str] = field(default_factory=set)
    last_event_at: datetime | None = None


def membership_end(subject: Subject) -> datetime | None:
    """When the membership ended: the end of its last day (the library system knows dates)."""
    if subject.membership_ended_on is None:
        return None
    return datetime.combine(subject.membership_ended_on + timedelta(days=1), time(), UTC)


def membership_runs(subject: Subject, today: date) -> bool:
    if subject.membership_ended_on is not None:
        return subject.membership_ended_on >= today
    return subject.membership_started_on is not None


def category_due(person: Person, policy: RetentionPolicy, duty_purposes: set[int]) -> str | None:
    """The category for which this person is due to be erased now, or None."""
    subject, now = person.subject, policy.now
    if subject.erased_at is not None or membership_runs(subject, local_today(now)):
        return None
    if subject.restricted_at is not None:
        # Restricted (GDPR art. 18): kept as it is until the privacy officer lifts it, often
        # because the person needs the data for a claim.
        return None
    # A legal duty (direct-debit proof) holds while the mandate runs and for the payment
    # period after it ended; nothing erases the person before then.
    had_duty = False
    payment_cutoff = policy.cutoff("payment")
    for purpose_id in duty_purposes:
        status, changed_at = person.states.get(purpose_id, (None, now))
        if status is None:
            continue
        if status not in _STOPPED or payment_cutoff is None or changed_at > payment_cutoff:
            return None
        had_duty = True
    ended = membership_end(subject)
    pending_cutoff = policy.cutoff("pending_signup")
    if person.actions == {Action.REQUESTED} and ended is None:
        if pending_cutoff is not None and _latest(person.last_event_at) <= pending_cutoff:
            return "pending_signup"
        return None
    running = any(
        status in _RUNNING
        or (status == Status.PENDING and (pending_cutoff is None or at > pending_cutoff))
        for status, at in person.states.values()
    )
    contact_cutoff = policy.cutoff("contact_after_membership")
    clock = _latest(person.last_event_at, ended, subject.created_at)
    if not running and contact_cutoff is not None and clock <= contact_cutoff:
        return "payment" if had_duty else "contact_after_membership"
    overall_cutoff = policy.cutoff("overall_maximum")
    if overall_cutoff is not None and _latest(subject.last_activity_at, ended) <= overall_cutoff:
        return "overall_maximum"
    inactive_cutoff = policy.cutoff("inactive")
    if inactive_cutoff is not None and subject.last_activity_at <= inactive_cutoff:
        return "inactive"
    return None


def _latest(*moments: datetime | None) -> datetime:
    return max(m for m in moments if m is not None)


def people_batch(
    session: Session,
    library: Library,
    policy: RetentionPolicy,
    *,
    after_id: int = 0,
    limit: int = BATCH_SIZE,
) -> tuple[list[tuple[Subject, str]], int | None]:
    """The people due among the next `limit` of the library (by id, after `after_id`), and
    the id to continue after (None: the library is done)."""
    subjects = list(
        session.scalars(
            select(Subject)
            .where(
                Subject.library_id == library.id,
                Subject.erased_at.is_(None),
                Subject.id > after_id,
            )
            .order_by(Subject.id)
            .limit(limit)
        )
    )
    if not subjects:
        return [], None
    people = {s.id: Person(s) for s in subjects}
    ids = list(people)
    for state in session.execute(
        select(ConsentState.subject_id, ConsentState.purpose_id, ConsentState.status,
               ConsentState.changed_at).where(ConsentState.subject_id.in_(ids))
    ):  # fmt: skip
        people[state.subject_id].states[state.purpose_id] = (state.status, state.changed_at)
    for row in session.execute(
        select(ConsentEvent.subject_id, ConsentEvent.action, func.max(ConsentEvent.occurred_at))
        .where(ConsentEvent.subject_id.in_(ids))
        .group_by(ConsentEvent.subject_id, ConsentEvent.action)
    ):
        person = people[row[0]]
        person.actions.add(row[1])
        person.last_event_at = _latest(person.last_event_at, row[2])
    duty = set(
        session.scalars(
            select(Purpose.id).where(
                Purpose.library_id == library.id,
                Purpose.retention_days_after_withdrawal.is_not(None),
            )
        )
    )
    due = [
        (person.subject, category)
        for person in people.values()
        if (category := category_due(person, policy, duty)) is not None
    ]
    return due, subjects[-1].id


def people_due(session: Session, library: Library, policy: RetentionPolicy) -> dict[str, int]:
    """How many people each category would erase now."""
    counts = dict.fromkeys(PEOPLE_CATEGORIES, 0)
    after: int | None = 0
    while after is not None:
        due, after = people_batch(session, library, policy, after_id=after)
        for _subject, category in due:
            counts[category] += 1
    return counts


def erase_people(
    session: Session, due: Iterable[tuple[Subject, str]], *, suppression_key: str
) -> dict[str, int]:
    """Erase the people of one batch; counts per category of those this call erased."""
    counts: dict[str, int] = {}
    for subject, category in due:
        if erase_expired(session, subject, suppression_key=suppression_key, category=category):
            counts[category] = counts.get(category, 0) + 1
    return counts


def rows_due(session: Session, library: Library, policy: RetentionPolicy) -> dict[str, int]:
    """How many rows each row category would change or remove now."""
    counts = {c: _count(session, _due_rows(library, policy, c)) for c in ROW_CATEGORIES}
    counts["desk_notes"] += _count(session, _audit_reasons_due(library, policy))
    return counts


def _count(session: Session, query: Select[tuple[int]] | None) -> int:
    if query is None:
        return 0
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def retention_due(session: Session, library: Library, now: datetime) -> dict[str, int]:
    """What a run would do now, per category (the dry run); changes nothing."""
    policy = RetentionPolicy.of(library, now)
    counts = {**people_due(session, library, policy), **rows_due(session, library, policy)}
    counts["payment"] += mandates_due(session, library, policy)
    return counts


def mandates_due(session: Session, library: Library, policy: RetentionPolicy) -> int:
    """Ended mandates whose IBAN and holder are due to go (the payment period after the
    end), also of people who stay; counted under "payment" with the people it erases."""
    cutoff = policy.cutoff("payment")
    if cutoff is None:
        return 0
    return len(mandates_ended_due(session, library.id, cutoff, limit=10**9))


def wipe_ended_mandates(
    session: Session, library: Library, policy: RetentionPolicy, limit: int = BATCH_SIZE
) -> int:
    """Wipe up to `limit` ended mandates whose payment period has passed; the number done."""
    cutoff = policy.cutoff("payment")
    if cutoff is None:
        return 0
    ids = mandates_ended_due(session, library.id, cutoff, limit)
    done = wipe_mandates(session, ids, policy.now)
    session.flush()
    return done


def apply_rows(
    session: Session,
    library: Library,
    policy: RetentionPolicy,
    category: str,
    limit: int = BATCH_SIZE,
) -> int:
    """Change or remove up to `limit` due rows of one category; the number done (fewer than
    `limit`: the category is done)."""
    query = _due_rows(library, policy, category)
    if query is None:
        return 0
    done = 0
    if category == "desk_notes":
        # Notes in evidence first, then the reasons typed into the audit trail.
        ids = list(session.scalars(query.limit(limit)))
        for evidence in session.scalars(select(Evidence).where(Evidence.id.in_(ids))):
            evidence.details = {k: v for k, v in evidence.details.items() if k != "note"}
            done += 1
        if done < limit:
            reasons = _audit_reasons_due(library, policy)
            ids = list(session.scalars(reasons.limit(limit - done))) if reasons is not None else []
            session.execute(
                update(AuditNote).where(AuditNote.entry_id.in_(ids)).values(reason=None)
            )
            done += len(ids)
        session.flush()
        return done
    ids = list(session.scalars(query.limit(limit)))
    if not ids:
        return 0
    if category == "evidence_details":
        session.execute(
            update(Evidence)
            .where(Evidence.id.in_(ids))
            .values(ip_address=None, user_agent=None, origin=None)
        )
        # An imported list may also bring the address its confirmation came from.
        for evidence in session.scalars(
            select(Evidence).where(Evidence.id.in_(ids), _has_detail_addresses())
        ):
            evidence.details = {
                k: v for k, v in evidence.details.items() if k not in ADDRESS_DETAILS
            }
        session.flush()  # before expire_all below, which would drop the change
    elif category == "check_decisions":
        session.execute(delete(DecisionRecipient).where(DecisionRecipient.decision_id.in_(ids)))
        session.execute(delete(ConsentDecision).where(ConsentDecision.id.in_(ids)))
    elif category == "audit":
        # The entry stays, a link in the audit chain; whom it was about and why goes.
        session.execute(delete(AuditNote).where(AuditNote.entry_id.in_(ids)))
    elif category == "outbox":
        session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
    session.expire_all()
    return len(ids)


def _has_detail_addresses() -> Any:
    return or_(*(Evidence.details[key].as_string().is_not(None) for key in ADDRESS_DETAILS))


def _due_rows(
    library: Library, policy: RetentionPolicy, category: str
) -> Select[tuple[int]] | None:
    """The ids of the rows of one category that are due (desk notes: the evidence part)."""
    cutoff = policy.cutoff(category)
    if cutoff is None:
        return None
    if category in ("evidence_details", "desk_notes"):
        of_library = select(Subject.id).where(Subject.library_id == library.id)
        query = select(Evidence.id).where(
            Evidence.subject_id.in_(of_library), Evidence.created_at <= cutoff
        )
        if category == "desk_notes":
            return query.where(Evidence.details["note"].as_string().is_not(None)).order_by(
                Evidence.id
            )
        return query.where(
            or_(
                Evidence.ip_address.is_not(None),
                Evidence.user_agent.is_not(None),
                Evidence.origin.is_not(None),
                _has_detail_addresses(),
            )
        ).order_by(Evidence.id)
    if category == "check_decisions":
        return (
            select(ConsentDecision.id)
            .where(ConsentDecision.library_id == library.id, ConsentDecision.checked_at <= cutoff)
            .order_by(ConsentDecision.id)
        )
    if category == "audit":
        return (
            select(AuditEntry.id)
            .join(AuditNote, AuditNote.entry_id == AuditEntry.id)
            .where(AuditEntry.library_id == library.id, AuditEntry.at <= cutoff)
            .order_by(AuditEntry.id)
        )
    if category == "outbox":
        return (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.library_id == library.id,
                or_(OutboxMessage.delivered_at <= cutoff, OutboxMessage.dead_at <= cutoff),
            )
            .order_by(OutboxMessage.id)
        )
    raise ValueError(f"not a row category: {category}")


def _audit_reasons_due(library: Library, policy: RetentionPolicy) -> Select[tuple[int]] | None:
    cutoff = policy.cutoff("desk_notes")
    if cutoff is None:
        return None
    return (
        select(AuditEntry.id)
        .join(AuditNote, AuditNote.entry_id == AuditEntry.id)
        .where(
            AuditEntry.library_id == library.id,
            AuditEntry.at <= cutoff,
            AuditNote.reason.is_not(None),
            AuditEntry.action.like("consent.%") | AuditEntry.action.in_(DESK_STOP_ACTIONS),
        )
        .order_by(AuditEntry.id)
    )
