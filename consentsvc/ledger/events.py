"""The event log and its fold: the vocabulary of actions, statuses and channels, how an
event and its evidence are appended, and the current state that follows from them.

Each change appends a ConsentEvent and writes the matching ConsentState in the same
transaction, so the state is always the fold of the events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from .. import outbox
from ..models import (
    ConsentEvent,
    ConsentState,
    ConsentText,
    Evidence,
    Purpose,
    Subject,
    utcnow,
)
from .chain import chain_event
from .purposes import on_as_member


class Action:
    REQUESTED = "requested"
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"
    OBJECTED = "objected"
    ERASED = "erased"
    RECONFIRM_REQUESTED = "reconfirm_requested"


class Status:
    PENDING = "pending"
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"
    OBJECTED = "objected"
    ERASED = "erased"
    RECONFIRM_REQUESTED = "reconfirm_requested"


class Channel:
    WEB_FORM = "web_form"
    EMAIL_LINK = "email_link"
    ONE_CLICK = "one_click"
    UNSUBSCRIBE_PAGE = "unsubscribe_page"
    PREFERENCE_CENTRE = "preference_centre"
    STAFF = "staff"
    API = "api"
    IMPORT = "import"
    PROVIDER_UNSUBSCRIBE = "provider_unsubscribe"
    PROVIDER_COMPLAINT = "provider_complaint"
    PROVIDER_BOUNCE = "provider_bounce"
    # The retention job ended it: the period the library keeps data for had passed.
    RETENTION = "retention"
    # A family member the person gave access to changed it (ledger/family.py); the actor
    # names them.
    FAMILY = "family"


# The status an event leaves behind. The ledger only records an event that is meant to take
# effect, so the state after any sequence of events is the status of its last event.
STATUS_AFTER = {
    Action.REQUESTED: Status.PENDING,
    Action.GRANTED: Status.GRANTED,
    Action.WITHDRAWN: Status.WITHDRAWN,
    Action.OBJECTED: Status.OBJECTED,
    Action.ERASED: Status.ERASED,
    Action.RECONFIRM_REQUESTED: Status.RECONFIRM_REQUESTED,
}


@dataclass(frozen=True)
class Proof:
    """How an action reached us, kept as evidence next to the event."""

    ip_address: str | None = None
    user_agent: str | None = None
    origin: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PurposeState:
    purpose: Purpose
    status: str | None
    changed_at: datetime | None
    text: ConsentText | None
    # Never asked, but on because the person is a member (soft opt-in, see purposes).
    as_member: bool = False


def state_of(session: Session, subject: Subject) -> list[PurposeState]:
    """Every purpose of the subject's library with its current state (None: never asked)."""
    rows = {
        s.purpose_id: s
        for s in session.scalars(select(ConsentState).where(ConsentState.subject_id == subject.id))
    }
    result = []
    for purpose in subject.library.purposes:
        row = rows.get(purpose.id)
        text = (
            session.get(ConsentText, row.consent_text_id) if row and row.consent_text_id else None
        )
        status = row.status if row else None
        result.append(
            PurposeState(
                purpose,
                status,
                row.changed_at if row else None,
                text,
                as_member=on_as_member(purpose, subject, status),
            )
        )
    return result


def history(session: Session, subject: Subject) -> list[ConsentEvent]:
    """Every event of the subject, newest first."""
    return list(
        session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subject_id == subject.id)
            .order_by(ConsentEvent.id.desc())
        )
    )


def lock(session: Session, subject: Subject) -> None:
    """Take the person's row for this transaction and reload it.

    Serialises writers per person on PostgreSQL (SQLite already writes one at a time), and
    the reload means cool-down stamps written by a concurrent request are seen. Changes not
    yet written are flushed first: a refresh would silently throw them away.
    """
    session.flush()
    session.refresh(subject, with_for_update=True)


def status_of(session: Session, subject: Subject, purpose: Purpose) -> str | None:
    """The current status of one purpose for one person (None: never asked)."""
    state = state_row(session, subject, purpose)
    return state.status if state else None


def state_row(session: Session, subject: Subject, purpose: Purpose) -> ConsentState | None:
    """The state row itself: a change holds on to it until _record has updated it.

    The session forgets an object nobody refers to (its identity map is weak), so with only
    the status in hand _record would load the same row a second time.
    """
    return session.get(ConsentState, (subject.id, purpose.id))


def _evidence(
    session: Session, subject: Subject, proof: Proof | None, at: datetime | None = None
) -> Evidence | None:
    if proof is None:
        return None
    evidence = Evidence(
        subject_id=subject.id,
        created_at=at or utcnow(),
        ip_address=proof.ip_address,
        user_agent=(proof.user_agent or "")[:400] or None,
        origin=(proof.origin or "")[:200] or None,
        details=proof.details,
    )
    session.add(evidence)
    session.flush()
    return evidence


def _record(
    session: Session,
    subject: Subject,
    purpose: Purpose,
    action: str,
    channel: str,
    now: datetime,
    *,
    text: ConsentText | None = None,
    actor: str | None = None,
    evidence: Evidence | None = None,
    request_id: int | None = None,
    announce: bool = True,
) -> ConsentEvent:
    event = ConsentEvent(
        subject_id=subject.id,
        purpose_id=purpose.id,
        action=action,
        occurred_at=now,
        channel=channel,
        consent_text_id=text.id if text else None,
        actor=actor,
        evidence_id=evidence.id if evidence else None,
        request_id=request_id,
    )
    chain_event(
        session, event, library=subject.library, purpose=purpose, text=text, evidence=evidence
    )
    session.add(event)
    session.flush()
    state = session.get(ConsentState, (subject.id, purpose.id))
    if state is None:
        state = ConsentState(subject_id=subject.id, purpose_id=purpose.id)
        session.add(state)
    state.status = STATUS_AFTER[action]
    state.consent_text_id = event.consent_text_id
    state.changed_at = now
    state.last_event_id = event.id
    if announce and action != Action.REQUESTED:
        # Senders hear of every change that decides whether a person may be mailed; the
        # row is part of this transaction, so no change goes unannounced.
        outbox.enqueue_event(
            session,
            subject.library_id,
            f"consent.{action}",
            {
                "event_id": event.id,
                "library": subject.library.slug,
                "email": subject.email,
                "purpose": purpose.code,
                "channel": channel,
                "occurred_at": now.isoformat().replace("+00:00", "Z"),
            },
        )
    session.flush()
    return event
