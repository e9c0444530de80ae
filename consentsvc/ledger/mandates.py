"""SEPA direct-debit mandates: the evidence without which nobody is debited.

Owns recording a mandate (checked reference, creditor identifier, IBAN, holder, date and
place, paper or online), the four-eyes approval (a second staff member, or the privacy
officer, as the library chose), the member's confirmation of an online signature, ending
a mandate, and what retention and the export see of it. direct_debit is granted only when
a mandate becomes active, and withdrawn only when it ends; the payment system hears both
by webhook (mandate.approved, mandate.ended), with the IBAN masked.

The IBAN is given and kept encrypted (consentsvc.iban.Vault): nothing here returns it in
clear, and no audit detail, event, webhook or error carries it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .. import iban, outbox
from ..models import Library, SepaMandate, StaffRole, StaffUser, Subject, local_today, utcnow
from .changes import grant, withdraw
from .errors import LedgerError, Restricted
from .events import Channel, Proof, lock

MANDATE_PURPOSE = "direct_debit"
# Library.mandate_approval: who gives the second pair of eyes.
SECOND_STAFF = "second_staff"
PRIVACY_OFFICER = "privacy_officer"
APPROVALS = (SECOND_STAFF, PRIVACY_OFFICER)
SIGNED_HOW = ("paper", "online")
# EPC's character set for a mandate reference (MndtId), without the space that several
# banks refuse; at most 35, not starting or ending with "/" and without "//".
REFERENCE = re.compile(r"[A-Za-z0-9+?/\-:().,']{1,35}")
MAX_HOLDER = 140
MAX_PLACE = 100
# How far back a signature may be dated: a paper form found in a drawer, not a typing error.
OLDEST_SIGNATURE_YEARS = 10
RUNNING = ("awaiting_approval", "awaiting_member", "active")


class MandateRefused(LedgerError):
    """Input refused, per field: {field: code}. Nothing was stored."""

    code = "mandate_refused"

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class MandateNotAllowed(LedgerError):
    """A step this person may not take on this mandate (`reason`), or not in its state."""

    code = "mandate_not_allowed"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MandateInput:
    """The form as typed; record() checks every field."""

    reference: str
    creditor_id: str
    iban: str
    holder: str
    signed_on: str
    signed_place: str
    signed_how: str


def record(
    session: Session,
    subject: Subject,
    given: MandateInput,
    *,
    staff: StaffUser,
    vault: iban.Vault,
    today: date | None = None,
) -> SepaMandate:
    """Record a signed mandate; it waits for approval and grants nothing yet.

    Raises MandateRefused with every wrong field at once.
    """
    today = today or local_today()
    errors: dict[str, str] = {}
    reference = given.reference.strip()
    if not reference:
        errors["reference"] = "required"
    elif (
        not REFERENCE.fullmatch(reference) or "//" in reference or reference.strip("/") != reference
    ):
        errors["reference"] = "format"
    elif session.scalar(
        select(SepaMandate.id).where(
            SepaMandate.library_id == subject.library_id, SepaMandate.reference == reference
        )
    ):
        errors["reference"] = "taken"
    creditor_id = account = ""
    try:
        creditor_id = iban.check_creditor_id(given.creditor_id)
    except iban.AccountError as exc:
        errors["creditor_id"] = exc.code
    try:
        account = iban.check_iban(given.iban)
    except iban.AccountError as exc:
        errors["iban"] = exc.code
    holder = " ".join(given.holder.split())
    if not holder:
        errors["holder"] = "required"
    elif len(holder) > MAX_HOLDER:
        errors["holder"] = "too_long"
    place = " ".join(given.signed_place.split())
    if not place:
        errors["signed_place"] = "required"
    elif len(place) > MAX_PLACE:
        errors["signed_place"] = "too_long"
    signed_on = _signature_date(given.signed_on, today)
    if isinstance(signed_on, str):
        errors["signed_on"] = signed_on
    if given.signed_how not in SIGNED_HOW:
        errors["signed_how"] = "required"
    if errors:
        raise MandateRefused(errors)
    assert isinstance(signed_on, date)
    lock(session, subject)
    if subject.restricted_at is not None:
        raise Restricted(subject.id)
    if subject.erased_at is not None:
        raise MandateNotAllowed("erased")
    mandate = SepaMandate(
        library_id=subject.library_id,
        subject_id=subject.id,
        reference=reference,
        creditor_id=creditor_id,
        iban_ciphertext=vault.encrypt(account),
        iban_last4=iban.last4(account),
        holder_name=holder,
        signed_on=signed_on,
        signed_place=place,
        signed_how=given.signed_how,
        recorded_by=staff.id,
        recorded_at=utcnow(),
    )
    session.add(mandate)
    session.flush()
    return mandate


def _signature_date(value: str, today: date) -> date | str:
    try:
        signed = date.fromisoformat(value.strip())
    except ValueError:
        return "required" if not value.strip() else "date"
    if signed > today:
        return "future"
    if signed.year < today.year - OLDEST_SIGNATURE_YEARS:
        return "too_old"
    return signed


def approval_refused(mandate: SepaMandate, staff: StaffUser) -> str | None:
    """Why this staff member may not approve or reject this mandate (None: they may)."""
    if mandate.status != "awaiting_approval":
        return "not_waiting"
    if staff.id == mandate.recorded_by:
        return "own"
    library = mandate.subject.library
    if library.mandate_approval == PRIVACY_OFFICER and staff.role != StaffRole.PRIVACY_OFFICER:
        return "privacy_officer"
    return None


def approve(session: Session, mandate: SepaMandate, *, staff: StaffUser) -> bool:
    """The second pair of eyes. A paper mandate becomes active (direct_debit is granted);
    an online one now waits for the member's confirmation. True: it is active now."""
    reason = approval_refused(mandate, staff)
    if reason:
        raise MandateNotAllowed(reason)
    if mandate.subject.restricted_at is not None:
        raise Restricted(mandate.subject_id)
    mandate.approved_by = staff.id
    mandate.approved_at = utcnow()
    if mandate.signed_how == "paper":
        _activate(session, mandate, channel=Channel.STAFF, actor=f"staff:{staff.id}")
        return True
    session.flush()
    return False


def reject(session: Session, mandate: SepaMandate, *, staff: StaffUser, reason: str) -> None:
    """Refuse the mandate with a reason; nothing was granted and nothing will be."""
    refused = approval_refused(mandate, staff)
    if refused:
        raise MandateNotAllowed(refused)
    reason = " ".join(reason.split())[:300]
    if not reason:
        raise MandateRefused({"reason": "required"})
    mandate.rejected_by = staff.id
    mandate.rejected_at = utcnow()
    mandate.rejection_reason = reason
    session.flush()


def confirm_online(session: Session, mandate: SepaMandate, proof: Proof | None = None) -> bool:
    """The member confirmed an online mandate from their mail; False if it no longer waits."""
    lock(session, mandate.subject)
    session.refresh(mandate)
    if mandate.status != "awaiting_member":
        return False
    mandate.member_confirmed_at = utcnow()
    _activate(session, mandate, channel=Channel.EMAIL_LINK, actor=None, proof=proof)
    return True


def _activate(
    session: Session,
    mandate: SepaMandate,
    *,
    channel: str,
    actor: str | None,
    proof: Proof | None = None,
) -> None:
    details = {"mandate": mandate.reference, **(proof.details if proof else {})}
    evidence = Proof(
        ip_address=proof.ip_address if proof else None,
        user_agent=proof.user_agent if proof else None,
        origin=proof.origin if proof else None,
        details=details,
    )
    event = grant(
        session, mandate.subject, MANDATE_PURPOSE, channel=channel, actor=actor, proof=evidence
    )
    now = utcnow()
    mandate.active_since = now
    mandate.grant_event_id = event.id if event else None
    outbox.enqueue_event(
        session,
        mandate.library_id,
        "mandate.approved",
        {**webhook_data(mandate), "active_since": _iso(now)},
    )
    session.flush()


def end(
    session: Session,
    mandate: SepaMandate,
    *,
    actor: str,
    channel: str,
    proof: Proof | None = None,
) -> bool:
    """End a mandate: withdraw direct_debit (if it ran) and tell the payment system.

    Never reached from an unsubscribe link or "stop all mail". False if it had ended.
    """
    lock(session, mandate.subject)
    session.refresh(mandate)
    if mandate.status not in RUNNING:
        return False
    was_active = mandate.status == "active"
    now = utcnow()
    mandate.ended_at = now
    mandate.ended_by = actor
    if was_active and not _other_active(session, mandate):
        details = {"mandate": mandate.reference, **(proof.details if proof else {})}
        event = withdraw(
            session, mandate.subject, MANDATE_PURPOSE, channel=channel,
            actor=actor if actor.startswith("staff:") else None,
            proof=Proof(
                ip_address=proof.ip_address if proof else None,
                user_agent=proof.user_agent if proof else None,
                details=details,
            ),
            ending_mandate=True,
        )  # fmt: skip
        mandate.end_event_id = event.id if event else None
    if was_active:
        outbox.enqueue_event(
            session, mandate.library_id, "mandate.ended",
            {
                **webhook_data(mandate),
                "ended_on": local_today(now).isoformat(),
                "ended_at": _iso(now),
            },
        )  # fmt: skip
    session.flush()
    return True


def _other_active(session: Session, mandate: SepaMandate) -> bool:
    """Whether another mandate of the person still carries direct_debit."""
    return (
        session.scalar(
            select(SepaMandate.id).where(
                SepaMandate.subject_id == mandate.subject_id,
                SepaMandate.id != mandate.id,
                SepaMandate.active_since.is_not(None),
                SepaMandate.ended_at.is_(None),
            )
        )
        is not None
    )


def webhook_data(mandate: SepaMandate) -> dict[str, Any]:
    """What the payment system hears: never the IBAN, only its masked form."""
    subject = mandate.subject
    return {
        "library": subject.library.slug,
        "email": subject.email,
        "card_number": subject.card_number,
        "mandate_reference": mandate.reference,
        "creditor_id": mandate.creditor_id,
        "iban": iban.mask(mandate.iban_last4),
        "signed_on": mandate.signed_on.isoformat(),
    }


def mandates_of(session: Session, subject: Subject) -> list[SepaMandate]:
    """The person's mandates, newest first."""
    return list(
        session.scalars(
            select(SepaMandate)
            .where(SepaMandate.subject_id == subject.id)
            .order_by(SepaMandate.id.desc())
        )
    )


def awaiting_approval(session: Session, library: Library) -> list[SepaMandate]:
    """The library's mandates that wait for a second pair of eyes, oldest first."""
    return list(
        session.scalars(
            select(SepaMandate)
            .where(
                SepaMandate.library_id == library.id,
                SepaMandate.approved_at.is_(None),
                SepaMandate.rejected_at.is_(None),
                SepaMandate.ended_at.is_(None),
            )
            .order_by(SepaMandate.recorded_at, SepaMandate.id)
        )
    )


def mandate_in(session: Session, library: Library, mandate_id: int) -> SepaMandate | None:
    """A mandate of this library (None for another library's: it does not exist here)."""
    mandate = session.get(SepaMandate, mandate_id)
    return mandate if mandate is not None and mandate.library_id == library.id else None


def export_rows(session: Session, subject: Subject) -> list[dict[str, Any]]:
    """The person's mandates for their copy of their data, the IBAN masked."""
    return [
        {
            "reference": m.reference,
            "creditor_id": m.creditor_id,
            "iban": iban.mask(m.iban_last4) if m.iban_last4 else None,
            "holder": m.holder_name,
            "signed_on": m.signed_on.isoformat(),
            "signed_place": m.signed_place,
            "signed_how": m.signed_how,
            "status": m.status,
            "recorded_at": m.recorded_at.isoformat(),
            "approved_at": m.approved_at.isoformat() if m.approved_at else None,
            "active_since": m.active_since.isoformat() if m.active_since else None,
            "ended_at": m.ended_at.isoformat() if m.ended_at else None,
            "rejection_reason": m.rejection_reason,
        }
        for m in mandates_of(session, subject)
    ]


def forget(session: Session, subject: Subject) -> None:
    """Remove the mandates of a person being erased (their retention duty has passed)."""
    session.execute(delete(SepaMandate).where(SepaMandate.subject_id == subject.id))


def ended_due(session: Session, library_id: int, cutoff: datetime, limit: int) -> list[int]:
    """Mandates that ended (or were rejected) before the cutoff and still hold an IBAN."""
    return list(
        session.scalars(
            select(SepaMandate.id)
            .where(
                SepaMandate.library_id == library_id,
                SepaMandate.wiped_at.is_(None),
                ((SepaMandate.ended_at <= cutoff) | (SepaMandate.rejected_at <= cutoff)),
            )
            .order_by(SepaMandate.id)
            .limit(limit)
        )
    )


def wipe(session: Session, mandate_ids: list[int], now: datetime) -> int:
    """Take the IBAN, its last four and the holder out of these mandates; the reference,
    dates and who did what stay as the record that a mandate existed."""
    if not mandate_ids:
        return 0
    session.execute(
        update(SepaMandate)
        .where(SepaMandate.id.in_(mandate_ids))
        .values(
            iban_ciphertext=None, iban_last4=None, holder_name=None, signed_place=None,
            wiped_at=now,
        )
    )  # fmt: skip
    return len(mandate_ids)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None
