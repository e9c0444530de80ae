"""The console's import of a subscriber list: an admin uploads it, sees the dry run's
report (counts, and every refused row with its line and reason), then confirms.

Between preview and confirmation the file waits encrypted on the server (held_files), not
in the session; what is confirmed must be the file previewed (its SHA-256). Routes are
added to the console's blueprint (admin.bp).
"""

from __future__ import annotations

from pathlib import Path

from flask import current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from .. import ledger, subscriber_file
from ..extensions import db
from ..held_files import Holder
from ..models import Purpose, SubscriberImport
from .admin import ADMIN, _audit, bp, roles

REFUSALS = {
    subscriber_file.Refusal.INVALID_ADDRESS: _l("not a valid e-mail address"),
    subscriber_file.Refusal.DUPLICATE: _l("the same address is on an earlier line"),
    subscriber_file.Refusal.UNKNOWN_COLUMN: _l("more values than the header has columns"),
    subscriber_file.Refusal.DATE_UNREADABLE: _l("a date that cannot be read"),
    subscriber_file.Refusal.IP_UNREADABLE: _l("an IP address that cannot be read"),
    subscriber_file.Refusal.STATUS_UNREADABLE: _l("a status that cannot be read"),
    subscriber_file.Refusal.LANGUAGE_UNREADABLE: _l("a language other than nl or en"),
}
FILE_REFUSALS = {
    "empty": _l("The file is empty."),
    "not_text": _l("This is not a text file. Save the list as CSV (UTF-8) and try again."),
    "no_header": _l("The file has no header row with column names."),
    "no_email_column": _l(
        "No column with e-mail addresses was found (like “Email Address” or “email”)."
    ),
    "unknown_columns": _l("The file has columns this format does not know: %(columns)s."),
    "unreadable": _l("A quote mark is never closed (%(where)s), so the file cannot be read."),
    "missing": _l("Choose a file to upload."),
    "expired": _l("The uploaded file is no longer there. Upload it again."),
}
OUTCOMES = {
    ledger.ImportOutcome.GRANTED: _l("get consent, with the list as evidence"),
    ledger.ImportOutcome.RECONFIRM_REQUESTED: _l("get a mail asking them to agree again"),
    ledger.ImportOutcome.ALREADY_GRANTED: _l("already have consent here"),
    ledger.ImportOutcome.WITHDRAWN: _l("stop: unsubscribed or bounced on the list"),
    ledger.ImportOutcome.SUPPRESSED: _l("are blocked: unsubscribed or bounced, not known here"),
    ledger.ImportOutcome.KEPT_STOPPED: _l("stay stopped: they said no here before"),
    ledger.ImportOutcome.ALREADY_STOPPED: _l("were already stopped here"),
    ledger.ImportOutcome.LEFT_ALONE: _l("are left alone: restricted or erased here"),
}
FORMATS = {"mailchimp": "Mailchimp", "laposta": "Laposta", "plain": _l("plain CSV")}


def _holder() -> Holder:
    config = current_app.config
    return Holder(
        Path(current_app.instance_path) / "held_uploads",
        config["SECRET_KEY"],
        config["IMPORT_PREVIEW_SECONDS"],
    )


def _mail_purposes() -> list[Purpose]:
    return [p for p in g.library.purposes if p.is_mail]


def _form_page(error: str | None = None, status: int = 200) -> tuple[str, int]:
    imports = db.session.scalars(
        select(SubscriberImport)
        .where(SubscriberImport.library_id == g.library.id)
        .order_by(SubscriberImport.id.desc())
        .limit(20)
    ).all()
    page = render_template(
        "admin/import.html", purposes=_mail_purposes(), imports=imports, error=error,
        outcomes=OUTCOMES, formats=FORMATS, form=request.form,
    )  # fmt: skip
    return page, status


@bp.get("/import")
@roles(*ADMIN)
def import_list() -> tuple[str, int]:
    """Upload a subscriber list from an old system, and the imports done before."""
    return _form_page()


@bp.post("/import")
@roles(*ADMIN)
def import_preview() -> tuple[str, int]:
    """Read the uploaded list and show what an import would do; nothing is stored."""
    purpose_code = request.form.get("purpose", "")
    if purpose_code not in {p.code for p in _mail_purposes()}:
        return _form_page(_("Choose which mail the list is for."), 400)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _form_page(str(FILE_REFUSALS["missing"]), 400)
    data = upload.read()
    name = Path(upload.filename).name[:200]
    try:
        listed = subscriber_file.read(data, name)
    except subscriber_file.FileRefused as exc:
        message = FILE_REFUSALS[exc.code] % {"columns": exc.detail, "where": exc.detail}
        return _form_page(str(message), 400)
    reconfirm = request.form.get("reconfirm") == "yes"
    report = ledger.preview_import(
        db.session, g.library, purpose_code, listed.people,
        suppression_key=current_app.config["SUPPRESSION_KEY"], reconfirm=reconfirm,
    )  # fmt: skip
    held = _holder().hold(data, {"library": g.library.id, "staff": current_user.id, "name": name})
    _audit("import.preview", detail=f"{purpose_code}, {listed.rows} rows, {listed.sha256[:16]}")
    db.session.commit()
    page = render_template(
        "admin/import_preview.html", listed=listed, report=report, held=held,
        purpose=ledger.purpose_by_code(g.library, purpose_code), reconfirm=reconfirm,
        outcomes=OUTCOMES, refusals=REFUSALS, formats=FORMATS,
    )  # fmt: skip
    return page, 200


@bp.post("/import/confirm")
@roles(*ADMIN)
def import_confirm() -> Response | tuple[str, int]:
    """Import the list that was previewed."""
    form = request.form
    purpose_code = form.get("purpose", "")
    held = _holder().take(form.get("held", ""))
    if (
        held is None
        or held.owner.get("library") != g.library.id
        or held.owner.get("staff") != current_user.id
        or purpose_code not in {p.code for p in _mail_purposes()}
    ):
        return _form_page(str(FILE_REFUSALS["expired"]), 400)
    try:
        listed = subscriber_file.read(held.data, held.owner["name"])
    except subscriber_file.FileRefused:
        return _form_page(str(FILE_REFUSALS["expired"]), 400)
    if listed.sha256 != form.get("sha256"):
        return _form_page(str(FILE_REFUSALS["expired"]), 400)
    actor = f"staff:{current_user.id}"
    record = ledger.begin_import(
        db.session, g.library, purpose_code, listed.source, actor=actor,
        reconfirm=form.get("reconfirm") == "yes", refused=len(listed.refused),
    )  # fmt: skip
    db.session.commit()
    report = ledger.run_import(
        db.session, record, listed.people, actor=actor,
        suppression_key=current_app.config["SUPPRESSION_KEY"],
        reconfirm_per_minute=current_app.config["IMPORT_RECONFIRM_PER_MINUTE"],
        after_batch=lambda rows: db.session.commit(),
    )  # fmt: skip
    counts = ", ".join(f"{k} {v}" for k, v in sorted(record.counts.items()))
    _audit("import.run", detail=f"import {record.id}, {purpose_code}: {counts}"[:300])
    db.session.commit()
    if report.already_done:
        flash(_("This file was imported before. Nothing was added."))
    else:
        flash(_("The list is imported."))
    return redirect(url_for(".import_list"), 303)
