"""Family access: one member manages another member's mail settings, only after the other
accepted.

This module owns the FamilyAccess rows and their rules: asking (by address, looked up in
the asker's own library only), accepting, refusing, ending by either side or by erasure
or restriction, listing what a person holds and gives, and a holder's change to the
giver's consents (recorded with the holder as actor). It never says whether an address is
known: `request_access` returns None for every request that leads to no mail, and the
caller runs it where no answer waits (the outbox worker, see intake.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ..models import ConsentEvent, FamilyAccess, Subject, utcnow
from .addresses import normalise_email
from .changes import grant, object_to, withdraw
from .errors import LedgerError, NotSelfService
from .events import Channel, Proof, lock
from .people import find_subject
from .purposes import purpose_by_code

# A person can be asked by several people, but an inbox must not fill with requests:
# no more than this many open requests to one person at a time.
MAX_OPEN_REQUESTS_TO_ONE = 3
# After a refusal the same holder cannot ask the same person again for this long.
QUIET_AFTER_REFUSAL = timedelta(days=30)
DAY = timedelta(days=1)


class FamilyStatus:
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    ENDED = "ended"


class EndedBy:
    HOLDER = "holder"
    GIVER = "giver"
    ERASURE = "erasure"
    RESTRICTION = "restriction"


class NoFamilyAccess(LedgerError):
    """No accepted access of this holder with this id (ended, never accepted, another's)."""

    code = "no_family_access"


def actor_for(holder: Subject) -> str:
    """How a holder's change is named on the giver's ledger events."""
    return f"family:{holder.id}"


def holder_id_of(actor: str | None) -> int | None:
    """The holder's subject id in an event's actor, or None when a family member did not act."""
    if not actor or not actor.startswith("family:"):
        return None
    number = actor.removeprefix("family:")
    return int(number) if number.isdigit() else None


def is_open(access: FamilyAccess, max_age: int, now: datetime | None = None) -> bool:
    """Whether a request still waits for an answer: asked, not answered, not lapsed."""
    now = now or utcnow()
    return (
        access.status == FamilyStatus.REQUESTED
        and access.requested_at + timedelta(seconds=max_age) > now
    )


def request_access(
    session: Session,
    holder: Subject,
    email: str,
    *,
    per_day: int,
    max_age: int,
    requested_at: datetime | None = None,
) -> FamilyAccess | None:
    """Record that `holder` asks to manage the settings of the person at `email`.

    Returns the new request, to be mailed to the other person, or None when nothing is to
    happen: the address is unknown in the holder's library (or erased, restricted, or the
    holder's own), the two already have an open request or access, the holder was refused
    by this person lately, the holder asked `per_day` times in a day, or the other person
    already has enough open requests. All of these look the same to the holder.
    """
    try:
        email = normalise_email(email)
    except LedgerError:
        return None
    lock(session, holder)  # one request of this holder at a time: the counts below hold
    if holder.erased_at is not None or holder.restricted_at is not None:
        return None
    giver = find_subject(session, holder.library, email)
    if (
        giver is None
        or giver.id == holder.id
        or giver.erased_at is not None
        or giver.restricted_at is not None
    ):
        return None
    now = requested_at or utcnow()
    asked_today = session.scalar(
        select(func.count(FamilyAccess.id)).where(
            FamilyAccess.holder_id == holder.id, FamilyAccess.requested_at > now - DAY
        )
    )
    if asked_today >= per_day:
        return None
    for earlier in _between(session, holder, giver):
        if earlier.status == FamilyStatus.ACCEPTED or is_open(earlier, max_age, now):
            return None
        if (
            earlier.status == FamilyStatus.REFUSED
            and earlier.answered_at is not None
            and earlier.answered_at + QUIET_AFTER_REFUSAL > now
        ):
            return None
    waiting = session.scalars(
        select(FamilyAccess).where(
            FamilyAccess.giver_id == giver.id, FamilyAccess.status == FamilyStatus.REQUESTED
        )
    ).all()
    if sum(is_open(w, max_age, now) for w in waiting) >= MAX_OPEN_REQUESTS_TO_ONE:
        return None
    access = FamilyAccess(
        library_id=holder.library_id,
        holder_id=holder.id,
        giver_id=giver.id,
        status=FamilyStatus.REQUESTED,
        requested_at=now,
    )
    session.add(access)
    session.flush()
    return access


def answer(session: Session, access: FamilyAccess, *, accept: bool, max_age: int) -> bool:
    """The giver accepts or refuses; False when the request is no longer open.

    Neither side may be erased or restricted: a frozen person's settings are not shared.
    """
    lock(session, access.giver)
    session.refresh(access, with_for_update=True)
    if not is_open(access, max_age):
        return False
    if accept and not (_active(access.holder) and _active(access.giver)):
        return False
    access.status = FamilyStatus.ACCEPTED if accept else FamilyStatus.REFUSED
    access.answered_at = utcnow()
    return True


def end(session: Session, access: FamilyAccess, by: Subject) -> bool:
    """Either side stops an accepted access; False when it was not running (or not theirs)."""
    if by.id not in (access.holder_id, access.giver_id):
        return False
    session.refresh(access, with_for_update=True)
    if access.status != FamilyStatus.ACCEPTED:
        return False
    _close(access, EndedBy.HOLDER if by.id == access.holder_id else EndedBy.GIVER)
    return True


def end_all(session: Session, subject: Subject, reason: str) -> list[FamilyAccess]:
    """End every access and open request the person holds or gives (erasure, restriction)."""
    ended = []
    for access in session.scalars(
        select(FamilyAccess).where(
            or_(FamilyAccess.holder_id == subject.id, FamilyAccess.giver_id == subject.id),
            FamilyAccess.status.in_((FamilyStatus.ACCEPTED, FamilyStatus.REQUESTED)),
        )
    ):
        _close(access, reason)
        ended.append(access)
    session.flush()
    return ended


@dataclass(frozen=True)
class Accesses:
    """A person's family access: whose settings they manage (held), who manages theirs
    (given), and the requests to them that still wait for their answer (waiting)."""

    held: list[FamilyAccess]
    given: list[FamilyAccess]
    waiting: list[FamilyAccess]


def accesses_of(session: Session, subject: Subject, *, max_age: int) -> Accesses:
    """Every access and open request the person is part of, in one query (the preference
    centre shows them on every visit), oldest first. An access whose other side is erased
    or restricted is left out, as a request from such a person is."""
    rows = session.scalars(
        select(FamilyAccess)
        .where(
            or_(FamilyAccess.holder_id == subject.id, FamilyAccess.giver_id == subject.id),
            FamilyAccess.status.in_((FamilyStatus.ACCEPTED, FamilyStatus.REQUESTED)),
        )
        .order_by(FamilyAccess.id)
    ).all()
    accepted = [r for r in rows if r.status == FamilyStatus.ACCEPTED]
    return Accesses(
        held=[r for r in accepted if r.holder_id == subject.id and _active(r.giver)],
        given=[r for r in accepted if r.giver_id == subject.id and _active(r.holder)],
        waiting=[
            r
            for r in rows
            if r.giver_id == subject.id and is_open(r, max_age) and _active(r.holder)
        ],
    )


def held_access(session: Session, holder: Subject, access_id: int) -> FamilyAccess:
    """The holder's accepted access with this id; raises NoFamilyAccess otherwise."""
    access = session.get(FamilyAccess, access_id)
    if (
        access is None
        or access.holder_id != holder.id
        or access.status != FamilyStatus.ACCEPTED
        or not _active(access.giver)
    ):
        raise NoFamilyAccess(str(access_id))
    return access


def change(
    session: Session,
    access: FamilyAccess,
    purpose_code: str,
    choice: str,
    *,
    proof: Proof | None = None,
) -> ConsentEvent | None:
    """The holder switches one of the giver's purposes on, off or to "never".

    Recorded on the giver's ledger with the holder as actor and channel `family`; only mail,
    and only what the giver could do in their own mail settings. Returns None when nothing
    changed.
    """
    giver = access.giver
    purpose = purpose_by_code(giver.library, purpose_code)
    if not purpose.is_mail:
        # Access is to mail settings: a direct-debit mandate is ended at the desk only.
        raise NotSelfService(purpose_code)
    actor = actor_for(access.holder)
    if choice == "on":
        if not purpose.self_service:
            raise NotSelfService(purpose_code)
        return grant(session, giver, purpose_code, channel=Channel.FAMILY, actor=actor, proof=proof)
    if choice == "off":
        return withdraw(
            session, giver, purpose_code, channel=Channel.FAMILY, actor=actor, proof=proof
        )
    if choice == "never":
        return object_to(
            session, giver, purpose_code, channel=Channel.FAMILY, actor=actor, proof=proof
        )
    raise ValueError(f"unknown choice {choice!r}")


def export_rows(session: Session, subject: Subject) -> list[dict[str, str | None]]:
    """The person's family access for their copy of their data (right of access).

    As giver: every request to them. As holder: only what the other accepted (running or
    ended since): a row for a request not accepted would tell the asker that the address
    is known, and whether it was refused.
    """
    rows = session.scalars(
        select(FamilyAccess)
        .where(
            or_(
                FamilyAccess.giver_id == subject.id,
                (FamilyAccess.holder_id == subject.id) & FamilyAccess.answered_at.is_not(None),
            )
        )
        .order_by(FamilyAccess.id)
    )
    result = []
    for access in rows:
        giving = access.giver_id == subject.id
        if not giving and access.status == FamilyStatus.REFUSED:
            continue
        result.append(
            {
                "role": "giver" if giving else "holder",
                "other": (access.holder if giving else access.giver).email,
                "status": access.status,
                "requested_at": access.requested_at.isoformat(),
                "answered_at": _iso(access.answered_at),
                "ended_at": _iso(access.ended_at),
                "ended_by": access.ended_by,
            }
        )
    return result


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _between(session: Session, holder: Subject, giver: Subject) -> list[FamilyAccess]:
    return list(
        session.scalars(
            select(FamilyAccess).where(
                FamilyAccess.holder_id == holder.id, FamilyAccess.giver_id == giver.id
            )
        )
    )


def _active(subject: Subject) -> bool:
    return subject.erased_at is None and subject.restricted_at is None


def _close(access: FamilyAccess, by: str) -> None:
    access.status = FamilyStatus.ENDED
    access.ended_at = utcnow()
    access.ended_by = by
