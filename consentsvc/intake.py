"""Signups and "mail me my link": the request records the attempt, the worker decides.

Whether an address is known must not show in the answer, nor in how long it takes. So the
request does the same database work for every address: it checks what does not depend on
the person (the purposes offered, the wording shown), writes one outbox row with what was
asked and the evidence of asking, and commits. The outbox worker then looks the person up,
records the signup in the ledger with the time and wording of the request, and queues the
mail that is due (the mailer's cool-downs apply there). The address stays in the row only
until the worker has decided (outbox.PERSONAL_REQUEST_FIELDS) and never reaches a log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from . import ledger, mailer, outbox
from .extensions import db
from .ledger import LedgerError, Proof
from .models import Library, Subject, utcnow

SIGNUP = "signup"
LINK = "link"
FAMILY = "family"


def record_signup(
    session: Session,
    library: Library,
    email: str,
    purpose_codes: Sequence[str],
    *,
    language: str,
    channel: str,
    proof: Proof,
    text_ids: dict[str, int] | None = None,
    actor: str | None = None,
) -> None:
    """Queue a signup; raises what ledger.signup would for the address or purposes given.

    The wording is fixed now: a new version published before the worker runs must not be
    recorded as what the person agreed to.
    """
    email = ledger.normalise_email(email)
    shown = ledger.shown_texts(session, library, purpose_codes, language, text_ids)
    outbox.enqueue_request(
        session,
        library.id,
        SIGNUP,
        {
            "email": email,
            "purposes": list(dict.fromkeys(purpose_codes)),
            "language": language,
            "channel": channel,
            "text_ids": shown,
            "actor": actor,
            "proof": asdict(proof),
            "requested_at": utcnow().isoformat(),
        },
    )


def record_link_request(session: Session, library: Library, email: str) -> None:
    """Queue "mail me my link"; raises ledger.InvalidEmail for an address that cannot be one."""
    outbox.enqueue_request(
        session,
        library.id,
        LINK,
        {"email": ledger.normalise_email(email), "requested_at": utcnow().isoformat()},
    )


def record_family_request(session: Session, holder: Subject, email: str) -> None:
    """Queue a family-access request; raises ledger.InvalidEmail for an address that cannot
    be one. Whether anyone has the address is the worker's to find out (ledger/family.py)."""
    outbox.enqueue_request(
        session,
        holder.library_id,
        FAMILY,
        {
            "holder_id": holder.id,
            "email": ledger.normalise_email(email),
            "requested_at": utcnow().isoformat(),
        },
    )


def decide(library_id: int, payload: dict[str, Any]) -> None:
    """Carry out a queued request (called by the outbox worker, which commits)."""
    session = db.session
    library = session.get(Library, library_id)
    if library is None:
        raise outbox.GiveUp("the library is gone")
    if payload["request"] == SIGNUP:
        _signup(session, library, payload)
    elif payload["request"] == LINK:
        subject = ledger.find_subject(session, library, payload["email"])
        if subject is not None and subject.erased_at is None:
            ledger.lock(session, subject)
            mailer.preference_link(session, subject)
    elif payload["request"] == FAMILY:
        _family(session, library, payload)
    else:
        raise outbox.GiveUp(f"unknown request {payload['request']!r}")


def _signup(session: Session, library: Library, payload: dict[str, Any]) -> None:
    try:
        # A refusal (the person's data is restricted, the purpose no longer offered) leaves
        # nothing behind: the savepoint takes back what the ledger had begun.
        with session.begin_nested():
            result = ledger.signup(
                session, library, payload["email"], payload["purposes"],
                language=payload["language"], channel=payload["channel"],
                proof=Proof(**payload["proof"]), text_ids=payload["text_ids"],
                actor=payload["actor"],
                requested_at=datetime.fromisoformat(payload["requested_at"]),
            )  # fmt: skip
    except LedgerError as exc:
        raise outbox.GiveUp(f"signup refused: {exc.code}") from None
    mailer.after_signup(session, result.subject, result)


def _family(session: Session, library: Library, payload: dict[str, Any]) -> None:
    holder = session.get(Subject, payload["holder_id"])
    if holder is None or holder.library_id != library.id:
        raise outbox.GiveUp("the person who asked is gone")
    config = current_app.config
    access = ledger.request_family_access(
        session, holder, payload["email"],
        per_day=config["FAMILY_REQUESTS_PER_DAY"], max_age=config["FAMILY_REQUEST_MAX_AGE"],
        requested_at=datetime.fromisoformat(payload["requested_at"]),
    )  # fmt: skip
    if access is not None:
        mailer.family_request(session, access)
