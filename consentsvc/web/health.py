"""/healthz (is this process up and its database answering) and /readyz (may a load
balancer send it members: database, migrations at head, catalogues, a worker alive)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .. import heartbeat
from ..config import LANGUAGES
from ..database import schema_behind
from ..extensions import db
from ..models import utcnow

bp = Blueprint("health", __name__)

CATALOGUES = Path(__file__).resolve().parent.parent / "translations"


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """Say whether the service and its database answer."""
    db.session.execute(text("SELECT 1"))
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, object], int]:
    """Each check with "ok" or what is wrong; 503 unless all are ok."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks["migrations"] = schema_behind(db.session) or "ok"
        checks["worker"] = _worker()
    except SQLAlchemyError:
        db.session.rollback()
        checks.setdefault("database", "not answering")
    checks["catalogues"] = _catalogues()
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503


def _worker() -> str:
    limit = current_app.config["READY_WORKER_SECONDS"]
    if not limit:
        return "ok"  # left out on purpose (READY_WORKER_SECONDS=0): workers run elsewhere
    seen = heartbeat.last_seen(db.session)
    if seen is not None and (utcnow() - seen).total_seconds() <= limit:
        return "ok"
    return f"no worker seen in the last {limit} s: start consentsvc worker"


def _catalogues() -> str:
    missing = [
        language
        for language in LANGUAGES
        if not (CATALOGUES / language / "LC_MESSAGES" / "messages.mo").is_file()
    ]
    return f"not compiled: {', '.join(missing)}" if missing else "ok"
