"""What every benchmark starts from: the service configured for measuring (no rate limits,
fixed keys) and a fresh database holding the demo libraries."""

from __future__ import annotations

from typing import Any

from flask import Flask

from consentsvc import create_app
from consentsvc.demo import seed
from consentsvc.extensions import db

SUPPRESSION_KEY = "benchmark-suppression-key"
# Fernet and Ed25519 keys (32 bytes, URL-safe base64) for measuring only: a BASE_URL that is
# not local counts as production, which refuses to start without keys of its own.
IBAN_KEY = "YmVuY2htYXJrLWliYW4ta2V5LTAxMjM0NTY3ODlhYmM="
SIGNING_KEY = "YmVuY2htYXJrLXNpZ25pbmcta2V5LTAxMjM0NTY3ODk="


def bench_app(url: str, **config: Any) -> Flask:
    return create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "benchmark-secret-key-0123456789abcdef",
            "SUPPRESSION_KEY": SUPPRESSION_KEY,
            "IBAN_KEY": IBAN_KEY,
            "SIGNING_KEY": SIGNING_KEY,
            "RATELIMIT_ENABLED": False,
            "BASE_URL": "https://toestemming.bibliotheek.example",
            **config,
        }
    )


def fresh_database() -> None:
    """Drop and recreate every table and seed the demo libraries (inside an app context)."""
    db.drop_all()
    db.create_all()
    seed(db.session)
    db.session.commit()
