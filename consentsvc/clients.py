"""API clients: mailing processors and website backends, each with one secret key."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from .ledger import purpose_by_code
from .models import ApiClient, Library, utcnow

PREFIX = "csk_"
# What a key may do beyond checking and signing up for its purposes.
MEMBERSHIP = "membership"  # report memberships from the library system
SCOPES = (MEMBERSHIP,)


class UnknownScope(ValueError):
    """A scope this service does not have; nothing was stored."""


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a plain SHA-256 is enough; no slow hash is needed.
    return hashlib.sha256(key.encode()).hexdigest()


def create(
    session: Session,
    library: Library,
    name: str,
    purposes: Sequence[str],
    scopes: Sequence[str] = (),
) -> tuple[ApiClient, str]:
    """Make a client and its key; the key is returned once and only its hash is kept."""
    for code in purposes:
        purpose_by_code(library, code)
    for scope in scopes:
        if scope not in SCOPES:
            raise UnknownScope(scope)
    key = PREFIX + secrets.token_urlsafe(32)
    client = ApiClient(
        library_id=library.id,
        name=name,
        key_hash=hash_key(key),
        key_prefix=key[:10],
        purposes=list(dict.fromkeys(purposes)),
        scopes=list(dict.fromkeys(scopes)),
    )
    session.add(client)
    session.flush()
    return client, key


def authenticate(session: Session, key: str) -> ApiClient | None:
    """The active client this key belongs to, or None."""
    if not key.startswith(PREFIX) or len(key) > 100:
        return None
    client = session.scalar(select(ApiClient).where(ApiClient.key_hash == hash_key(key)))
    if client is None or client.revoked_at is not None:
        return None
    return client


def revoke(session: Session, client: ApiClient) -> None:
    client.revoked_at = client.revoked_at or utcnow()


def of_library(session: Session, library_id: int) -> list[ApiClient]:
    """The library's keys, revoked ones too, oldest first."""
    return list(
        session.scalars(
            select(ApiClient).where(ApiClient.library_id == library_id).order_by(ApiClient.id)
        )
    )


def find(session: Session, library_id: int, client_id: int) -> ApiClient | None:
    """One of the library's keys; another library's key is not there for it."""
    client = session.get(ApiClient, client_id)
    return client if client is not None and client.library_id == library_id else None
