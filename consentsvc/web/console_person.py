"""A person's page in the console (/admin/subjects/<id>): who the person is, their consents
and timeline, and what staff record there: consent given at the desk, a withdrawal or
objection, and the privacy officer's answers to the person's rights (correction, restriction,
erasure; the export is web/console_export.py). Young members and mandates add their forms to
the same page (console_minors.py, console_mandates.py)."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.wrappers import Response

from .. import ledger, mailer
from ..extensions import db
from ..ledger import Channel, LedgerError, Proof
from ..models import ConsentText, Subject
from .admin import ANY_STAFF, PRIVACY, _audit, bp, roles
from .errors import render_error
from .forms import as_id
from .i18n import language_name
from .labels import purpose_title

HOW = {
    "desk": _l("At the desk"),
    "phone": _l("By phone"),
    "paper": _l("On paper"),
}


@bp.get("/subjects/<id:subject_id>")
@roles(*ANY_STAFF)
def subject(subject_id: int) -> str:
    """One person: the state per purpose, the whole timeline, and what staff can record."""
    person = person_in_library(subject_id)
    _audit("view", subject=person)
    db.session.commit()
    return person_page(person)


@bp.post("/subjects/<id:subject_id>/consent")
@roles(*ANY_STAFF)
def record_consent(subject_id: int) -> Response | str | tuple[str, int]:
    """Record consent given at the desk, by phone or on paper; double opt-in mails first."""
    person = person_in_library(subject_id)
    form = request.form
    how, note = form.get("how", ""), form.get("note", "").strip()
    # One choice names both the purpose and the wording read out or signed, so the two
    # cannot disagree; it must be a text of this person's library.
    text_id = as_id(form.get("text"))
    text = db.session.get(ConsentText, text_id) if text_id else None
    if text is not None and text.purpose.library_id != person.library_id:
        text = None
    errors = {}
    if text is None:
        errors["text"] = _("Choose what the person agreed to.")
    elif text.purpose.code == ledger.MANDATE_PURPOSE:
        # Direct debit starts only from an approved mandate (web/console_mandates.py).
        errors["text"] = _(
            "Direct debit needs a signed mandate: record it under “Record a direct debit mandate”."
        )
    if how not in HOW:
        errors["how"] = _("Choose how the person gave consent.")
    if not note:
        errors["note"] = _("Write a short note: who, what was read out, anything special.")
    if errors:
        return person_page(person, errors=errors, form=form), 400
    assert text is not None
    code = text.purpose.code
    actor = f"staff:{current_user.id}"
    proof = Proof(details={"how": how, "note": note[:500]})
    try:
        if text.purpose.double_opt_in:
            result = ledger.signup(
                db.session, person.library, person.email, [code], language=text.language,
                channel=Channel.STAFF, proof=proof, text_ids={code: text.id}, actor=actor,
            )  # fmt: skip
            mailer.after_signup(db.session, person, result)
            done = "requested"
        else:
            event = ledger.grant(
                db.session, person, code, channel=Channel.STAFF, text_id=text.id,
                actor=actor, proof=proof,
            )  # fmt: skip
            # A minor's consent waits for the guardian's confirmation (ledger/minors.py).
            mailer.after_grant(db.session, person, event)
            done = "requested" if event is not None and event.action == "requested" else "granted"
    except ledger.GuardianMissing:
        db.session.rollback()
        message = _(
            "This person is younger than 16: first record a parent's or guardian's address."
        )
        return person_page(person, errors={"text": message}, form=form), 400
    _audit(f"consent.{done}", subject=person, detail=code, reason=note)
    db.session.commit()
    return redirect(url_for(".subject", subject_id=person.id, done=done), 303)


@bp.post("/subjects/<id:subject_id>/stop")
@roles(*ANY_STAFF)
def stop(subject_id: int) -> Response | str | tuple[str, int]:
    """Record a withdrawal or an objection the person made at the desk or by phone."""
    person = person_in_library(subject_id)
    code, note = request.form.get("purpose", ""), request.form.get("note", "").strip()
    objection = request.form.get("objection") == "yes"
    if not note:
        return person_page(person, errors={"stop_note": _("Write a short note.")}), 400
    actor, proof = f"staff:{current_user.id}", Proof(details={"note": note[:500]})
    try:
        if objection:
            ledger.object_to(
                db.session, person, code, channel=Channel.STAFF, actor=actor, proof=proof
            )
        else:
            ledger.withdraw(
                db.session, person, code, channel=Channel.STAFF, actor=actor, proof=proof
            )
    except ledger.MandateRunning:
        db.session.rollback()
        message = _("Direct debit runs on a mandate. End it with “End mandate” beside the mandate.")
        return person_page(person, errors={"stop_purpose": message}, form=request.form), 400
    except LedgerError:
        db.session.rollback()
        return render_error(400, _("Unknown choice"), _("This choice does not exist here."))
    action = "objection" if objection else "withdrawal"
    _audit(action, subject=person, detail=code, reason=note)
    db.session.commit()
    return redirect(url_for(".subject", subject_id=person.id, done=action), 303)


@bp.post("/subjects/<id:subject_id>/erase")
@roles(*PRIVACY)
def erase(subject_id: int) -> Response | str | tuple[str, int]:
    """Erase the person, keeping only what a legal duty requires."""
    person = person_in_library(subject_id)
    identification = identification_given(person)
    if not isinstance(identification, str):
        return identification
    if request.form.get("confirm") != "yes":
        return person_page(person, errors={"confirm": _("Tick the box to confirm.")}), 400
    result = ledger.erase(
        db.session, person,
        suppression_key=current_app.config["SUPPRESSION_KEY"],
        actor=f"staff:{current_user.id}", identification=identification,
    )  # fmt: skip
    _audit("erase" if result.erased else "erase.partial",
        subject=person, reason=identification,
    )  # fmt: skip
    db.session.commit()
    titles = {purpose.code: purpose_title(purpose) for purpose in g.library.purposes}
    if result.erased:
        flash(_("The person's data and evidence are erased. The address is suppressed, so it "
                "is never mailed again; the person can lift that by signing up anew."))  # fmt: skip
    else:
        flash(_("Not everything could be erased: a legal retention duty still holds. Mail has "
                "stopped and the address is suppressed."))  # fmt: skip
        for code, until in result.kept.items():
            date = format_datetime(until, "d MMMM yyyy")
            flash(_("%(purpose)s: kept until %(date)s", purpose=titles.get(code, code), date=date))
    if result.withdrawn:
        stopped = ", ".join(titles.get(code, code) for code in result.withdrawn)
        flash(_("Consent withdrawn for: %(purposes)s", purposes=stopped))
    return redirect(url_for(".subject", subject_id=person.id), 303)


@bp.post("/subjects/<id:subject_id>/email")
@roles(*PRIVACY)
def correct_email(subject_id: int) -> Response | str | tuple[str, int]:
    """Correct the address; a mail to the new one must be confirmed before it is used."""
    person = person_in_library(subject_id)
    identification = identification_given(person)
    if not isinstance(identification, str):
        return identification
    try:
        ledger.request_email_change(db.session, person, request.form.get("email", ""))
    except ledger.AddressTaken:
        db.session.rollback()
        message = _("Another person in this library already has this address.")
        return person_page(person, errors={"email": message}), 400
    except LedgerError:
        db.session.rollback()
        return person_page(person, errors={"email": _("This is not a valid e-mail address.")}), 400
    mailer.email_change(db.session, person)
    _audit("rectification", subject=person, reason=identification)
    db.session.commit()
    return redirect(url_for(".subject", subject_id=person.id, done="rectification"), 303)


@bp.post("/subjects/<id:subject_id>/restriction")
@roles(*PRIVACY)
def restriction(subject_id: int) -> Response | str | tuple[str, int]:
    """Freeze the person's consents, or lift the freeze."""
    person = person_in_library(subject_id)
    reason = request.form.get("reason", "").strip()
    if not reason:
        return person_page(person, errors={"reason": _("Write why.")}), 400
    if request.form.get("lift") == "yes":
        ledger.lift_restriction(db.session, person)
        action = "restriction.lifted"
    else:
        ledger.restrict(db.session, person)
        action = "restriction"
    _audit(action, subject=person, reason=reason)
    db.session.commit()
    return redirect(url_for(".subject", subject_id=person.id, done=action), 303)


def identification_given(person: Subject) -> str | tuple[str, int]:
    """How the person was identified; asked before any export, erasure or correction."""
    identification = request.form.get("identification", "").strip()[:200]
    if not identification:
        message = _("Write how you identified the person, e.g. 'pass and date of birth checked'.")
        return person_page(person, errors={"identification": message}), 400
    return identification


def person_in_library(subject_id: int) -> Subject:
    person = db.session.get(Subject, subject_id)
    # Another library's person does not exist, as far as this staff member can tell.
    if person is None or person.library_id != g.library.id:
        abort(404)
    return person


def person_page(person: Subject, errors: dict[str, str] | None = None, form: Any = None) -> str:
    """The person's page; after a refused form, with its errors and everything typed."""
    return render_template(
        "admin/subject.html",
        person=person,
        states=ledger.state_of(db.session, person),
        events=ledger.history(db.session, person),
        consent_choices=_consent_choices(person),
        errors=errors or {},
        # What was typed, for the form that was sent only (several share field names).
        form=form if form is not None else (request.form if errors else {}),
        posted=request.endpoint if errors else None,
        error_targets=_error_targets(request.endpoint),
        done=request.args.get("done"),
        today=ledger.local_today(),  # whether a membership has ended (a Dutch date)
    )


def _error_targets(endpoint: str | None) -> dict[str, str]:
    """The field each error of the person's page leads to (the id in the form sent)."""
    identification = {
        "admin.export": "export-identification",
        "admin.correct_email": "email-identification",
        "admin.erase": "erase-identification",
    }.get(endpoint or "", "")
    return {
        "stop_note": "stop-note", "stop_purpose": "stop-purpose",
        "identification": identification, "email": "new-email",
        "reason": "restriction-reason", "mandates": "mandates-error", "confirm": "confirm",
    }  # fmt: skip


def _consent_choices(person: Subject) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """What staff can record the person agreed to, as (text id, label) in staff words.

    First one per purpose: its current wording in the person's language (else the
    library's). Then every other wording, for a paper form in another language or an older
    version.
    """

    def label(text: ConsentText, current: bool) -> str:
        values = {
            "purpose": purpose_title(text.purpose),
            "language": language_name(text.language),
            "version": text.version,
        }
        if current:
            return _("%(purpose)s — %(language)s, version %(version)s (current)", **values)
        return _("%(purpose)s — %(language)s, version %(version)s (older)", **values)

    first, others = [], []
    for purpose in ledger.offered_purposes(person.library):
        if purpose.code == ledger.MANDATE_PURPOSE:
            continue  # recorded as a mandate, with four eyes
        default = ledger.current_text(purpose, person.language)
        if default is not None:
            first.append((default.id, label(default, True)))
        newest = {t.language: ledger.current_text(purpose, t.language) for t in purpose.texts}
        for text in sorted(purpose.texts, key=lambda t: (t.language, -t.version)):
            if text is not default:
                others.append((text.id, label(text, text is newest[text.language])))
    return first, others
