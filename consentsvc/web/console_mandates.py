"""The console's direct-debit mandates: record one on a person's page, approve or reject it
with a second pair of eyes at /admin/mandates, and end one at the desk.

The IBAN typed into the form is never put back into a page, not even into a refused form:
only its masked form (…4300) is shown, here as everywhere. The rules are ledger.mandates'.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.wrappers import Response

from .. import iban, ledger, mailer
from ..extensions import db
from ..ledger import Channel, Proof
from ..models import SepaMandate, Subject
from .admin import ANY_STAFF, _audit, _confirm_page, bp, roles
from .console_person import person_in_library, person_page

# (field, code) -> what staff read; every refusal names its field and what to do.
FIELD_ERRORS = {
    ("reference", "required"): _l("Give the mandate reference."),
    ("reference", "format"): _l(
        "A mandate reference has at most 35 characters: letters, digits and + ? / - : ( ) . , ' "
        "without spaces, and no / at the start or end."
    ),
    ("reference", "taken"): _l("This mandate reference is already in use in this library."),
    ("creditor_id", "required"): _l("Give the creditor identifier (incassant-ID)."),
    ("creditor_id", "format"): _l(
        "A creditor identifier looks like NL57ZZZ999999999999: country, 2 check digits, "
        "ZZZ or a business code, and the national number (12 digits in the Netherlands)."
    ),
    ("creditor_id", "check_digits"): _l(
        "The check digits of this creditor identifier are not right. Check it for typing errors."
    ),
    ("iban", "required"): _l("Give the IBAN."),
    ("iban", "characters"): _l("An IBAN has only letters and digits (spaces are fine)."),
    ("iban", "country"): _l("This IBAN does not start with a known country code."),
    ("iban", "length"): _l("This IBAN is too short or too long for its country."),
    ("iban", "check_digits"): _l(
        "The check digits of this IBAN are not right. Check it for a typing error."
    ),
    ("iban", "bank"): _l("This IBAN has no valid bank code for its country."),
    ("iban", "not_sepa"): _l(
        "This IBAN is from a country outside the SEPA area: it cannot be debited."
    ),
    ("holder", "required"): _l("Give the account holder's name."),
    ("holder", "too_long"): _l("The account holder's name has at most 140 characters."),
    ("signed_place", "required"): _l("Give the place where the mandate was signed."),
    ("signed_place", "too_long"): _l("The place has at most 100 characters."),
    ("signed_on", "required"): _l("Give the date of signing."),
    ("signed_on", "date"): _l("Give the date of signing like 2026-03-14."),
    ("signed_on", "future"): _l("The date of signing cannot be in the future."),
    ("signed_on", "too_old"): _l("This date is more than 10 years ago. Check the year."),
    ("signed_how", "required"): _l("Choose how the mandate was signed."),
    ("reason", "required"): _l("Write why you reject the mandate."),
}
NOT_ALLOWED = {
    "own": _l("You recorded this mandate yourself: a colleague must approve it."),
    "privacy_officer": _l("In this library only the privacy officer approves mandates."),
    "not_waiting": _l("This mandate no longer waits for approval."),
    "erased": _l("This person was erased."),
    "restricted": _l("This person is restricted: nothing new can start."),
}
STATUS_LABELS = {
    "awaiting_approval": _l("Awaiting approval"),
    "awaiting_member": _l("Waiting for the member's confirmation"),
    "active": _l("Active"),
    "ended": _l("Ended"),
    "rejected": _l("Rejected"),
}
SIGNED_HOW_LABELS = {
    "paper": _l("On paper, at the desk"),
    "online": _l("Online: the member confirms by mail"),
}
APPROVAL_LABELS = {
    "second_staff": _l("A second staff member (not the one who recorded it)"),
    "privacy_officer": _l("The privacy officer"),
}


def _vault() -> iban.Vault:
    return iban.Vault(current_app.config["IBAN_KEY"])


@bp.context_processor
def _mandates_context() -> dict[str, Any]:
    return {
        "mandates_of": lambda person: ledger.mandates_of(db.session, person),
        "mandate_status_labels": STATUS_LABELS,
        "signed_how_labels": SIGNED_HOW_LABELS,
        "mandate_approval_labels": APPROVAL_LABELS,
    }


@bp.post("/subjects/<id:subject_id>/mandates")
@roles(*ANY_STAFF)
def record_mandate(subject_id: int) -> Response | str | tuple[str, int]:
    """Record a signed mandate; it grants nothing until a colleague approves it."""
    person = person_in_library(subject_id)
    form = request.form
    given = ledger.MandateInput(
        reference=form.get("reference", "")[:200],
        creditor_id=form.get("creditor_id", "")[:200],
        iban=form.get("iban", "")[:200],
        holder=form.get("holder", "")[:500],
        signed_on=form.get("signed_on", "")[:20],
        signed_place=form.get("signed_place", "")[:500],
        signed_how=form.get("signed_how", ""),
    )
    try:
        mandate = ledger.record_mandate(
            db.session, person, given, staff=current_user, vault=_vault()
        )
    except ledger.MandateRefused as exc:
        db.session.rollback()
        errors = {f"mandate_{f}": str(FIELD_ERRORS[(f, c)]) for f, c in exc.errors.items()}
        return person_page(person, errors=errors, form=form), 400
    except (ledger.Restricted, ledger.MandateNotAllowed) as exc:
        db.session.rollback()
        reason = getattr(exc, "reason", "restricted")
        # Keyed by the section's id, so the error summary leads there.
        return person_page(person, errors={"mandates": str(NOT_ALLOWED[reason])}), 400
    _audit("mandate.record", subject=person, detail=_detail(mandate))
    db.session.commit()
    return redirect(
        url_for(".subject", subject_id=person.id, done="mandate", _anchor="mandates"), 303
    )


@bp.get("/mandates")
@roles(*ANY_STAFF)
def mandates_waiting() -> str:
    """Mandates awaiting a second pair of eyes, and those waiting for the member."""
    return _waiting_page()


@bp.post("/mandates/<id:mandate_id>/approve")
@roles(*ANY_STAFF)
def approve_mandate(mandate_id: int) -> Response | str | tuple[str, int]:
    """Approve a colleague's mandate: direct debit starts (online: after the member confirms)."""
    mandate = _mandate(mandate_id)
    try:
        active = ledger.approve_mandate(db.session, mandate, staff=current_user)
    except ledger.MandateNotAllowed as exc:
        db.session.rollback()
        return _waiting_page(error=str(NOT_ALLOWED[exc.reason])), 403
    except ledger.Restricted:
        db.session.rollback()
        return _waiting_page(error=str(NOT_ALLOWED["restricted"])), 400
    if not active:
        mailer.mandate_confirmation(db.session, mandate.subject, mandate.id)
    _audit("mandate.approve", subject=mandate.subject, detail=_detail(mandate))
    db.session.commit()
    flash(
        _("Mandate %(reference)s is approved: direct debit is on.", reference=mandate.reference)
        if active
        else _(
            "Mandate %(reference)s is approved. The member got a mail to confirm it; direct "
            "debit starts after that.",
            reference=mandate.reference,
        )
    )
    return redirect(url_for(".mandates_waiting"), 303)


@bp.post("/mandates/<id:mandate_id>/reject")
@roles(*ANY_STAFF)
def reject_mandate(mandate_id: int) -> Response | str | tuple[str, int]:
    """Reject a colleague's mandate, with the reason; nothing is granted."""
    mandate = _mandate(mandate_id)
    reason = request.form.get("reason", "")
    try:
        ledger.reject_mandate(db.session, mandate, staff=current_user, reason=reason)
    except ledger.MandateNotAllowed as exc:
        db.session.rollback()
        return _waiting_page(error=str(NOT_ALLOWED[exc.reason])), 403
    except ledger.MandateRefused:
        db.session.rollback()
        return _waiting_page(
            error=str(FIELD_ERRORS[("reason", "required")]), rejecting=mandate.id
        ), 400
    _audit("mandate.reject", subject=mandate.subject, detail=_detail(mandate), reason=reason)
    db.session.commit()
    flash(_("Mandate %(reference)s is rejected.", reference=mandate.reference))
    return redirect(url_for(".mandates_waiting"), 303)


@bp.route("/mandates/<id:mandate_id>/end", methods=["GET", "POST"])
@roles(*ANY_STAFF)
def end_mandate(mandate_id: int) -> Response | str:
    """End a mandate at the member's request (GET asks first): direct debit stops and the
    payment system is told."""
    mandate = _mandate(mandate_id)
    if mandate.status not in ("awaiting_approval", "awaiting_member", "active"):
        abort(404)
    back = url_for(".subject", subject_id=mandate.subject_id, _anchor="mandates")
    if request.method == "GET":
        return _confirm_page(
            _("End mandate %(reference)s?", reference=mandate.reference),
            _("From today nothing more is collected from account %(iban)s on this mandate. "
              "The payment system is told. The mandate stays on record as proof for 7 years.",
              iban=iban.mask(mandate.iban_last4)),
            _("End the mandate"), back,
        )  # fmt: skip
    ledger.end_mandate(
        db.session, mandate, actor=f"staff:{current_user.id}", channel=Channel.STAFF,
        proof=Proof(details={"how": "desk"}),
    )  # fmt: skip
    _audit("mandate.end", subject=mandate.subject, detail=_detail(mandate))
    db.session.commit()
    flash(_("Mandate %(reference)s has ended.", reference=mandate.reference))
    return redirect(back, 303)


def _detail(mandate: SepaMandate) -> str:
    # The reference and the masked account only: the audit log never holds an IBAN.
    return f"mandate {mandate.id} {mandate.reference} {iban.mask(mandate.iban_last4)}"


def _mandate(mandate_id: int) -> SepaMandate:
    mandate = ledger.mandate_in(db.session, g.library, mandate_id)
    if mandate is None:
        abort(404)
    return mandate


def _waiting_page(**extra: Any) -> str:
    waiting = ledger.awaiting_approval(db.session, g.library)
    member = db.session.scalars(
        db.select(SepaMandate)
        .join(Subject, Subject.id == SepaMandate.subject_id)
        .where(
            SepaMandate.library_id == g.library.id,
            SepaMandate.approved_at.is_not(None),
            SepaMandate.active_since.is_(None),
            SepaMandate.ended_at.is_(None),
        )
        .order_by(SepaMandate.approved_at)
    ).all()
    refused = {m.id: ledger.approval_refused(m, current_user) for m in waiting}
    return render_template(
        "admin/mandates.html", waiting=waiting, member=member,
        refused={k: NOT_ALLOWED[v] for k, v in refused.items() if v}, **extra,
    )  # fmt: skip
