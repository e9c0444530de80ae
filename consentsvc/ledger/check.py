"""The check a sender makes before a send: may each address get mail for a purpose, and
the kept answer (by subject id, never by address) that a send can be traced to."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    Date,
    Integer,
    String,
    any_,
    bindparam,
    insert,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from ..models import (
    ConsentDecision,
    ConsentState,
    DecisionRecipient,
    LegalBasis,
    LegitimateInterest,
    Library,
    Purpose,
    Subject,
    Suppression,
    local_today,
)
from .addresses import email_hmac, normalise_email
from .errors import InvalidEmail
from .events import Status
from .minors import minor_by
from .purposes import purpose_by_code


@dataclass(frozen=True)
class Decision:
    email: str
    allowed: bool
    reason: str
    subject_id: int | None = None


REASON_BY_STATUS = {
    None: "no_consent",
    Status.PENDING: "pending_confirmation",
    Status.GRANTED: "granted",
    Status.WITHDRAWN: "withdrawn",
    Status.OBJECTED: "objected",
    Status.ERASED: "erased",
    Status.RECONFIRM_REQUESTED: "reconfirm_requested",
    "restricted": "restricted",
}
# Allowed without a consent of their own: an active member who never objected, for a
# legitimate-interest purpose in a library that chose soft opt-in.
REASON_MEMBER = "member"
# The library no longer offers the purpose: nobody may be mailed for it.
REASON_RETIRED = "purpose_retired"


# The most addresses one check answers (the API's documented limit).
MAX_RECIPIENTS = 10_000

# SQLite takes at most 32766 parameters a statement; two per address, with room to spare.
SQLITE_CHUNK = 5000


def check_many(
    session: Session,
    library: Library,
    purpose_code: str,
    emails: Sequence[str],
    *,
    suppression_key: str,
) -> list[Decision]:
    """May each address get mail for this purpose? Answers in input order; fails closed.

    One statement per batch on PostgreSQL (arrays), one per 5,000 addresses on SQLite.
    """
    purpose = purpose_by_code(library, purpose_code)
    if purpose.retired_at is not None:
        return [
            Decision(raw, False, REASON_RETIRED if _valid(raw) else "invalid_address")
            for raw in emails
        ]
    # Only then does a person's membership count: never for consent-based purposes.
    members_count = (
        purpose.legal_basis == LegalBasis.LEGITIMATE_INTEREST
        and library.legitimate_interest == LegitimateInterest.MEMBERS
    )
    today = local_today()
    normalised: list[str | None] = []
    for raw in emails:
        try:
            normalised.append(normalise_email(raw))
        except InvalidEmail:
            normalised.append(None)
    wanted = sorted({e for e in normalised if e})
    status_by_email: dict[str, tuple[int, str | None]] = {}
    members: set[str] = set()
    suppressed: set[str] = set()
    postgres = session.get_bind().dialect.name == "postgresql"
    chunk_size = (len(wanted) or 1) if postgres else SQLITE_CHUNK
    for start in range(0, len(wanted), chunk_size):
        chunk = wanted[start : start + chunk_size]
        hashes = {email_hmac(suppression_key, e): e for e in chunk}
        for row in session.execute(
            _check_statement(library, purpose, chunk, list(hashes), postgres)
        ):
            email, subject_id, status, restricted, started, ended, born, minor, digest = row
            if digest is not None:
                suppressed.add(hashes[digest])
                continue
            status_by_email[email] = (subject_id, "restricted" if restricted else status)
            if (
                members_count
                and status is None
                and not restricted
                and started is not None
                and started <= today
                and (ended is None or today <= ended)
                and not minor_by(born, bool(minor))
            ):
                members.add(email)
    decisions = []
    for raw, email in zip(emails, normalised, strict=True):
        if email is None:
            decisions.append(Decision(raw, False, "invalid_address"))
            continue
        subject_id, status = status_by_email.get(email, (None, None))
        if email in suppressed:
            decisions.append(Decision(raw, False, "suppressed", subject_id))
            continue
        if email in members:
            decisions.append(Decision(raw, True, REASON_MEMBER, subject_id))
            continue
        allowed = status == Status.GRANTED or (
            status == Status.RECONFIRM_REQUESTED and not library.pause_until_reconfirmed
        )
        decisions.append(Decision(raw, allowed, REASON_BY_STATUS[status], subject_id))
    return decisions


def _valid(raw: str) -> bool:
    try:
        normalise_email(raw)
    except InvalidEmail:
        return False
    return True


def _check_statement(
    library: Library, purpose: Purpose, emails: list[str], hashes: list[str], postgres: bool
) -> Any:
    """States of known addresses and matching suppressions, in one round trip."""
    if postgres:
        email_match = Subject.email == any_(bindparam("emails", emails, type_=ARRAY(String)))
        hash_match = Suppression.email_hmac == any_(
            bindparam("hashes", hashes, type_=ARRAY(String))
        )
    else:
        email_match = Subject.email.in_(emails)
        hash_match = Suppression.email_hmac.in_(hashes)
    states = (
        select(
            Subject.email,
            Subject.id,
            ConsentState.status,
            Subject.restricted_at.is_not(None).label("restricted"),
            Subject.membership_started_on,
            Subject.membership_ended_on,
            Subject.birth_year,
            Subject.marked_minor,
            null().cast(String).label("email_hmac"),
        )
        .outerjoin(
            ConsentState,
            (ConsentState.subject_id == Subject.id) & (ConsentState.purpose_id == purpose.id),
        )
        .where(Subject.library_id == library.id, email_match)
    )
    suppressions = select(
        null().cast(String),
        null().cast(Integer),
        null().cast(String),
        null().cast(Boolean),
        null().cast(Date),
        null().cast(Date),
        null().cast(Integer),
        null().cast(Boolean),
        Suppression.email_hmac,
    ).where(Suppression.library_id == library.id, hash_match)
    return union_all(states, suppressions)


def record_decision(
    session: Session,
    library: Library,
    purpose: Purpose,
    decisions: Sequence[Decision],
    *,
    client_id: int,
) -> ConsentDecision:
    """Keep the answer to a check: who asked, the counts per reason, and who was allowed
    (by subject id, never by address), so a send can later be traced to it."""
    decision = ConsentDecision(
        id=str(uuid.uuid4()),
        library_id=library.id,
        client_id=client_id,
        purpose_id=purpose.id,
        recipients=len(decisions),
        reasons=dict(Counter(d.reason for d in decisions)),
    )
    session.add(decision)
    session.flush()
    allowed = sorted({d.subject_id for d in decisions if d.allowed and d.subject_id is not None})
    if allowed:
        # Straight to the table (one executemany): a check may allow 10,000 people, and the
        # ORM's bulk path would spend longer on them than the database does.
        session.execute(
            insert(DecisionRecipient.__table__),
            [{"decision_id": decision.id, "subject_id": sid} for sid in allowed],
        )
    return decision
