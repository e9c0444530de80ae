"""Ed25519 signatures on what the service hands out as proof (consent receipts, ledger heads).

Owns the canonical JSON encoding that is signed, the active signing key (the setting
CONSENTSVC_SIGNING_KEY), its key id (the RFC 7638 JWK thumbprint), the table of published
keys and the check of a signed document against a JWK Set. A key that is no longer active
stays in the table, so everything it signed keeps verifying: that is how keys rotate.

Knows no HTTP: the web layer serves `published_keys` at /.well-known/consent-receipt-key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import current_app
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .models import SigningKey, utcnow

# Where the JWK Set is served (web/well_known.py); receipts name it.
KEYS_PATH = "/.well-known/consent-receipt-key"
ALG = "EdDSA"
CRV = "Ed25519"
KTY = "OKP"
SEED_BYTES = 32
SIGNATURE_BYTES = 64


class BadSignature(Exception):
    """A signed document that does not verify; `reason` says why in one word.

    `malformed` (not a signed document of this kind), `unknown_kid` (no published key has
    its key id) or `bad_signature` (the key is known, the bytes were changed or not signed
    with it).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def canonical(obj: Any) -> bytes:
    """The bytes that are signed: UTF-8 JSON, keys sorted, no spaces, non-ASCII as is.

    Only strings, integers, booleans, null, lists and objects may occur; a float (whose
    text form differs between languages) is refused.
    """
    _check_plain(obj)
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _check_plain(obj: Any) -> None:
    if obj is None or isinstance(obj, (str, bool, int)):
        return
    if isinstance(obj, list):
        for item in obj:
            _check_plain(item)
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError("object keys must be strings")
            _check_plain(value)
        return
    raise TypeError(f"{type(obj).__name__} has no canonical form")


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515), as JWK and signatures are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of a base64url text, with or without padding; ValueError when it is not."""
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as error:
        raise ValueError("not base64url") from error


def new_key() -> str:
    """A new private key: 32 random bytes (the Ed25519 seed) in URL-safe base64."""
    return base64.urlsafe_b64encode(secrets.token_bytes(SEED_BYTES)).decode("ascii")


def private_key(setting: str) -> Ed25519PrivateKey:
    """The key a setting names; ValueError when it is not a 32-byte seed in base64."""
    try:
        seed = base64.urlsafe_b64decode(setting.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError) as error:
        raise ValueError("not URL-safe base64") from error
    if len(seed) != SEED_BYTES:
        raise ValueError(f"must be {SEED_BYTES} bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def is_key(setting: Any) -> bool:
    """Whether a setting holds a usable private key."""
    if not isinstance(setting, str):
        return False
    try:
        private_key(setting)
    except ValueError:
        return False
    return True


def public_x(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as the JWK member `x`: its 32 raw bytes in base64url."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return b64url(public.public_bytes(Encoding.Raw, PublicFormat.Raw))


def thumbprint(x: str) -> str:
    """The key id: the RFC 7638 thumbprint, SHA-256 of the key's required JWK members."""
    required = {"crv": CRV, "kty": KTY, "x": x}
    return b64url(hashlib.sha256(canonical(required)).digest())


def jwk(kid: str, x: str) -> dict[str, str]:
    """One public key as a JWK (RFC 8037)."""
    return {"kid": kid, "kty": KTY, "crv": CRV, "x": x, "use": "sig", "alg": ALG}


def _active() -> tuple[Ed25519PrivateKey, str, str]:
    key = private_key(current_app.config["SIGNING_KEY"])
    x = public_x(key)
    return key, thumbprint(x), x


def active_kid() -> str:
    """The key id of the app's active signing key."""
    return _active()[1]


def sign(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with an Ed25519 signature by the app's active key over canonical(payload).

    The first signature by a key publishes it (in the session's transaction; commit it).
    Ed25519 is deterministic: the same payload gives the same document every time.
    """
    key, kid, x = _active()
    signature = key.sign(canonical(payload))
    _publish(session, kid, x)
    return {
        "payload": payload,
        "signature": {"alg": ALG, "crv": CRV, "kid": kid, "sig": b64url(signature)},
    }


def _publish(session: Session, kid: str, x: str) -> None:
    """Add the key to signing_key once; several processes may try at the same time."""
    if session.get(SigningKey, kid) is not None:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(SigningKey)
        .values(kid=kid, x=x, first_used_at=utcnow())
        .on_conflict_do_nothing(index_elements=["kid"])
    )
    try:
        # A savepoint: should the write not be possible now (SQLite busy on a page that only
        # read), the caller's work goes on; the active key is published anyway (see
        # published_keys) and the next signature registers it.
        with session.begin_nested():
            session.execute(statement)
    except DBAPIError:
        current_app.logger.warning("signing key %s not yet registered; will retry", kid)


def published_keys(session: Session) -> dict[str, list[dict[str, str]]]:
    """The JWK Set: the active key first, then every earlier one, newest first."""
    _key, kid, x = _active()
    keys = [jwk(kid, x)]
    earlier = session.scalars(select(SigningKey).order_by(SigningKey.first_used_at.desc()))
    keys += [jwk(row.kid, row.x) for row in earlier if row.kid != kid]
    return {"keys": keys}


def verify(document: Any, keys: Any) -> dict[str, Any]:
    """The payload of a signed document whose signature holds under a key of the JWK Set.

    Raises BadSignature otherwise. The key is picked by the document's `kid`, and a key in
    the set is used only when its `kid` is its own thumbprint.
    """
    if not isinstance(document, dict) or set(document) != {"payload", "signature"}:
        raise BadSignature("malformed", "expected an object with payload and signature")
    payload, signature = document["payload"], document["signature"]
    if not isinstance(payload, dict) or not isinstance(signature, dict):
        raise BadSignature("malformed", "payload and signature must be objects")
    if signature.get("alg") != ALG or signature.get("crv", CRV) != CRV:
        raise BadSignature("malformed", f"signature algorithm is not {ALG} with {CRV}")
    kid, sig = signature.get("kid"), signature.get("sig")
    if not isinstance(kid, str) or not isinstance(sig, str):
        raise BadSignature("malformed", "signature needs a kid and a sig")
    try:
        raw_signature = b64url_decode(sig)
    except ValueError:
        raise BadSignature("malformed", "sig is not base64url") from None
    if len(raw_signature) != SIGNATURE_BYTES:
        raise BadSignature("malformed", f"sig is not {SIGNATURE_BYTES} bytes")
    try:
        message = canonical(payload)
    except (TypeError, ValueError, RecursionError):
        raise BadSignature("malformed", "payload holds a value without canonical form") from None
    public = _find_key(keys, kid)
    try:
        public.verify(raw_signature, message)
    except InvalidSignature:
        raise BadSignature("bad_signature", f"signature does not match key {kid}") from None
    return payload


def _find_key(keys: Any, kid: str) -> Ed25519PublicKey:
    entries = keys.get("keys") if isinstance(keys, dict) else None
    if not isinstance(entries, list):
        raise BadSignature("malformed", 'the key set is not a JWK Set ({"keys": [...]})')
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kid") != kid:
            continue
        x = entry.get("x")
        if entry.get("kty") != KTY or entry.get("crv") != CRV or not isinstance(x, str):
            raise BadSignature("malformed", f"key {kid} is not an Ed25519 key")
        if thumbprint(x) != kid:
            raise BadSignature("malformed", f"key {kid} is not the key its id names")
        try:
            return Ed25519PublicKey.from_public_bytes(b64url_decode(x))
        except ValueError:
            raise BadSignature("malformed", f"key {kid} is not 32 bytes") from None
    raise BadSignature("unknown_kid", f"no published key has id {kid}")
