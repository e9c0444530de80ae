"""Data-subject rights: the copy of everything held (access), erasure, rectification of
the address, and restriction of processing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from .. import outbox
from ..models import (
    AuditEntry,
    ConsentDecision,
    ConsentEvent,
    ConsentText,
    DecisionRecipient,
    Evidence,
    Subject,
    Suppression,
    utcnow,
)
from .addresses import email_fingerprint, email_hmac, normalise_email
from .changes import withdraw_all
from .errors import AddressTaken
from .events import Action, Channel, Proof, Status, _evidence, _record, history, lock, state_of
from .family import EndedBy, end_all
from .family import export_rows as family_rows
from .mandates import export_rows as mandate_rows
from .mandates import forget as forget_mandates
from .minors import minor_json
from .people import find_subject
from .suppression import suppress

# Who erased, in the ledger, when no person did but the retention job.
RETENTION_ACTOR = "retention"


def export(session: Session, subject: Subject, *, suppression_key: str) -> dict[str, Any]:
    """Everything held about one person, as plain JSON-ready data (see docs/export.schema.json).

    The suppression key is required: without it the export could not say whether the
    address is suppressed, and would silently say it is not.
    """
    evidence = {
        e.id: e for e in session.scalars(select(Evidence).where(Evidence.subject_id == subject.id))
    }
    suppression = None
    if subject.erased_at is None:
        suppression = session.scalar(
            select(Suppression).where(
                Suppression.library_id == subject.library_id,
                Suppression.email_hmac == email_hmac(suppression_key, subject.email),
            )
        )
    decisions = session.scalars(
        select(ConsentDecision)
        .join(DecisionRecipient, DecisionRecipient.decision_id == ConsentDecision.id)
        .where(DecisionRecipient.subject_id == subject.id)
        .order_by(ConsentDecision.checked_at, ConsentDecision.id)
    ).all()
    reads = session.scalars(
        select(AuditEntry).where(AuditEntry.subject_id == subject.id).order_by(AuditEntry.id)
    )
    return {
        "library": subject.library.slug,
        "subject": {
            "email": subject.email,
            "card_number": subject.card_number,
            "language": subject.language,
            "created_at": subject.created_at.isoformat(),
            "last_activity_at": subject.last_activity_at.isoformat(),
            "restricted_at": _iso_or_none(subject.restricted_at),
            "erased_at": _iso_or_none(subject.erased_at),
        },
        "membership": (
            {
                "start": subject.membership_started_on.isoformat(),
                "end": _iso_or_none(subject.membership_ended_on),
            }
            if subject.membership_started_on
            else None
        ),
        "young_member": minor_json(subject),
        # Direct-debit mandates, the IBAN masked to its last four.
        "mandates": mandate_rows(session, subject),
        "suppression": (
            {"reason": suppression.reason, "since": suppression.created_at.isoformat()}
            if suppression
            else None
        ),
        "mailings_allowed": [
            {
                "decision_id": d.id,
                "purpose_id": d.purpose_id,
                "checked_at": d.checked_at.isoformat(),
            }
            for d in decisions
        ],
        "staff_access": [
            {
                "at": entry.at.isoformat(),
                "staff": entry.staff.name,
                "action": entry.action,
                "reason": entry.reason,
            }
            for entry in reads
        ],
        "consents": [
            {
                "purpose": s.purpose.code,
                "legal_basis": s.purpose.legal_basis,
                "status": s.status or "none",
                "changed_at": s.changed_at.isoformat() if s.changed_at else None,
                "consent_text": _text_json(s.text),
            }
            for s in state_of(session, subject)
        ],
        "events": [
            {
                "id": e.id,
                "purpose": e.purpose.code,
                "action": e.action,
                "occurred_at": e.occurred_at.isoformat(),
                "channel": e.channel,
                "actor": e.actor,
                "consent_text": _text_json(e.consent_text),
                "in_reply_to": e.request_id,
                "evidence": _evidence_json(evidence.get(e.evidence_id)),
            }
            for e in reversed(history(session, subject))
        ],
        "family_access": family_rows(session, subject),
    }


@dataclass
class Erasure:
    erased: bool
    # Purposes whose records must be kept for now, with the date the duty ends.
    kept: dict[str, datetime] = field(default_factory=dict)
    withdrawn: list[str] = field(default_factory=list)


def erase(
    session: Session,
    subject: Subject,
    *,
    suppression_key: str,
    actor: str,
    identification: str,
) -> Erasure:
    """Erase a person: their data and evidence go, the ledger rows stay without them, and a
    keyed hash of the address is suppressed so it is never mailed again.

    Where a legal retention duty still holds (a purpose's retention_days_after_withdrawal,
    e.g. seven years for direct debit) the person stays on record: mail stops and the
    address is suppressed, and the result says what is kept and until when.
    """
    lock(session, subject)
    now = utcnow()
    proof = Proof(details={"identification": identification[:200]})
    result = Erasure(erased=False)
    for state in state_of(session, subject):
        days = state.purpose.retention_days_after_withdrawal
        if days and state.status is not None:
            since = now if state.status == Status.GRANTED else state.changed_at or now
            if since + timedelta(days=days) > now:
                result.kept[state.purpose.code] = since + timedelta(days=days)
    result.withdrawn = withdraw_all(
        session, subject, channel=Channel.STAFF, actor=actor, proof=proof
    )
    _suppress_erased(session, subject, suppression_key, actor)
    end_all(session, subject, EndedBy.ERASURE)  # also when a legal duty keeps the record
    if result.kept:
        return result
    _wipe(session, subject, now, actor=actor, channel=Channel.STAFF, proof=proof)
    result.erased = True
    return result


def erase_expired(
    session: Session, subject: Subject, *, suppression_key: str, category: str
) -> bool:
    """Erase a person whose retention period has passed; False if they already were.

    The same erasure as a privacy officer's, with actor `retention`: the ledger rows stay
    without personal data, and webhook receivers hear `subject.erased`. The address is
    suppressed only where the person stopped something (a withdrawal, an objection, a
    complaint): a sign-up never confirmed leaves no trace that could block a new one. The
    caller decided that the period has passed, legal duties (direct debit) included.
    """
    lock(session, subject)
    if subject.erased_at is not None:
        return False
    stopped = session.scalar(
        select(ConsentEvent.id)
        .where(
            ConsentEvent.subject_id == subject.id,
            ConsentEvent.action.in_((Action.WITHDRAWN, Action.OBJECTED)),
        )
        .limit(1)
    )
    if stopped is not None:
        _suppress_erased(session, subject, suppression_key, RETENTION_ACTOR)
    proof = Proof(details={"retention": category})
    _wipe(session, subject, utcnow(), actor=RETENTION_ACTOR, channel=Channel.RETENTION, proof=proof)
    return True


def _suppress_erased(session: Session, subject: Subject, suppression_key: str, actor: str) -> None:
    suppress(
        session, subject.library, subject.email, "erased",
        suppression_key=suppression_key, actor=actor,
    )  # fmt: skip


def _wipe(
    session: Session, subject: Subject, now: datetime, *, actor: str, channel: str, proof: Proof
) -> None:
    """Take every personal detail out of the person's row and evidence; end each purpose
    with an `erased` event; tell webhook receivers."""
    old_email = subject.email
    for row in session.scalars(select(Evidence).where(Evidence.subject_id == subject.id)):
        row.ip_address = row.user_agent = row.origin = None
        row.details = {}
    # The erasure's own proof: who did it and how the person was identified.
    evidence = _evidence(session, subject, proof)
    for state in state_of(session, subject):
        if state.status is not None:
            _record(
                session, subject, state.purpose, Action.ERASED, channel, now,
                actor=actor, evidence=evidence, announce=False,
            )  # fmt: skip
    forget_mandates(session, subject)
    outbox.forget_address(session, subject.library_id, old_email)
    outbox.enqueue_event(
        session,
        subject.library_id,
        "subject.erased",
        {"library": subject.library.slug, "email": old_email, "erased_at": _iso_or_none(now)},
    )
    subject.email = f"erased:{subject.id}"
    subject.card_number = None
    subject.pending_email = None
    subject.membership_started_on = subject.membership_ended_on = None
    # Young members: the year and the guardian's address are about the person too.
    subject.birth_year = subject.guardian_email = None
    subject.erased_at = now
    subject.restricted_at = None
    # Family access, given or held, ends with the person: nobody manages an erased record.
    end_all(session, subject, EndedBy.ERASURE)
    session.flush()


def request_email_change(session: Session, subject: Subject, new_email: str) -> str:
    """Note a corrected address; it takes effect only when a mail to it is confirmed."""
    new_email = normalise_email(new_email)
    lock(session, subject)
    other = find_subject(session, subject.library, new_email)
    if other is not None and other.id != subject.id:
        raise AddressTaken(new_email)
    subject.pending_email = new_email
    return new_email


def confirm_email_change(session: Session, subject: Subject, fingerprint: str) -> bool:
    """Use the corrected address; consents move with the person. False if nothing waits."""
    lock(session, subject)
    pending = subject.pending_email
    if not pending or email_fingerprint(pending) != fingerprint:
        return False
    if find_subject(session, subject.library, pending) is not None:
        subject.pending_email = None
        return False
    subject.email, subject.pending_email = pending, None
    subject.last_activity_at = utcnow()
    return True


def restrict(session: Session, subject: Subject) -> None:
    """Freeze the person: checks refuse with reason 'restricted', nothing new can start."""
    lock(session, subject)
    subject.restricted_at = subject.restricted_at or utcnow()
    # Frozen means frozen for family members too; lifting it does not bring access back.
    end_all(session, subject, EndedBy.RESTRICTION)


def lift_restriction(session: Session, subject: Subject) -> None:
    lock(session, subject)
    subject.restricted_at = None


def _iso_or_none(moment: datetime | date | None) -> str | None:
    return moment.isoformat() if moment else None


def _text_json(text: ConsentText | None) -> dict[str, Any] | None:
    if text is None:
        return None
    return {
        "language": text.language,
        "version": text.version,
        "title": text.title,
        "body": text.body,
        "sha256": text.sha256,
    }


def _evidence_json(evidence: Evidence | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    return {
        "ip_address": evidence.ip_address,
        "user_agent": evidence.user_agent,
        "origin": evidence.origin,
        **evidence.details,
    }
