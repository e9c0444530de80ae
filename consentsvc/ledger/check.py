"""The check a sender makes before a send: may each address get mail for a purpose, and
the kept answer (by subject id, never by address) that a send can be traced to."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import insert
from sqlalchemy.orm import Session

from ..models import (
    ConsentDecision,
    LegalBasis,
    LegitimateInterest,
    Library,
    Purpose,
    local_today,
    utcnow,
)
from .addresses import email_hmac_bytes, normalise_email
from .errors import InvalidEmail
from .events import Status
from .minors import minor_by
from .purposes import purpose_by_code


class Decision(NamedTuple):
    """One recipient's answer (a tuple: a check makes 10,000 of them, and a frozen dataclass
    took five times as long to build)."""

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


@dataclass(frozen=True)
class CheckScope:
    """What a check needs of a library and one of its purposes, as plain values: a worker
    may keep it between requests (web/purpose_cache.py) instead of loading them each time."""

    library_id: int
    purpose_id: int
    purpose_code: str
    retired: bool
    # Whether a running membership counts: never for consent-based purposes.
    members_count: bool
    pause_until_reconfirmed: bool

    @classmethod
    def of(cls, library: Library, purpose: Purpose) -> CheckScope:
        return cls(
            library_id=library.id,
            purpose_id=purpose.id,
            purpose_code=purpose.code,
            retired=purpose.retired_at is not None,
            members_count=(
                purpose.legal_basis == LegalBasis.LEGITIMATE_INTEREST
                and library.legitimate_interest == LegitimateInterest.MEMBERS
            ),
            pause_until_reconfirmed=library.pause_until_reconfirmed,
        )


def check_many(
    session: Session,
    library: Library,
    purpose_code: str,
    emails: Sequence[str],
    *,
    suppression_key: str,
) -> list[Decision]:
    """May each address get mail for this purpose? Answers in input order; fails closed."""
    scope = CheckScope.of(library, purpose_by_code(library, purpose_code))
    return check_in(session, scope, emails, suppression_key=suppression_key)


def check_in(
    session: Session, scope: CheckScope, emails: Sequence[str], *, suppression_key: str
) -> list[Decision]:
    """check_many for a scope already known: two statements, whatever the batch."""
    if scope.retired:
        return [
            Decision(raw, False, REASON_RETIRED if _valid(raw) else "invalid_address")
            for raw in emails
        ]
    members_count = scope.members_count
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
    cursor, dialect = _driver(session)
    hashes = {email_hmac_bytes(suppression_key.encode(), e): e for e in wanted}
    emails_param, hashes_param = (
        (wanted, list(hashes)) if dialect == "postgresql" else (_json(wanted), _json(hashes))
    )
    cursor.execute(
        _STATES[dialect],
        {"emails": emails_param, "library": scope.library_id, "purpose": scope.purpose_id},
    )
    for email, subject_id, status, restricted, started, ended, born, minor in cursor:
        status_by_email[email] = (subject_id, "restricted" if restricted else status)
        if (
            members_count
            and status is None
            and not restricted
            and started is not None
            and _day(started) <= today
            and (ended is None or today <= _day(ended))
            and not minor_by(born, bool(minor))
        ):
            members.add(email)
    cursor.execute(_SUPPRESSIONS[dialect], {"hashes": hashes_param, "library": scope.library_id})
    suppressed.update(hashes[digest] for (digest,) in cursor)
    cursor.close()
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
            status == Status.RECONFIRM_REQUESTED and not scope.pause_until_reconfirmed
        )
        decisions.append(Decision(raw, allowed, REASON_BY_STATUS[status], subject_id))
    return decisions


def _valid(raw: str) -> bool:
    try:
        normalise_email(raw)
    except InvalidEmail:
        return False
    return True


# The check's two queries, written for the driver itself: a 10,000-address check through
# SQLAlchemy spent more time compiling the statement and building Row objects than the
# database spent answering it. Each takes the whole batch as one parameter (a JSON array
# on SQLite, a text array on PostgreSQL), so its text never changes (docs/performance.md).
_STATES = {
    "sqlite": (
        "SELECT s.email, s.id, c.status, s.restricted_at IS NOT NULL, s.membership_started_on,"
        " s.membership_ended_on, s.birth_year, s.marked_minor FROM subject s"
        " LEFT JOIN consent_state c ON c.subject_id = s.id AND c.purpose_id = :purpose"
        " WHERE s.library_id = :library AND s.email IN (SELECT value FROM json_each(:emails))"
    ),
    # One look-up in the (library_id, email) index per address: with `= ANY` the planner
    # scanned the whole library for 10,000 addresses, a cost that grows with the library.
    # OFFSET 0 keeps it from turning the lateral look-up back into such a join.
    "postgresql": (
        "SELECT s.email, s.id, c.status, s.restricted_at IS NOT NULL, s.membership_started_on,"
        " s.membership_ended_on, s.birth_year, s.marked_minor"
        " FROM unnest(%(emails)s::text[]) AS k(email)"
        " CROSS JOIN LATERAL (SELECT * FROM subject"
        " WHERE library_id = %(library)s AND email = k.email OFFSET 0) s"
        " LEFT JOIN consent_state c ON c.subject_id = s.id AND c.purpose_id = %(purpose)s"
    ),
}
_SUPPRESSIONS = {
    "sqlite": (
        "SELECT email_hmac FROM suppression WHERE library_id = :library"
        " AND email_hmac IN (SELECT value FROM json_each(:hashes))"
    ),
    "postgresql": (
        "SELECT email_hmac FROM suppression"
        " WHERE library_id = %(library)s AND email_hmac = ANY(%(hashes)s::text[])"
    ),
}
# The people a check allowed, in one statement: the ids as one array, as in the queries.
_RECIPIENTS = {
    "sqlite": (
        "INSERT INTO decision_recipient (decision_id, subject_id)"
        " SELECT :decision, value FROM json_each(:people)"
    ),
    "postgresql": (
        "INSERT INTO decision_recipient (decision_id, subject_id)"
        " SELECT %(decision)s, unnest(%(people)s::integer[])"
    ),
}


def _driver(session: Session) -> tuple[Any, str]:
    """A cursor of the session's own connection (inside its transaction), and which of the
    two databases it is: the keys of _STATES, _SUPPRESSIONS and _RECIPIENTS."""
    dialect = "postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"
    return session.connection().connection.driver_connection.cursor(), dialect


def _json(values: Any) -> str:
    return msgspec.json.encode(list(values)).decode()


def _day(value: date | str) -> date:
    # SQLite hands a DATE column back as its ISO text; PostgreSQL as a date.
    return value if isinstance(value, date) else date.fromisoformat(value)


@dataclass(frozen=True)
class Kept:
    """What the answer to a check quotes of the decision kept for it."""

    id: str
    checked_at: datetime
    # Recipients per reason, as kept with the decision (also counted in /metrics).
    reasons: dict[str, int]


def record_decision(
    session: Session,
    library_id: int,
    purpose_id: int,
    decisions: Sequence[Decision],
    *,
    client_id: int,
) -> Kept:
    """Keep the answer to a check: who asked, the counts per reason, and who was allowed
    (by subject id, never by address), so a send can later be traced to it.

    Takes ids, not objects: the check's read has been committed by now, and touching an
    expired Library or Purpose would load it again.
    """
    decision = Kept(str(uuid.uuid4()), utcnow(), dict(Counter(d.reason for d in decisions)))
    session.execute(
        insert(ConsentDecision.__table__),
        {"id": decision.id, "library_id": library_id, "client_id": client_id,
         "purpose_id": purpose_id, "checked_at": decision.checked_at,
         "recipients": len(decisions), "reasons": decision.reasons},
    )  # fmt: skip
    allowed = sorted({d.subject_id for d in decisions if d.allowed and d.subject_id is not None})
    if allowed:
        # Straight to the driver, as one array: a check may allow 10,000 people, and
        # SQLAlchemy's parameter handling took longer over them than the database did.
        cursor, dialect = _driver(session)
        people = allowed if dialect == "postgresql" else _json(allowed)
        cursor.execute(_RECIPIENTS[dialect], {"decision": decision.id, "people": people})
        cursor.close()
    return decision
