"""The console's purposes page: each purpose with every version of its wording, a new
version (and, for a material change, the reconfirmation it asks for), and retiring a
purpose the library no longer offers. Admins only."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.wrappers import Response

from .. import ledger, mailer
from ..config import LANGUAGES
from ..extensions import db
from ..models import LegalBasis, Purpose, Subject
from .admin import ADMIN, _audit, _confirm_page, bp, roles
from .labels import purpose_title

# The legal basis in staff words.
BASIS = {
    LegalBasis.CONSENT: _l("consent"),
    LegalBasis.LEGITIMATE_INTEREST: _l("legitimate interest"),
    LegalBasis.CONTRACT: _l("contract"),
}


@bp.get("/purposes")
@roles(*ADMIN)
def purposes() -> str:
    """The library's purposes with every version of their wording."""
    return _page()


@bp.post("/purposes/<id:purpose_id>/texts")
@roles(*ADMIN)
def add_text(purpose_id: int) -> Response | str | tuple[str, int]:
    """A new version of the wording; a material change asks every holder to agree again."""
    purpose = _purpose(purpose_id)
    if purpose.retired_at is not None:
        abort(404)
    form = request.form
    language = form.get("language")
    title, body = form.get("title", "").strip()[:200], form.get("body", "").strip()[:5000]
    if language not in LANGUAGES or not title or not body:
        error = _("Choose a language and write a title and a text.")
        return _page(error=error), 400
    text = ledger.add_text(db.session, purpose, language, title, body)
    asked = 0
    if form.get("material") == "yes":
        actor = f"staff:{current_user.id}"
        requests = ledger.request_reconfirmation(db.session, purpose, text, actor=actor)
        for subject_id, request_id in requests.items():
            mailer.reconfirm(db.session, db.session.get(Subject, subject_id), request_id)
        asked = len(requests)
    detail = f"{purpose.code} {language} v{text.version}" + (f", {asked} asked" if asked else "")
    _audit("text.add", detail=detail)
    db.session.commit()
    return redirect(url_for(".purposes", added=text.id, asked=asked), 303)


@bp.route("/purposes/<id:purpose_id>/retire", methods=["GET", "POST"])
@roles(*ADMIN)
def retire_purpose(purpose_id: int) -> Response | str:
    """Stop offering a purpose for good (GET asks first); its history stays."""
    purpose = _purpose(purpose_id)
    if purpose.retired_at is not None:
        abort(404)
    title = purpose_title(purpose)
    if request.method == "GET":
        return _confirm_page(
            _("Retire %(purpose)s?", purpose=title),
            _("Members can no longer switch it on, staff can no longer record it, and every "
              "consent check answers “no” (reason purpose_retired), also for people who "
              "agreed. What people agreed to, and when, stays in their history and exports. "
              "This cannot be undone; a new purpose needs a new code."),
            _("Retire the purpose"), url_for(".purposes"),
        )  # fmt: skip
    ledger.retire_purpose(purpose)
    _audit("purpose.retire", detail=purpose.code)
    db.session.commit()
    flash(_("%(purpose)s is retired. No check allows it any more.", purpose=title))
    return redirect(url_for(".purposes"), 303)


def _page(**extra: object) -> str:
    return render_template(
        "admin/purposes.html", purposes=g.library.purposes, basis_label=BASIS, **extra
    )


def _purpose(purpose_id: int) -> Purpose:
    purpose = db.session.get(Purpose, purpose_id)
    if purpose is None or purpose.library_id != g.library.id:
        abort(404)
    return purpose
