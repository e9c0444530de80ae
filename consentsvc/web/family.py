"""Family access pages: asking, from the preference centre, to manage another member's mail
settings; the holder's changes and either side's "stop"; the page where the other person
accepts or refuses (`/family/<token>`, from their mail).

The rules are in ledger/family.py. Asking only queues the request (intake.py): the answer
is the same whether anyone has the address, and the requester never learns of a refusal.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import intake, ledger, mailer, tokens
from ..extensions import csrf, db, htmx, limiter
from ..ledger import LedgerError
from ..models import FamilyAccess, Subject
from .errors import render_error
from .forms import as_id, email_error
from .i18n import current_language
from .public import (
    Stop,
    _bad_link,
    _preference_context,
    _preference_subject,
    _proof,
    _subject,
)

bp = Blueprint("family", __name__)

CHOICES = ("on", "off", "never")

# What the family section says after a step, by the `family` query value of the redirect.
NOTICES = {
    "asked": _l(
        "Thank you. If we know this address, the other person gets a mail from us now. "
        "As soon as they say yes, you see their mail settings here."
    ),
    "changed": _l("Saved. We sent the other person a mail about it."),
    "ended": _l("This access has stopped. We sent the other person a mail about it."),
}


@bp.errorhandler(Stop)
def _stop(stop: Stop) -> tuple[str, int]:
    return stop.page


@bp.app_template_global()
def family_overview(subject: Subject, token: str, notice: str | None = None) -> dict[str, Any]:
    """What the preference centre's family section shows (templates/public/_family.html);
    the notice after a step comes from the redirect's query, or from htmx's answer."""
    session = db.session
    language = current_language()
    max_age = current_app.config["FAMILY_REQUEST_MAX_AGE"]
    accesses = ledger.family_accesses_of(session, subject, max_age=max_age)
    held = []
    for access in accesses.held:
        states = ledger.state_of(session, access.giver)
        held.append((access, [(s, ledger.current_text(s.purpose, language)) for s in states]))
    notice = notice or request.args.get("family", "")
    return {
        "held": held,
        "given": accesses.given,
        "waiting": [
            (access, tokens.make_family(access.id, subject.id)) for access in accesses.waiting
        ],
        "notice": str(NOTICES[notice]) if notice in NOTICES else "",
    }


@bp.app_template_global()
def family_of_person(person: Subject) -> dict[str, list[FamilyAccess]]:
    """The running family access of a person, for the console's person page."""
    accesses = ledger.family_accesses_of(
        db.session, person, max_age=current_app.config["FAMILY_REQUEST_MAX_AGE"]
    )
    return {"held": accesses.held, "given": accesses.given}


@bp.app_template_global()
def family_actor(actor: str | None) -> str:
    """Who acted, for an event a family member made: their address while it is kept."""
    holder_id = ledger.family_holder_id(actor)
    holder = db.session.get(Subject, holder_id) if holder_id else None
    if holder is None or holder.erased_at is not None:
        return _("a family member")
    return holder.email


# -- the holder's side, in the preference centre ------------------------------------------------


@bp.get("/preferences/<token>/family")
def ask_page(token: str) -> Response | str | tuple[str, int]:
    """The address a refused request shows without JavaScript: reloaded, it is the centre's
    family section again (never a 405)."""
    _preference_subject(token)
    return redirect(url_for("public.preferences", token=token, _anchor="family"), 303)


@bp.post("/preferences/<token>/family")
@csrf.exempt  # the signed token is the proof, as everywhere in the preference centre
@limiter.limit(lambda: current_app.config["FAMILY_REQUEST_RATE_LIMIT"])
def ask(token: str) -> Response | str | tuple[str, int]:
    """Ask for access to someone's mail settings; the same answer for every address."""
    subject = _preference_subject(token)
    email = request.form.get("email", "")
    error = email_error(email, _("Fill in the e-mail address of the other person."))
    if error is None and ledger.normalise_email(email) == subject.email:
        # Their own address is no secret to them: saying so tells them nothing new.
        error = _("This is your own address. Fill in the address of the other person.")
    if error:
        return _section(subject, token, error=error, email=email[:254]), 400
    # Recorded alike for every address; the worker decides (intake.py, ledger/family.py).
    intake.record_family_request(db.session, subject, email)
    db.session.commit()
    return _after(subject, token, "asked", "family")


@bp.post("/preferences/<token>/family/change")
@csrf.exempt
def change(token: str) -> Response | str | tuple[str, int]:
    """Switch one of the other person's mails on or off, as their family member."""
    subject = _preference_subject(token)
    choice, code = request.form.get("choice"), request.form.get("purpose", "")
    access = _held(subject)
    if choice not in CHOICES:
        return render_error(400)
    try:
        event = ledger.family_change(db.session, access, code, choice, proof=_proof())
    except LedgerError:
        db.session.rollback()
        return render_error(400, _("Unknown choice"), _("This choice does not exist here."))
    if event is not None:
        mailer.family_changed(db.session, access, event)
    db.session.commit()
    return _after(subject, token, "changed", f"family-{access.id}")


@bp.post("/preferences/<token>/family/end")
@csrf.exempt
def end(token: str) -> Response | str | tuple[str, int]:
    """Stop an access, from either side; the other side is told by mail."""
    subject = _preference_subject(token)
    access = db.session.get(FamilyAccess, as_id(request.form.get("access")) or 0)
    if access is None or not ledger.end_family_access(db.session, access, subject):
        db.session.rollback()
        return render_error(
            400, _("This access has already stopped"), _("There is nothing to stop here.")
        )
    mailer.family_ended(db.session, access)
    db.session.commit()
    return _after(subject, token, "ended", "family")


# -- the other person's side: the link in their mail ---------------------------------------------


@bp.get("/family/<token>")
def answer(token: str) -> str | tuple[str, int]:
    """Show who asks and what it means, with a yes and a no button; a GET changes nothing."""
    access, giver = _request_of(token)
    if not ledger.family_request_open(access, current_app.config["FAMILY_REQUEST_MAX_AGE"]):
        return _closed(giver, access)
    return render_template(
        "public/family_answer.html", library=giver.library, access=access, token=token
    )


@bp.post("/family/<token>")
@csrf.exempt  # the signed token is the proof; see public.confirm_post
def answer_post(token: str) -> str | tuple[str, int]:
    """Accept or refuse; the asker is not told either way (they see an accepted access)."""
    access, giver = _request_of(token)
    choice = request.form.get("choice")
    if choice not in ("accept", "refuse"):
        return render_error(400)
    done = ledger.answer_family_request(
        db.session, access, accept=choice == "accept",
        max_age=current_app.config["FAMILY_REQUEST_MAX_AGE"],
    )  # fmt: skip
    db.session.commit()
    if not done:
        return _closed(giver, access)
    return render_template(
        "public/family_answered.html",
        library=giver.library,
        access=access,
        accepted=choice == "accept",
        preferences_token=tokens.make_preferences(giver.id),
    )


def _request_of(token: str) -> tuple[FamilyAccess, Subject]:
    try:
        link = tokens.read_family(token)
    except tokens.ExpiredToken:
        raise Stop(_lapsed(token)) from None
    except tokens.InvalidToken:
        raise Stop(_bad_link()) from None
    access = db.session.get(FamilyAccess, link.access_id)
    giver = _subject(link.giver_id)
    if access is None or giver is None or access.giver_id != giver.id:
        raise Stop(_bad_link())
    return access, giver


def _lapsed(token: str) -> tuple[str, int]:
    giver = _subject(tokens.read_family(token, expired_ok=True).giver_id)
    if giver is None:
        return _bad_link()
    return render_template("public/family_closed.html", library=giver.library, lapsed=True), 410


def _closed(giver: Subject, access: FamilyAccess) -> tuple[str, int]:
    return render_template(
        "public/family_closed.html",
        library=giver.library,
        access=access,
        lapsed=False,
        preferences_token=tokens.make_preferences(giver.id),
    ), 409


def _held(holder: Subject) -> FamilyAccess:
    try:
        return ledger.held_access(db.session, holder, as_id(request.form.get("access")) or 0)
    except ledger.NoFamilyAccess:
        raise Stop(
            render_error(
                400, _("This access has already stopped"), _("There is nothing to change here.")
            )
        ) from None


def _section(subject: Subject, token: str, **form: str) -> str:
    """The family section alone for htmx, else the whole preference centre."""
    context = {"family_" + key: value for key, value in form.items()}
    if htmx and not htmx.boosted:
        return render_template(
            "public/_family.html", subject=subject, token=token, library=subject.library, **context
        )
    return render_template(
        "public/preferences.html", **_preference_context(subject, token, None), **context
    )


def _after(subject: Subject, token: str, notice: str, anchor: str) -> Response | str:
    if htmx and not htmx.boosted:
        return _section(subject, token, notice=notice)
    return redirect(url_for("public.preferences", token=token, family=notice, _anchor=anchor), 303)
