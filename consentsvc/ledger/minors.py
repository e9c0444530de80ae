"""Young members (GDPR art. 8, UAVG art. 5): under 16 a parent or guardian consents.

Owns who counts as a minor today, the birth year and the mark staff record for it, the
guardian's address, and the end of the guardian's role when the person turns 16. The
consent changes themselves (changes.py) ask `guardian_needed` before they grant.

The rule. Only the birth year is kept, never the date of birth, so in the year someone
turns 16 we cannot tell whether they already did. A person born in year Y therefore counts
as a minor up to and including 31 December of Y + 16, and decides alone from 1 January of
Y + 17 (the year they turn 17). That is up to a year late for some, but never treats a
15-year-old as 16. Without a year, staff's mark "minor" holds until staff take it away.
Days are counted in Europe/Amsterdam, where the libraries are.

A minor's grant needs the guardian: it stays pending and the confirmation goes to the
guardian's address; their confirmation is the evidence. A minor can always withdraw alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Library, Subject, local_today, utcnow
from .addresses import email_fingerprint, normalise_email
from .errors import LedgerError

# Under this age a guardian consents (UAVG art. 5).
CONSENT_AGE = 16
# Nobody older than this is still a member; a year further back is a typing error.
OLDEST = 120


class GuardianMissing(LedgerError):
    """A minor's grant needs the guardian, and no guardian's address is on record."""

    code = "guardian_missing"


class InvalidBirthYear(LedgerError):
    """Not a plausible four-digit year, or one in the future."""

    code = "invalid_birth_year"


class BirthYearNotAsked(LedgerError):
    """The library does not record birth years."""

    code = "birth_year_not_asked"


class GuardianIsMember(LedgerError):
    """The guardian's address is the member's own: the minor would confirm for themselves."""

    code = "guardian_is_member"


def decides_alone_from(birth_year: int) -> date:
    """The first day someone born in this year counts as 16 (see the rule above)."""
    return date(birth_year + CONSENT_AGE + 1, 1, 1)


def is_minor(subject: Subject, now: datetime | None = None) -> bool:
    """Whether a guardian must consent for this person today."""
    return minor_by(subject.birth_year, subject.marked_minor, now)


def minor_by(birth_year: int | None, marked_minor: bool, now: datetime | None = None) -> bool:
    """The rule on the two columns, for callers that read them without loading the person."""
    if birth_year is not None:
        return local_today(now) < decides_alone_from(birth_year)
    return marked_minor


def guardian_needed(subject: Subject, now: datetime | None = None) -> bool:
    """Whether a grant for this person must go through the guardian.

    Raises GuardianMissing for a minor without a guardian's address: then nothing may start.
    """
    if not is_minor(subject, now):
        return False
    if not subject.guardian_email:
        raise GuardianMissing(subject.id)
    return True


def guardian_of(subject: Subject, now: datetime | None = None) -> str | None:
    """The address confirmations go to instead of the person's own, if any."""
    if is_minor(subject, now) and subject.guardian_email:
        return subject.guardian_email
    return None


def guardian_proof(guardian_email: str) -> dict[str, str]:
    """What a guardian's confirmation adds to its evidence: never the address itself."""
    return {"confirmed_by": "guardian", "guardian_fingerprint": email_fingerprint(guardian_email)}


def read_birth_year(raw: str, now: datetime | None = None) -> int | None:
    """A typed birth year: empty is none; else four digits, not in the future, plausible."""
    raw = (raw or "").strip()
    if not raw:
        return None
    this_year = local_today(now).year
    if len(raw) != 4 or not raw.isascii() or not raw.isdigit():
        raise InvalidBirthYear(raw)
    year = int(raw)
    if not this_year - OLDEST <= year <= this_year:
        raise InvalidBirthYear(raw)
    return year


@dataclass(frozen=True)
class MinorChange:
    """What staff changed, by name, for the audit (never the address itself)."""

    changed: list[str]


def record_minor(
    session: Session,
    subject: Subject,
    *,
    birth_year: str,
    marked_minor: bool,
    guardian_email: str,
    now: datetime | None = None,
) -> MinorChange:
    """Store what staff typed about a young member; nothing changes if anything is wrong.

    birth_year and guardian_email are as typed (empty: none). A birth year is only taken
    where the library asks for it. A new guardian's address starts the role again.
    """
    year = read_birth_year(birth_year, now)
    if year is not None and not subject.library.asks_birth_year:
        raise BirthYearNotAsked(subject.library_id)
    guardian = guardian_email.strip()
    if guardian:
        guardian = normalise_email(guardian)
        if guardian == subject.email:
            raise GuardianIsMember(subject.id)
    changed = []
    if year != subject.birth_year and (year is not None or subject.library.asks_birth_year):
        subject.birth_year = year
        changed.append("birth_year")
    if marked_minor != subject.marked_minor:
        subject.marked_minor = marked_minor
        changed.append("marked_minor")
    if (guardian or None) != subject.guardian_email:
        subject.guardian_email = guardian or None
        subject.guardian_ended_at = None
        changed.append("guardian_email")
    return MinorChange(changed)


def turned_sixteen(
    session: Session, library: Library, now: datetime | None = None, *, limit: int = 500
) -> list[Subject]:
    """People whose guardian's role ends by age today and has not been ended yet."""
    first_year_of_minors = local_today(now).year - CONSENT_AGE
    return list(
        session.scalars(
            select(Subject)
            .where(
                Subject.library_id == library.id,
                Subject.birth_year.is_not(None),
                Subject.birth_year < first_year_of_minors,
                Subject.guardian_email.is_not(None),
                Subject.guardian_ended_at.is_(None),
                Subject.erased_at.is_(None),
            )
            .order_by(Subject.id)
            .limit(limit)
        )
    )


def end_guardianship(subject: Subject, now: datetime | None = None) -> None:
    """End the guardian's role: the person decides alone from now; consents stay as they are."""
    subject.guardian_ended_at = now or utcnow()
    subject.marked_minor = False


def minor_json(subject: Subject, now: datetime | None = None) -> dict[str, object] | None:
    """The young-member part of a person's export, or None when nothing is recorded."""
    if subject.birth_year is None and not subject.marked_minor and not subject.guardian_email:
        return None
    return {
        "birth_year": subject.birth_year,
        "marked_minor": subject.marked_minor,
        "minor_today": is_minor(subject, now),
        "guardian_email": subject.guardian_email,
        "guardian_ended_at": (
            subject.guardian_ended_at.isoformat() if subject.guardian_ended_at else None
        ),
    }
