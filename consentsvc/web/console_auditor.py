"""The console's auditor's view (/admin/auditor): for an address and a date, what held for
each purpose then and why, printable for an auditor. Privacy officers and admins use it.

The answer is ledger.auditor.view_at; this module reads the form, audits every look (an
unknown address too) and words the ledger's codes for staff.
"""

from __future__ import annotations

from uuid import UUID

from flask import abort, current_app, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.wrappers import Response

from .. import ledger, receipts
from ..extensions import db
from ..models import StaffRole, Subject, utcnow
from .admin import _audit, bp, roles
from .console_person import person_in_library
from .forms import as_id
from .member_receipts import receipt_file

AUDITORS = (StaffRole.PRIVACY_OFFICER, StaffRole.ADMIN)
# The audit trail's name for a look at a person through this page.
AUDIT_ACTION = "auditor_view"

MOMENT_ERRORS = {
    "day": _l("Give the date as dd-mm-yyyy, for example 03-03-2026."),
    "time": _l("Give the time as hh:mm, for example 14:30, or leave it empty for the whole day."),
    "future": _l("Choose a moment that has passed: this page shows what held then."),
}


@bp.get("/auditor")
@roles(*AUDITORS)
def auditor() -> str | tuple[str, int]:
    """The form; with ?subject=, the answer for that person (each opening is audited)."""
    args = request.args
    subject_id = as_id(args.get("subject"))
    if args.get("subject") is not None and subject_id is None:
        abort(404)
    form = {"email": "", "date": args.get("date", ""), "time": args.get("time", "")}
    if subject_id is None:
        form["date"] = form["date"] or ledger.local_today().isoformat()
        return render_template("admin/auditor.html", form=form, errors={})
    person = person_in_library(subject_id)
    form["email"] = "" if person.erased_at else person.email
    if not form["date"]:
        form["date"] = ledger.local_today().isoformat()
    try:
        moment = ledger.read_moment(form["date"], form["time"])
    except ledger.InvalidMoment as exc:
        return _refused(form, exc.code)
    return _answer(person, moment, form)


@bp.post("/auditor")
@roles(*AUDITORS)
def auditor_lookup() -> Response | str | tuple[str, int]:
    """Look the address up; the answer is the person's page for the moment (a redirect)."""
    form = {k: request.form.get(k, "").strip()[:254] for k in ("email", "date", "time")}
    errors = {}
    try:
        email = ledger.normalise_email(form["email"])
    except ledger.InvalidEmail:
        email = ""
        errors["email"] = _("Give the person's e-mail address, like naam@voorbeeld.nl.")
    try:
        moment = ledger.read_moment(form["date"], form["time"])
    except ledger.InvalidMoment as exc:
        errors["date" if exc.code != "time" else "time"] = str(MOMENT_ERRORS[exc.code])
    if errors:
        return render_template("admin/auditor.html", form=form, errors=errors), 400
    person = ledger.find_subject(db.session, g.library, email)
    if person is None or person.erased_at is not None:
        # Written down as any look is, without the address (no person to name).
        _audit(AUDIT_ACTION, detail=f"{_moment_detail(moment)} · unknown address")
        suppression = ledger.auditor_suppression(
            db.session, g.library.id, email, suppression_key=current_app.config["SUPPRESSION_KEY"]
        )
        db.session.commit()
        return render_template(
            "admin/auditor.html", form=form, errors={}, unknown=True, suppression=suppression
        )
    query = {"subject": person.id, "date": moment.day.isoformat()}
    if form["time"]:
        query["time"] = form["time"]
    return redirect(url_for(".auditor", **query), 303)


@bp.get("/subjects/<id:subject_id>/receipts/<uuid:receipt>")
@roles(*AUDITORS)
def receipt_download(subject_id: int, receipt: UUID) -> Response:
    """A person's signed receipt as a file, to hand to an auditor (audited like a look)."""
    person = person_in_library(subject_id)
    event = receipts.find(db.session, person, str(receipt))
    if event is None:
        abort(404)
    document = receipts.receipt(db.session, event)
    _audit("receipt_download", subject=person, detail=str(receipt))
    db.session.commit()
    return receipt_file(document, receipt)


def _answer(person: Subject, moment: ledger.Moment, form: dict[str, str]) -> str:
    view = ledger.auditor_view(
        db.session, person, moment, suppression_key=current_app.config["SUPPRESSION_KEY"]
    )
    _audit(AUDIT_ACTION, subject=person, detail=_moment_detail(moment))
    db.session.commit()
    return render_template(
        "admin/auditor.html", form=form, errors={}, view=view, person=person,
        looked_by=current_user.name, looked_at=utcnow(),
    )  # fmt: skip


def _refused(form: dict[str, str], code: str) -> tuple[str, int]:
    field = "time" if code == "time" else "date"
    return render_template(
        "admin/auditor.html", form=form, errors={field: str(MOMENT_ERRORS[code])}
    ), 400


def _moment_detail(moment: ledger.Moment) -> str:
    if moment.at is None:
        return moment.day.isoformat()
    return (
        f"{moment.day.isoformat()} {moment.at.strftime('%H:%M:%S' if moment.seconds else '%H:%M')}"
    )
