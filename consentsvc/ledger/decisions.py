"""What a past consent check answered, read back for the sender that relied on it.

A kept decision (ledger.check.record_decision) holds who asked, for which purpose, the
counts per reason and the people it allowed, by subject id. Reading it back names those
people by the address the library knows now; an erased person is counted, never named.
A decision whose retention period (the library's `check_decisions` months) has passed is
gone, whether or not the retention job has removed its row yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import ConsentDecision, DecisionRecipient, Library, Purpose, Subject, utcnow
from .retention import RetentionPolicy, months_before

# The form record_decision gives an id (str(uuid4())); other spellings are no id of ours.
DECISION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RETENTION_CATEGORY = "check_decisions"


@dataclass(frozen=True)
class KeptDecision:
    """One kept answer, as far as it can be told now."""

    id: str
    purpose: Purpose
    checked_at: datetime
    recipients: int
    reasons: dict[str, int]
    # When retention removes it (None: the library keeps check answers without end).
    kept_until: datetime | None


@dataclass(frozen=True)
class AllowedPeople:
    """The distinct people a decision allowed: the addresses of those still known, sorted,
    and how many were erased since (counted, not named)."""

    emails: list[str]
    erased: int

    @property
    def count(self) -> int:
        return len(self.emails) + self.erased


def is_decision_id(value: str) -> bool:
    """Whether `value` is written the way decision ids are (a lower-case UUID)."""
    return DECISION_ID.fullmatch(value) is not None


def kept_decision(
    session: Session,
    library: Library,
    decision_id: str,
    *,
    purposes: frozenset[str] | set[str] | None = None,
    now: datetime | None = None,
) -> KeptDecision | None:
    """The decision of this library with this id, or None: unknown, another library's, for
    a purpose outside `purposes` (when given), or past its retention period."""
    if not is_decision_id(decision_id):
        return None
    row = session.execute(
        select(ConsentDecision, Purpose)
        .join(Purpose, Purpose.id == ConsentDecision.purpose_id)
        .where(ConsentDecision.id == decision_id, ConsentDecision.library_id == library.id)
    ).one_or_none()
    if row is None:
        return None
    decision, purpose = row
    if purposes is not None and purpose.code not in purposes:
        return None
    policy = RetentionPolicy.of(library, now or utcnow())
    cutoff = policy.cutoff(RETENTION_CATEGORY)
    # The same test as retention's (checked_at <= cutoff is due).
    if cutoff is not None and decision.checked_at <= cutoff:
        return None
    months = policy.periods[RETENTION_CATEGORY]
    return KeptDecision(
        id=decision.id,
        purpose=purpose,
        checked_at=decision.checked_at,
        recipients=decision.recipients,
        reasons=dict(decision.reasons or {}),
        kept_until=months_before(decision.checked_at, -months) if months > 0 else None,
    )


def retention_months(library: Library) -> int:
    """How many months this library keeps the answers to checks."""
    return RetentionPolicy.of(library, utcnow()).periods[RETENTION_CATEGORY]


def allowed_people(session: Session, decision: KeptDecision) -> AllowedPeople:
    """Who the decision allowed, by the addresses known now (one indexed query)."""
    emails: list[str] = []
    erased = 0
    for email, erased_at in session.execute(
        select(Subject.email, Subject.erased_at)
        .join(DecisionRecipient, DecisionRecipient.subject_id == Subject.id)
        .where(DecisionRecipient.decision_id == decision.id)
        .order_by(Subject.email)
    ):
        if erased_at is None:
            emails.append(email)
        else:
            erased += 1
    return AllowedPeople(emails, erased)


def allowed_subject(session: Session, decision: KeptDecision, subject: Subject) -> bool:
    """Whether the decision allowed this person (an erased one no longer counts as them)."""
    if subject.erased_at is not None:
        return False
    return session.get(DecisionRecipient, (decision.id, subject.id)) is not None
