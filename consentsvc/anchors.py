"""Anchoring each library's chains outside the database.

A head statement says, signed with the service's Ed25519 key, how long each chain of a
library was and which hash it ended in at a moment. The worker makes one a day per library,
keeps it (LedgerAnchor), mails it to the library's privacy officer and serves the latest at
/.well-known/consent-ledger/<library>. Whoever kept an earlier statement can later check that
the chain still runs through it: an edit made after that day cannot be hidden by re-computing
every hash, because the hash at the statement's place would change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import ledger, outbox, signing
from .models import LedgerAnchor, Library, utcnow

STATEMENT_TYPE = "consentsvc-ledger-head"
STATEMENT_VERSION = 1


def statement(session: Session, library: Library, now: datetime | None = None) -> dict[str, Any]:
    """A signed head statement of the library's chains as they stand now."""
    heads = ledger.heads(session, library)
    payload = {
        "type": STATEMENT_TYPE,
        "version": STATEMENT_VERSION,
        "library": library.slug,
        "library_name": library.name,
        "issued_at": ledger.chain.timestamp(now or utcnow()),
        "chains": {
            name: {
                "length": head.length,
                "hash": head.hash,
                "last_at": ledger.chain.timestamp(head.last_at) if head.last_at else None,
            }
            for name, head in heads.items()
        },
    }
    return signing.sign(session, payload)


def anchor_daily(session: Session, now: datetime, zone: ZoneInfo) -> list[LedgerAnchor]:
    """Today's anchor of every library that has none yet (one per library and day, whichever
    worker on whichever host gets there first); each is mailed to the privacy officer."""
    day = now.astimezone(zone).date()
    made = []
    for library in session.scalars(select(Library).order_by(Library.id)):
        anchor = _anchor(session, library, day, now)
        if anchor is not None:
            made.append(anchor)
    return made


def _anchor(session: Session, library: Library, day: date, now: datetime) -> LedgerAnchor | None:
    if session.scalar(
        select(LedgerAnchor.id).where(
            LedgerAnchor.library_id == library.id, LedgerAnchor.day == day
        )
    ):
        return None
    document = statement(session, library, now)
    chains = document["payload"]["chains"]
    anchor = LedgerAnchor(
        library_id=library.id,
        day=day,
        issued_at=now,
        consent_length=chains[ledger.CONSENT]["length"],
        consent_hash=chains[ledger.CONSENT]["hash"],
        audit_length=chains[ledger.AUDIT]["length"],
        audit_hash=chains[ledger.AUDIT]["hash"],
        statement=document,
    )
    try:
        with session.begin_nested():
            session.add(anchor)
            session.flush()
    except IntegrityError:
        return None  # another worker anchored this library today
    if library.privacy_officer_email:
        outbox.enqueue_staff_mail(
            session, library.id, "ledger_head", to=library.privacy_officer_email,
            anchor_id=anchor.id,
        )  # fmt: skip
    return anchor


def latest(session: Session, library: Library) -> LedgerAnchor | None:
    """The library's most recent anchor."""
    return session.scalar(
        select(LedgerAnchor)
        .where(LedgerAnchor.library_id == library.id)
        .order_by(LedgerAnchor.issued_at.desc(), LedgerAnchor.id.desc())
        .limit(1)
    )


def covering(
    session: Session, library: Library, seq: int, chain: str = ledger.CONSENT
) -> tuple[LedgerAnchor | None, LedgerAnchor | None]:
    """The first and the latest anchor whose statement includes place `seq` of a chain."""
    length = LedgerAnchor.consent_length if chain == ledger.CONSENT else LedgerAnchor.audit_length
    query = select(LedgerAnchor).where(LedgerAnchor.library_id == library.id, length >= seq)
    first = session.scalar(query.order_by(LedgerAnchor.issued_at, LedgerAnchor.id).limit(1))
    last = session.scalar(
        query.order_by(LedgerAnchor.issued_at.desc(), LedgerAnchor.id.desc()).limit(1)
    )
    return first, last


@dataclass(frozen=True)
class ChainCheck:
    """How one chain compares with an earlier head statement."""

    chain: str
    length: int
    holds: bool
    stored_hash: str | None
    stated_hash: str


@dataclass(frozen=True)
class AgainstReport:
    library: str
    issued_at: str
    checks: list[ChainCheck]

    @property
    def holds(self) -> bool:
        return all(check.holds for check in self.checks)


class NotAStatement(ValueError):
    """The file is not a head statement this service could have signed."""


def check_against(session: Session, document: Any) -> AgainstReport:
    """Check the chains as stored against a head statement kept from earlier.

    The signature is checked first with the service's published keys (raises
    signing.BadSignature); then each chain must still hold the stated hash at the stated
    length. Whether the rows up to there still hash to it is `ledger verify`'s part.
    """
    payload = signing.verify(document, signing.published_keys(session))
    if payload.get("type") != STATEMENT_TYPE or not isinstance(payload.get("chains"), dict):
        raise NotAStatement("not a ledger head statement")
    library = session.scalar(select(Library).where(Library.slug == payload.get("library")))
    if library is None:
        raise NotAStatement(f"no library {payload.get('library')!r} here")
    checks = []
    for name in (ledger.CONSENT, ledger.AUDIT):
        stated = payload["chains"].get(name) or {}
        length, digest = stated.get("length"), stated.get("hash")
        if not isinstance(length, int) or not isinstance(digest, str):
            raise NotAStatement(f"the statement has no {name} chain")
        stored = ledger.hash_at(session, library, name, length)
        checks.append(ChainCheck(name, length, stored == digest, stored, digest))
    return AgainstReport(library.slug, str(payload.get("issued_at")), checks)
