"""The console's privacy-statement page: the versions so far, a form for a new one, and a
confirmation step that says how many newsletter subscribers will get its notice. Admins
only; publishing is audited. Routes are added to the console's blueprint (admin.bp); the
rules are in ledger/statements.py, the notice mail in mailer.py.
"""

from __future__ import annotations

from flask import current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import format_date, ngettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from .. import ledger
from ..extensions import db
from ..ledger import statements
from ..models import PrivacyStatement, StaffUser
from .admin import ADMIN, _audit, bp, roles
from .forms import as_id

FIELDS = ("url", "effective_on", "summary_nl", "summary_en")
PROBLEMS = {
    ("url", "missing"): _l("Fill in the address of the privacy statement."),
    ("url", "too_long"): _l("The address is too long: at most %(max)s characters."),
    ("url", "not_https"): _l("The address must start with https://."),
    ("url", "not_url"): _l("This is not a web address, like https://www.bibliotheek.nl/privacy."),
    ("effective_on", "missing"): _l("Fill in the date the new version applies from."),
    ("effective_on", "unreadable"): _l("Fill in the date as day, month and year."),
    ("effective_on", "too_early"): _l(
        "The date is too far in the past: at most %(days)s days ago."
    ),
    ("effective_on", "too_late"): _l("The date is too far ahead: at most two years from now."),
    ("effective_on", "before_previous"): _l(
        "The date is before that of the previous version (%(date)s)."
    ),
    ("summary_nl", "missing"): _l("Write what changed, in Dutch."),
    ("summary_en", "missing"): _l("Write what changed, in English."),
    ("summary_nl", "too_long"): _l("The Dutch summary is too long: at most %(max)s characters."),
    ("summary_en", "too_long"): _l("The English summary is too long: at most %(max)s characters."),
    ("summary_nl", "control"): _l("The Dutch summary contains characters that are not text."),
    ("summary_en", "control"): _l("The English summary contains characters that are not text."),
    ("version", "already_published"): _l(
        "Someone published a version in the meantime. Check the list and start again."
    ),
}


def _messages(problems: dict[str, str]) -> dict[str, str]:
    """Each refused field's reason in the staff member's language."""
    latest = ledger.newest_statement(db.session, g.library)
    values = {
        "days": statements.MAX_DAYS_IN_PAST,
        "date": format_date(latest.effective_on, "d MMMM yyyy") if latest else "",
    }
    return {
        field: str(PROBLEMS[(field, code)])
        % {**values, "max": statements.MAX_URL if field == "url" else statements.MAX_SUMMARY}
        for field, code in problems.items()
    }


def _publishers(versions: list[PrivacyStatement]) -> dict[str, str]:
    """Staff names for the "staff:<id>" that publishing records."""
    ids = {int(v.published_by[6:]) for v in versions if v.published_by[6:].isdigit()}
    people = db.session.scalars(select(StaffUser).where(StaffUser.id.in_(ids))) if ids else []
    return {f"staff:{person.id}": person.name for person in people}


def _page(errors: dict[str, str] | None = None, status: int = 200) -> tuple[str, int]:
    versions = ledger.statement_versions(db.session, g.library)
    page = render_template(
        "admin/privacy_statement.html",
        versions=versions,
        publishers=_publishers(versions),
        in_effect=ledger.statement_in_effect(db.session, g.library),
        subscribers=ledger.newsletter_subscriber_count(db.session, g.library),
        errors=errors or {},
        form=request.form if errors else {},
        max_summary=statements.MAX_SUMMARY,
        max_url=statements.MAX_URL,
    )
    return page, status


def _draft() -> ledger.StatementDraft:
    form = request.form
    return ledger.check_statement_draft(
        db.session, g.library, **{name: form.get(name, "") for name in FIELDS}
    )


@bp.get("/privacy-statement")
@roles(*ADMIN)
def privacy_statement() -> tuple[str, int]:
    """The versions of the library's privacy statement, and the form for a new one."""
    return _page()


@bp.post("/privacy-statement")
@roles(*ADMIN)
def privacy_statement_check() -> tuple[str, int]:
    """Check a new version and ask for confirmation, saying who will be told; stores nothing."""
    try:
        draft = _draft()
    except ledger.StatementRefused as exc:
        return _page(_messages(exc.problems), 400)
    page = render_template(
        "admin/privacy_statement_confirm.html",
        draft=draft,
        version=ledger.next_statement_version(db.session, g.library),
        subscribers=ledger.newsletter_subscriber_count(db.session, g.library),
        per_minute=current_app.config["STATEMENT_NOTICE_PER_MINUTE"],
    )
    return page, 200


@bp.post("/privacy-statement/publish")
@roles(*ADMIN)
def privacy_statement_publish() -> Response | tuple[str, int]:
    """Publish the confirmed version and queue its notice to the newsletter's subscribers."""
    try:
        draft = _draft()
        statement = ledger.publish_statement(
            db.session, g.library, draft, actor=f"staff:{current_user.id}",
            expected_version=as_id(request.form.get("version")) or 0,
            per_minute=current_app.config["STATEMENT_NOTICE_PER_MINUTE"],
        )  # fmt: skip
    except ledger.StatementRefused as exc:
        db.session.rollback()
        return _page(_messages(exc.problems), 400)
    _audit(
        "statement.publish",
        detail=f"version {statement.version}, from {statement.effective_on.isoformat()}, "
        f"{statement.notices} notices",
    )
    db.session.commit()
    flash(
        ngettext(
            "Version %(version)s is published. %(num)s subscriber gets the notice.",
            "Version %(version)s is published. %(num)s subscribers get the notice.",
            statement.notices,
            version=statement.version,
        )
    )
    return redirect(url_for(".privacy_statement"), 303)
