"""`consentsvc check-config`: what an operator should fix before going live, each check
with ok, warn or fail and what to do. Exit 1 when anything fails.

It starts the app itself, so that settings the service refuses to start with (keys, a bad
value) are reported as a failed check, not as a traceback.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import click
from flask import Flask

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Finding:
    level: str
    what: str
    says: str


def check(app: Flask, *, smtp: Callable[[Any], str | None] | None = None) -> list[Finding]:
    """Every check on a started app (smtp: how the mail server is tried, for tests)."""
    from . import config

    cfg = app.config
    production = config.is_production(app)
    found = [_base_url(cfg, production), _database(app), *_mail(cfg, production, smtp)]
    found += [_rate_limits(cfg, production), _proxies(cfg, production), _metrics(cfg)]
    if not production:
        found.insert(0, Finding(WARN, "mode", "BASE_URL points at this machine: a trial, "
                                "with keys generated into the instance folder"))  # fmt: skip
    return found


def _base_url(cfg: Any, production: bool) -> Finding:
    url = urlsplit(cfg["BASE_URL"])
    if production and url.scheme != "https":
        return Finding(FAIL, "BASE_URL", f"{cfg['BASE_URL']} is not https://: links in mails "
                       "and staff cookies would travel unencrypted")  # fmt: skip
    return Finding(OK, "BASE_URL", f"links in mails point at {cfg['BASE_URL']}")


def _database(app: Flask) -> Finding:
    from sqlalchemy.exc import SQLAlchemyError

    from .database import schema_behind
    from .extensions import db

    with app.app_context():
        try:
            behind = schema_behind(db.session)
        except SQLAlchemyError as exc:
            return Finding(FAIL, "database", f"does not answer ({type(exc).__name__})")
        finally:
            db.session.remove()
    dialect = app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0]
    if behind:
        return Finding(FAIL, "database", behind)
    return Finding(OK, "database", f"{dialect} answers, migrations at head")


def _mail(cfg: Any, production: bool, smtp: Callable[[Any], str | None] | None) -> list[Finding]:
    found = []
    if not cfg["MAIL_SERVER"]:
        level = FAIL if production else OK
        return [Finding(level, "mail", f"no MAIL_SERVER: mails are written to {cfg['MAIL_DIR']}")]
    trouble = (smtp or _try_smtp)(cfg)
    if trouble:
        found.append(Finding(FAIL, "mail", f"{cfg['MAIL_SERVER']}:{cfg['MAIL_PORT']}: {trouble}"))
    else:
        found.append(Finding(OK, "mail", f"{cfg['MAIL_SERVER']}:{cfg['MAIL_PORT']} answers"))
    if production and cfg["MAIL_DEFAULT_SENDER"].endswith("@localhost>"):
        says = "MAIL_DEFAULT_SENDER is still no-reply@localhost: libraries without a sender"
        found.append(Finding(WARN, "mail", f"{says} of their own would send from it"))
    return found


def _try_smtp(cfg: Any) -> str | None:
    """None when the server greets, takes EHLO (and STARTTLS and the login, if set)."""
    kind = smtplib.SMTP_SSL if cfg["MAIL_USE_SSL"] else smtplib.SMTP
    try:
        with kind(cfg["MAIL_SERVER"], cfg["MAIL_PORT"], timeout=10) as server:
            server.ehlo()
            if cfg["MAIL_USE_TLS"]:
                server.starttls()
                server.ehlo()
            if cfg["MAIL_USERNAME"]:
                server.login(cfg["MAIL_USERNAME"], cfg["MAIL_PASSWORD"] or "")
    except (OSError, smtplib.SMTPException) as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


def _rate_limits(cfg: Any, production: bool) -> Finding:
    storage = str(cfg["RATELIMIT_STORAGE_URI"])
    if not cfg["RATELIMIT_ENABLED"]:
        return Finding(FAIL if production else WARN, "rate limits", "switched off")
    if storage.startswith("memory://"):
        level = WARN if production else OK
        return Finding(level, "rate limits", "memory://: each process counts on its own; with "
                       "several workers or hosts set RATELIMIT_STORAGE_URI=redis://…")  # fmt: skip
    if storage.startswith(("redis://", "rediss://")):
        import redis

        try:
            redis.Redis.from_url(storage, socket_timeout=5).ping()
        except redis.RedisError as exc:
            return Finding(FAIL, "rate limits", f"Redis does not answer ({type(exc).__name__})")
        return Finding(OK, "rate limits", "shared in Redis")
    return Finding(OK, "rate limits", f"kept in {storage.split(':', 1)[0]}")


def _proxies(cfg: Any, production: bool) -> Finding:
    count = cfg["PROXY_COUNT"]
    if count:
        return Finding(OK, "proxies", f"the last {count} X-Forwarded-For hop(s) are trusted")
    level = WARN if production else OK
    return Finding(level, "proxies", "PROXY_COUNT=0: behind a reverse proxy every member "
                   "would share the proxy's address in rate limits and proof, and a proxy on "
                   "this host would open /metrics to everyone")  # fmt: skip


def _metrics(cfg: Any) -> Finding:
    token = str(cfg["METRICS_TOKEN"] or "")
    if token and len(token) < 24:
        return Finding(WARN, "metrics", "METRICS_TOKEN is short: use 24 characters or more")
    networks = ", ".join(cfg["METRICS_ALLOWED_NETWORKS"]) or "none"
    return Finding(OK, "metrics", f"/metrics for {networks}" + (" and the token" if token else ""))


@click.command("check-config")
def check_config() -> None:
    """Check the settings before going live: keys, BASE_URL, database, mail, Redis, proxies."""
    from . import create_app

    try:
        app = create_app()
    except ValueError as refused:
        _print(Finding(FAIL, "settings", f"the service refuses to start: {refused}"))
        raise SystemExit(1) from None
    findings = check(app)
    for finding in findings:
        _print(finding)
    if any(f.level == FAIL for f in findings):
        raise SystemExit(1)


def _print(finding: Finding) -> None:
    colour = {OK: "green", WARN: "yellow", FAIL: "red"}[finding.level]
    label = click.style(f"{finding.level:<4}", fg=colour)
    click.echo(f"{label}  {finding.what}: {finding.says}")
