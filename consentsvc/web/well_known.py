"""/.well-known/: what the service publishes for anyone to check its proof with.

Public keys only (no personal data), the same for everyone: cacheable and readable from
any origin. Also each library's latest signed head statement (anchors.py).
"""

from __future__ import annotations

from flask import Blueprint, Response, json
from sqlalchemy import select

from .. import anchors, signing
from ..extensions import db
from ..models import Library

bp = Blueprint("well_known", __name__, url_prefix="/.well-known")

# Briefly: a rotated key must show up soon, and an old one never leaves the set.
KEYS_MAX_AGE = 300


def public_json(document: object, mimetype: str = "application/json") -> Response:
    """A JSON answer that is the same for everyone: cached briefly, readable cross-origin."""
    response = Response(json.dumps(document, indent=2) + "\n", mimetype=mimetype)
    response.headers["Cache-Control"] = f"public, max-age={KEYS_MAX_AGE}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get(signing.KEYS_PATH.removeprefix("/.well-known"))
def receipt_key() -> Response:
    """The JWK Set of every key that signed receipts or ledger heads, the active one first."""
    return public_json(signing.published_keys(db.session), "application/jwk-set+json")


@bp.get("/consent-ledger/<library>")
def consent_ledger(library: str) -> Response | tuple[Response, int]:
    """The library's latest anchored head statement, exactly as it was signed and mailed."""
    found = db.session.scalar(select(Library).where(Library.slug == library))
    anchor = anchors.latest(db.session, found) if found is not None else None
    if anchor is None:
        message = "no such library" if found is None else "no head statement yet"
        return public_json({"error": "not_found", "message": message}), 404
    return public_json(anchor.statement)
