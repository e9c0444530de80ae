"""Defaults. Every key can be overridden by an environment variable CONSENTSVC_<KEY>."""

from __future__ import annotations

import re
import secrets
from datetime import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import iban, signing

DAY = 24 * 60 * 60
# Named, so that no empty string reads as a password written into the code (bandit B105).
NOT_SET = ""
NO_LOGIN = None

DEFAULTS: dict[str, Any] = {
    # Where links in mails and headers point. Never derived from the Host header.
    "BASE_URL": "http://127.0.0.1:5000",
    # Empty means: a SQLite file in the instance folder.
    "DATABASE_URL": "",
    # Empty means: generated once and kept in the instance folder (fine for trying it out;
    # refused in production, see check_production_keys).
    "SECRET_KEY": NOT_SET,
    # Old keys that still verify links while they are being rotated out, oldest first.
    "SECRET_KEY_FALLBACKS": [],
    # Keys the HMAC of suppressed addresses. Must outlive SECRET_KEY rotations.
    "SUPPRESSION_KEY": NOT_SET,
    # Encrypts the IBANs of direct-debit mandates (a Fernet key); never derived from
    # SECRET_KEY. Empty means: generated once into the instance folder; refused in production.
    "IBAN_KEY": NOT_SET,
    # Signs consent receipts and ledger heads: an Ed25519 private key (its 32-byte seed in
    # URL-safe base64). Empty means: generated once into the instance folder; refused in
    # production. Changing it rotates the key; the old one stays published.
    "SIGNING_KEY": NOT_SET,
    "CONFIRM_MAX_AGE": 7 * DAY,
    "PREFERENCES_MAX_AGE": 30 * DAY,
    # A link to a copy of one's own data works this long.
    "DOWNLOAD_MAX_AGE": 2 * DAY,
    # The same person is mailed at most once per kind of mail in this many seconds.
    "MAIL_COOLDOWN": 60 * 60,
    # SMTP. Without MAIL_SERVER, mails are written to MAIL_DIR and a short line is printed.
    "MAIL_SERVER": "",
    "MAIL_PORT": 25,
    "MAIL_USE_TLS": False,
    "MAIL_USE_SSL": False,
    "MAIL_USERNAME": None,
    "MAIL_PASSWORD": NO_LOGIN,
    "MAIL_DEFAULT_SENDER": "Bibliotheek <no-reply@localhost>",
    "MAIL_DIR": "",
    # Seconds to wait for the SMTP server before the mail is retried later.
    "MAIL_TIMEOUT": 30,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_ENABLED": True,
    # Per client IP on the forms that send mail.
    "SIGNUP_RATE_LIMIT": "10 per minute;60 per hour",
    "LINK_REQUEST_RATE_LIMIT": "5 per minute;30 per hour",
    # Per client IP, asking for access to a family member's mail settings.
    "FAMILY_REQUEST_RATE_LIMIT": "5 per minute;20 per hour",
    # Per member: family-access requests that are mailed in any 24 hours (more are dropped
    # without a word, so nobody can bomb an inbox through the service).
    "FAMILY_REQUESTS_PER_DAY": 5,
    # Seconds a family-access request (and its accept link) waits for an answer.
    "FAMILY_REQUEST_MAX_AGE": 14 * DAY,
    # Per API key, on every /api/v1 call.
    "API_RATE_LIMIT": "600 per minute",
    # Per client address, calls to /api/v1 with a missing, wrong or revoked key.
    "API_AUTH_FAILURE_RATE_LIMIT": "30 per minute;300 per hour",
    # Behind a reverse proxy, the number of proxies whose X-Forwarded-* headers are trusted.
    "PROXY_COUNT": 0,
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "API_MAX_CONTENT_LENGTH": 4 * 1024 * 1024,
    # Webhook URLs must be https and resolve to public addresses; these networks (CIDR) are
    # allowed anyway, e.g. ["127.0.0.0/8"] for a receiver on the same machine.
    "WEBHOOK_ALLOWED_NETWORKS": [],
    "WEBHOOK_ALLOW_HTTP": False,
    # A staff session ends this many seconds after login, however busy it is, and earlier
    # after STAFF_IDLE_SECONDS without a request.
    "STAFF_SESSION_SECONDS": 8 * 60 * 60,
    "STAFF_IDLE_SECONDS": 30 * 60,
    "STAFF_LOGIN_RATE_LIMIT": "10 per minute;50 per hour",
    # Seconds the worker sleeps when the outbox is empty.
    "WORKER_INTERVAL": 1.0,
    # When (HH:MM, Europe/Amsterdam) the worker runs retention each day; "off": never (cron).
    "RETENTION_TIME": "03:30",
    # Reconfirmation mails of an imported list leave at most this many a minute (0: at once).
    "IMPORT_RECONFIRM_PER_MINUTE": 100,
    # Notices of a new privacy statement leave at most this many a minute (0: at once).
    "STATEMENT_NOTICE_PER_MINUTE": 100,
    # Largest subscriber list an admin may upload in the console, in bytes.
    "IMPORT_MAX_UPLOAD_BYTES": 20 * 1024 * 1024,
    # Seconds an uploaded list waits (encrypted) between its preview and the confirmation.
    "IMPORT_PREVIEW_SECONDS": 30 * 60,
    # Domains any library may send its mails from besides its own website's domain, e.g.
    # the hosting partner's; each subdomain of one too (library_face.domain_allowed).
    "SENDER_DOMAINS": [],
    # "json": every log line one JSON object, with one line per request (web/request_log.py).
    "LOG_FORMAT": "text",
    # /metrics answers these networks (CIDR), and anyone with METRICS_TOKEN as a bearer token.
    "METRICS_ALLOWED_NETWORKS": ["127.0.0.1/32", "::1/128"],
    "METRICS_TOKEN": NOT_SET,
    # /readyz is not ready when no worker has been seen for this many seconds.
    "READY_WORKER_SECONDS": 300,
}

LANGUAGES = ("nl", "en")
MIN_KEY_LENGTH = 32
# BASE_URL hosts that mean "trying it out on this machine" rather than production.
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
# Keys published in this repository's tests and documents: anyone can read them.
KNOWN_KEYS = {
    "test-secret-key-that-is-long-enough-0123",
    "test-suppression-key",
    "...",
    "dGVzdC1pYmFuLWtleS1wdWJsaXNoZWQtaW4tdGVzdHM=",
    "dGVzdC1zaWduaW5nLWtleS1wdWJsaXNoZWQtdGVzdHM=",
}


def load(app: Any, test_config: dict[str, Any] | None) -> None:
    """Fill app.config from defaults, the environment and the test config, in that order."""
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("CONSENTSVC")
    if test_config:
        app.config.from_mapping(test_config)

    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    cfg = app.config
    check_production_keys(app)
    cfg["SECRET_KEY"] = cfg["SECRET_KEY"] or _instance_secret(instance / "secret_key")
    if isinstance(cfg["SECRET_KEY_FALLBACKS"], str):
        # A single old key given without JSON brackets.
        cfg["SECRET_KEY_FALLBACKS"] = [cfg["SECRET_KEY_FALLBACKS"]]
    for key in (cfg["SECRET_KEY"], *cfg["SECRET_KEY_FALLBACKS"]):
        if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
            raise ValueError(
                f"CONSENTSVC_SECRET_KEY and its fallbacks need at least {MIN_KEY_LENGTH} characters"
            )
    cfg["SUPPRESSION_KEY"] = cfg["SUPPRESSION_KEY"] or _instance_secret(
        instance / "suppression_key"
    )
    cfg["IBAN_KEY"] = cfg["IBAN_KEY"] or _instance_iban_key(instance / "iban_key")
    if not iban.is_key(cfg["IBAN_KEY"]):
        raise ValueError(
            "CONSENTSVC_IBAN_KEY must be a Fernet key: 32 bytes in URL-safe base64 (see README)"
        )
    cfg["SIGNING_KEY"] = cfg["SIGNING_KEY"] or _instance_signing_key(instance / "signing_key")
    if not signing.is_key(cfg["SIGNING_KEY"]):
        raise ValueError(
            "CONSENTSVC_SIGNING_KEY must be an Ed25519 key: 32 bytes in URL-safe base64"
            " (see README)"
        )
    # Errors must not carry e-mail addresses from query parameters into logs.
    cfg["SQLALCHEMY_ENGINE_OPTIONS"] = {"hide_parameters": True}
    cfg["SQLALCHEMY_DATABASE_URI"] = database_uri(
        cfg["DATABASE_URL"] or f"sqlite:///{instance / 'consentsvc.sqlite'}"
    )
    cfg["MAIL_DIR"] = cfg["MAIL_DIR"] or str(instance / "mail")
    cfg["BASE_URL"] = cfg["BASE_URL"].rstrip("/")
    https = cfg["BASE_URL"].startswith("https://")
    cfg["SESSION_COOKIE_SECURE"] = https
    cfg["SESSION_COOKIE_HTTPONLY"] = True
    cfg["SESSION_COOKIE_SAMESITE"] = "Lax"
    cfg["PREFERRED_URL_SCHEME"] = "https" if https else "http"
    cfg["BABEL_DEFAULT_LOCALE"] = "nl"
    cfg["BABEL_DEFAULT_TIMEZONE"] = "Europe/Amsterdam"
    # Token pages carry their own proof; a CSRF token that expires would only lose input.
    cfg["WTF_CSRF_TIME_LIMIT"] = None
    cfg["RATELIMIT_HEADERS_ENABLED"] = True
    cfg["PERMANENT_SESSION_LIFETIME"] = cfg["STAFF_SESSION_SECONDS"]
    cfg["RETENTION_AT"] = retention_time(str(cfg["RETENTION_TIME"]))
    if isinstance(cfg["SENDER_DOMAINS"], str):
        # Given without JSON brackets: one domain, or several separated by commas.
        cfg["SENDER_DOMAINS"] = [d.strip() for d in cfg["SENDER_DOMAINS"].split(",") if d.strip()]


def retention_time(value: str) -> time | None:
    """The daily retention time from "HH:MM" (None for "off"); refuses anything else."""
    value = value.strip().lower()
    if value == "off":
        return None
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", value)
    if match is None:
        raise ValueError('CONSENTSVC_RETENTION_TIME must be "HH:MM" (like 03:30) or "off"')
    return time(int(match[1]), int(match[2]))


def is_production(app: Any) -> bool:
    """Served to others: not testing, not debugging, links not pointing at this machine."""
    if app.testing or app.debug:
        return False
    host = urlsplit(str(app.config["BASE_URL"])).hostname or ""
    return host not in LOCAL_HOSTS


def check_production_keys(app: Any) -> None:
    """Refuse to start in production with keys nobody chose.

    A key generated into the instance folder differs per machine and container, and is
    lost with the folder: links in mails would stop working, and suppressed addresses
    would no longer match. A short SECRET_KEY is refused everywhere (see load).
    """
    if not is_production(app):
        return
    cfg = app.config
    for name in ("SECRET_KEY", "SUPPRESSION_KEY", "IBAN_KEY", "SIGNING_KEY"):
        value = cfg[name]
        if not value:
            raise ValueError(f"set CONSENTSVC_{name} in production (see README: Deploying)")
        if value in KNOWN_KEYS:
            raise ValueError(f"CONSENTSVC_{name} is a published example key: choose your own")


def database_uri(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs written the usual way."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _instance_secret(path: Path) -> str:
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _instance_iban_key(path: Path) -> str:
    """Like _instance_secret, in the form Fernet wants; made once, kept with the instance."""
    if not path.exists():
        path.write_text(iban.new_key())
        path.chmod(0o600)
    return path.read_text().strip()


def _instance_signing_key(path: Path) -> str:
    """An Ed25519 private key made once and kept with the instance, like the other keys."""
    if not path.exists():
        path.write_text(signing.new_key())
        path.chmod(0o600)
    return path.read_text().strip()
