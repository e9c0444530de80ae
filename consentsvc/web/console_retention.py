"""The console's retention page: per library, what the retention job did last and what is
due at its next run. Admins and privacy officers see it; the periods are set on the library
settings page."""

from __future__ import annotations

from flask import g, render_template

from .. import libraries, retention
from ..database import reading_only
from ..extensions import db
from ..models import StaffRole
from .admin import RETENTION_LABELS, bp, roles


@bp.get("/retention")
@roles(StaffRole.ADMIN, StaffRole.PRIVACY_OFFICER)
def retention_overview() -> str:
    """Last runs with their counts, and what the next run would do now (a dry run)."""
    with reading_only():
        runs = retention.last_runs(db.session, g.library.id)
        due = retention.due(db.session, g.library)
        page = render_template(
            "admin/retention.html",
            runs=runs,
            due=due,
            categories=retention.CATEGORIES,
            periods=libraries.retention_of(g.library),
            units=libraries.RETENTION_UNITS,
            labels=RETENTION_LABELS,
        )
        db.session.rollback()
    return page
