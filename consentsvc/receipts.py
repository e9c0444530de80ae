"""Signed consent receipts: what a member agreed to or stopped, as a document they can keep.

Every grant, withdrawal and objection has one. A receipt is built from the event when it
is asked for, never stored: the same event gives the same bytes every time (Ed25519 is
deterministic), so there is nothing to keep in step. Its fields follow the consent receipt
of ISO/IEC TS 27560:2023 (the Kantara Consent Receipt before it): who the controller is,
whom it is about, the purpose and its legal basis, the notice that was shown, what
happened when and how, and where the event stands in the library's hash chain.

Knows no HTTP or HTML; the member's pages and the CLI call it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import signing
from .ledger import Action, chain
from .models import ConsentEvent, ConsentText, Library, Subject

SCHEMA = "consentsvc-receipt/1"
CONFORMS_TO = "ISO/IEC TS 27560:2023"
JURISDICTION = "NL"
# The events a member gets a receipt of: a consent given, and its end.
RECEIPT_ACTIONS = (Action.GRANTED, Action.WITHDRAWN, Action.OBJECTED)


def has_receipt(event: ConsentEvent) -> bool:
    """Whether the event is one a receipt is made of."""
    return event.action in RECEIPT_ACTIONS


def receipt_id(event: ConsentEvent) -> str:
    """The receipt's id: derived from the event's chain hash, so it names this event only."""
    return chain.receipt_id(event.hash)


def notice_of(session: Session, event: ConsentEvent) -> ConsentText | None:
    """The wording the event is about: its own, or for an end the one of the grant it ends."""
    if event.consent_text is not None:
        return event.consent_text
    if event.action == Action.GRANTED:
        return None
    earlier = session.scalar(
        select(ConsentEvent)
        .where(
            ConsentEvent.subject_id == event.subject_id,
            ConsentEvent.purpose_id == event.purpose_id,
            ConsentEvent.action == Action.GRANTED,
            ConsentEvent.id < event.id,
        )
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    )
    return earlier.consent_text if earlier is not None else None


def keys_url() -> str:
    """Where the keys that check a receipt are published."""
    return current_app.config["BASE_URL"] + signing.KEYS_PATH


def payload(session: Session, event: ConsentEvent) -> dict[str, Any]:
    """The receipt's content, before it is signed."""
    if not has_receipt(event):
        raise ValueError(f"a {event.action} event has no receipt")
    subject = session.get(Subject, event.subject_id)
    assert subject is not None  # an event always names its person
    library: Library = subject.library
    purpose = event.purpose
    notice = notice_of(session, event)
    return {
        "schema": SCHEMA,
        "conforms_to": CONFORMS_TO,
        "receipt_id": receipt_id(event),
        "jurisdiction": JURISDICTION,
        "language": notice.language if notice is not None else subject.language,
        "controller": _controller(library),
        "pii_principal": {"subject_id": subject.id, "email": subject.email},
        "purpose": {
            "code": purpose.code,
            "name": notice.title if notice is not None else purpose.code,
            "legal_basis": purpose.legal_basis,
        },
        "notice": None if notice is None else _notice(notice),
        "event": {
            "action": event.action,
            # Written as the chain hashes it: UTC, microseconds, a Z.
            "time": chain.timestamp(event.occurred_at),
            "channel": event.channel,
            "confirms_request": event.request_id is not None,
        },
        "chain": {  # as in the chain: the library's slug, the place, the hash
            "library": library.slug,
            "seq": event.seq,
            "event_hash": event.hash,
            # The keyed hash of the evidence (client address, browser) hashed into the
            # chain: a kept copy of the evidence can be shown to match it.
            "evidence_commitment": event.evidence_commitment,
        },
        "keys_url": keys_url(),
    }


def _controller(library: Library) -> dict[str, Any]:
    officer = bool(library.privacy_officer_email)
    return {
        "name": library.name,
        "isil": library.isil or None,
        "website": library.website or None,
        "contact": {
            "role": "privacy_officer" if officer else "library",
            "name": library.privacy_officer_name if officer else None,
            "email": library.privacy_officer_email if officer else library.contact_email,
            "phone": library.contact_phone or None,
        },
    }


def _notice(text: ConsentText) -> dict[str, Any]:
    return {
        "version": text.version,
        "language": text.language,
        "title": text.title,
        "text": text.body,
        # Of the title, two newlines and the text, as UTF-8 (see docs/proof.md).
        "sha256": text.sha256,
    }


def receipt(session: Session, event: ConsentEvent) -> dict[str, Any]:
    """The signed receipt of the event."""
    return signing.sign(session, payload(session, event))


def of_subject(session: Session, subject: Subject) -> list[ConsentEvent]:
    """The person's events that have a receipt, newest first."""
    return list(
        session.scalars(
            select(ConsentEvent)
            .where(
                ConsentEvent.subject_id == subject.id,
                ConsentEvent.action.in_(RECEIPT_ACTIONS),
            )
            .order_by(ConsentEvent.id.desc())
        )
    )


def find(session: Session, subject: Subject, wanted: str) -> ConsentEvent | None:
    """The person's event with this receipt id; None for anyone else's or none at all."""
    for event in of_subject(session, subject):
        if receipt_id(event) == wanted:
            return event
    return None


def answering(session: Session, subject: Subject, request_ids: Iterable[int]) -> list[ConsentEvent]:
    """The grants that confirmed these requests (after a double opt-in), in their order."""
    ids = list(request_ids)
    if not ids:
        return []
    return list(
        session.scalars(
            select(ConsentEvent)
            .where(
                ConsentEvent.subject_id == subject.id,
                ConsentEvent.action == Action.GRANTED,
                ConsentEvent.request_id.in_(ids),
            )
            .order_by(ConsentEvent.id)
        )
    )
