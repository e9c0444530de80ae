"""Membership as the library system reports it: card number, start and end date.

The library system (Wise, an export script) is the source of truth; this module checks
what it sends and records it on the person. The end of a membership starts the
contact-data retention clock (read by retention), so a wrong date here would erase a
member too early or keep a leaver too long: bad input is refused, never guessed at.

A membership change is the library's doing, not the member's: it never touches
`last_activity_at` (which measures the member's own actions) and records no consent event.

An address that was erased here is not brought back by the library system: erasure keeps
a keyed hash of it with reason "erased", and a membership for that address is refused
(`Erased`). The member can come back by signing up themselves; the confirmation of that
signup lifts the suppression, and from then on memberships are recorded again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import Library, Subject, Suppression, local_today
from .addresses import email_hmac, normalise_email
from .errors import LedgerError
from .events import lock
from .people import find_subject, subject_for

# The column is 40 characters; library cards are barcodes (digits, sometimes letters and a
# hyphen). Anything else is a mistake in the export, not a card.
MAX_CARD_NUMBER_LENGTH = 40
CARD_NUMBER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
# Dates outside these bounds are typing or export errors (0001-01-01, 2202 for 2022):
# no public library lends since before 1900, and no membership is paid ten years ahead.
EARLIEST = date(1900, 1, 1)
YEARS_AHEAD = 10
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class MembershipRefused(LedgerError):
    """A membership the ledger will not record; `field` names what is wrong."""

    code = "invalid_membership"
    field = "membership"


class InvalidCardNumber(MembershipRefused):
    code = "invalid_card_number"
    field = "card_number"


class InvalidDate(MembershipRefused):
    """A date that cannot be read, or one no membership can have."""

    code = "invalid_date"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class EndBeforeStart(MembershipRefused):
    code = "end_before_start"
    field = "end"


class Erased(MembershipRefused):
    """The address was erased here; the library system does not bring the person back."""

    code = "erased"
    field = "email"


@dataclass(frozen=True)
class Membership:
    """A checked membership: what is stored on the person."""

    card_number: str
    start: date
    end: date | None


class Outcome:
    CREATED = "created"  # the person was new here
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def read_date(text: str, field: str) -> date:
    """A date written YYYY-MM-DD; InvalidDate (naming the field) otherwise."""
    if not ISO_DATE.fullmatch(text):
        raise InvalidDate(field, "Write the date as YYYY-MM-DD.")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidDate(field, "No such date.") from None


def check_membership(
    card_number: str, start: date, end: date | None, *, today: date | None = None
) -> Membership:
    """Check what the library system sent; the Membership to record, or MembershipRefused."""
    if not card_number or len(card_number) > MAX_CARD_NUMBER_LENGTH:
        raise InvalidCardNumber(f"1 to {MAX_CARD_NUMBER_LENGTH} characters.")
    if not CARD_NUMBER.fullmatch(card_number):
        raise InvalidCardNumber("Letters, digits and hyphens only.")
    latest = (today or local_today()) + timedelta(days=365 * YEARS_AHEAD)
    for field, value in (("start", start), ("end", end)):
        if value is not None and not EARLIEST <= value <= latest:
            raise InvalidDate(
                field, f"A date between {EARLIEST.isoformat()} and {latest.isoformat()}."
            )
    if end is not None and end < start:
        raise EndBeforeStart("The end lies before the start.")
    return Membership(card_number, start, end)


def membership_of(subject: Subject) -> Membership | None:
    """The membership recorded on a person, or None if the library system never sent one."""
    if subject.membership_started_on is None or subject.card_number is None:
        return None
    return Membership(
        subject.card_number, subject.membership_started_on, subject.membership_ended_on
    )


def record_membership(
    session: Session,
    library: Library,
    email: str,
    membership: Membership,
    *,
    suppression_key: str,
    dry_run: bool = False,
) -> tuple[str, Subject | None]:
    """Record a person's membership, creating the person if the service does not know them.

    Returns the outcome (created, updated, unchanged) and the person (None in a dry run
    for a person who would be created). With dry_run nothing is written, not even a lock.
    """
    email = normalise_email(email)
    subject = find_subject(session, library, email)
    if subject is None:
        if _erased_here(session, library, email, suppression_key):
            raise Erased("This address was erased here; it is not recorded again.")
        if dry_run:
            return Outcome.CREATED, None
        subject = subject_for(session, library, email, library.default_language)
        outcome = Outcome.CREATED
    else:
        if not dry_run:
            lock(session, subject)
        outcome = Outcome.UNCHANGED if membership_of(subject) == membership else Outcome.UPDATED
    if not dry_run and outcome != Outcome.UNCHANGED:
        subject.card_number = membership.card_number
        subject.membership_started_on = membership.start
        subject.membership_ended_on = membership.end
        session.flush()
    return outcome, subject


def record_memberships(
    session: Session,
    library: Library,
    rows: Sequence[tuple[str, Membership]],
    *,
    suppression_key: str,
    dry_run: bool = False,
) -> list[str | MembershipRefused]:
    """record_membership for a batch of (normalised address, membership), in a few
    statements instead of a few per row: the outcome of each row, or why it was refused.

    The addresses must be distinct (the file reader refuses repeats). If another writer
    creates one of the people meanwhile, the transaction is rolled back and the batch is
    done again one row at a time: give it a transaction of its own.
    """
    emails = [email for email, _membership in rows]
    # In id order, so that two imports at once take their row locks in the same order.
    query = (
        select(Subject)
        .where(Subject.library_id == library.id, Subject.email.in_(emails))
        .order_by(Subject.id)
    )
    known = {s.email: s for s in session.scalars(query if dry_run else query.with_for_update())}
    digests = {email_hmac(suppression_key, e): e for e in emails if e not in known}
    erased = set()
    if digests:
        erased = {
            digests[digest]
            for digest in session.scalars(
                select(Suppression.email_hmac).where(
                    Suppression.library_id == library.id,
                    Suppression.reason == "erased",
                    Suppression.email_hmac.in_(digests),
                )
            )
        }
    results: list[str | MembershipRefused] = []
    for email, membership in rows:
        subject = known.get(email)
        if subject is None and email in erased:
            results.append(Erased("This address was erased here; it is not recorded again."))
            continue
        if subject is None:
            results.append(Outcome.CREATED)
            if not dry_run:
                session.add(
                    Subject(
                        library_id=library.id,
                        email=email,
                        language=library.default_language,
                        card_number=membership.card_number,
                        membership_started_on=membership.start,
                        membership_ended_on=membership.end,
                    )
                )
        elif membership_of(subject) == membership:
            results.append(Outcome.UNCHANGED)
        else:
            results.append(Outcome.UPDATED)
            if not dry_run:
                subject.card_number = membership.card_number
                subject.membership_started_on = membership.start
                subject.membership_ended_on = membership.end
    if not dry_run:
        try:
            session.flush()
        except IntegrityError:
            # Someone created one of these people between our look-up and our insert.
            session.rollback()
            return _one_by_one(session, library, rows, suppression_key)
    return results


def _one_by_one(
    session: Session,
    library: Library,
    rows: Sequence[tuple[str, Membership]],
    suppression_key: str,
) -> list[str | MembershipRefused]:
    results: list[str | MembershipRefused] = []
    for email, membership in rows:
        try:
            outcome, _subject = record_membership(
                session, library, email, membership, suppression_key=suppression_key
            )
        except MembershipRefused as exc:
            results.append(exc)
        else:
            results.append(outcome)
    return results


def _erased_here(session: Session, library: Library, email: str, suppression_key: str) -> bool:
    digest = email_hmac(suppression_key, email)
    reason = session.scalar(
        select(Suppression.reason).where(
            Suppression.library_id == library.id, Suppression.email_hmac == digest
        )
    )
    return reason == "erased"
