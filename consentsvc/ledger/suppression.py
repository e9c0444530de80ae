"""Suppressions: addresses never to be mailed again, kept as keyed hashes so they
survive erasure."""

from __future__ import annotations

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from .. import outbox
from ..models import (
    Library,
    Suppression,
)
from .addresses import email_hmac, normalise_email


def suppress(
    session: Session,
    library: Library,
    email: str,
    reason: str,
    *,
    suppression_key: str,
    actor: str | None = None,
) -> bool:
    """Never mail this address again for this library; False if it already was."""
    digest = email_hmac(suppression_key, normalise_email(email))
    exists = session.scalar(
        select(Suppression.id).where(
            Suppression.library_id == library.id, Suppression.email_hmac == digest
        )
    )
    if exists:
        return False
    session.add(Suppression(library_id=library.id, email_hmac=digest, reason=reason, actor=actor))
    outbox.enqueue_event(
        session,
        library.id,
        "suppression.added",
        {"library": library.slug, "email": normalise_email(email), "reason": reason},
    )
    session.flush()
    return True
