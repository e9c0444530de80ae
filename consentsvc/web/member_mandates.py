"""The member's side of a direct-debit mandate: confirming one signed online (the link in
the mail), and ending one from the preference centre through a confirmation page.

Nothing here ends a mandate in one click: the unsubscribe links and "stop all mail" never
reach a mandate (ledger.withdraw_all skips purposes that are not mail), and ending asks
first. Pages show the account only masked (…4300).
"""

from __future__ import annotations

from flask import render_template, request, url_for
from werkzeug.wrappers import Response

from .. import iban, ledger, tokens
from ..extensions import csrf, db
from ..ledger import Channel
from ..models import SepaMandate, Subject
from .public import _bad_link, _preference_subject, _proof, _subject, _subject_or_stop, bp

# The one masked form of an account (…4300), for every template.
bp.add_app_template_filter(iban.mask, "masked_iban")


@bp.route("/mandate/<token>", methods=["GET", "POST"])
@csrf.exempt  # the signed token is the proof, as for every confirmation link
def mandate_confirm(token: str) -> str | tuple[str, int]:
    """GET shows the mandate and a button; POST confirms it and direct debit starts."""
    try:
        subject_id, mandate_id = tokens.read_mandate(token)
    except tokens.ExpiredToken:
        subject_id, mandate_id = tokens.read_mandate(token, expired_ok=True)
        subject = _subject(subject_id)
        if subject is None:
            return _bad_link()
        return render_template("public/mandate_confirm.html", library=subject.library,
                               state="expired"), 410  # fmt: skip
    except tokens.InvalidToken:
        return _bad_link()
    subject = _subject_or_stop(subject_id)
    mandate = _mandate_of(subject, mandate_id)
    if mandate is None:
        return _bad_link()
    state = "waiting" if mandate.status == "awaiting_member" else mandate.status
    if request.method == "POST" and state == "waiting":
        try:
            confirmed = ledger.confirm_mandate(db.session, mandate, _proof())
        except ledger.Restricted:
            db.session.rollback()
            confirmed = False
        db.session.commit()
        state = "confirmed" if confirmed else mandate.status
    return render_template(
        "public/mandate_confirm.html", library=subject.library, mandate=mandate, state=state,
        masked=iban.mask(mandate.iban_last4), token=token,
        preferences_token=tokens.make_preferences(subject.id),
    )  # fmt: skip


@bp.route("/preferences/<token>/mandates/<id:mandate_id>/end", methods=["GET", "POST"])
@csrf.exempt  # the signed preference link is the proof, as on the preference centre
def mandate_end(token: str, mandate_id: int) -> Response | str | tuple[str, int]:
    """GET says what ending means and asks; POST ends the mandate."""
    subject = _preference_subject(token)
    mandate = _mandate_of(subject, mandate_id)
    if mandate is None:
        return _bad_link()
    ended = mandate.status == "ended"
    if request.method == "POST" and not ended:
        ended = ledger.end_mandate(
            db.session, mandate, actor="member", channel=Channel.PREFERENCE_CENTRE,
            proof=_proof(),
        )  # fmt: skip
        db.session.commit()
    return render_template(
        "public/mandate_end.html", library=subject.library, mandate=mandate, ended=ended,
        posted=request.method == "POST", masked=iban.mask(mandate.iban_last4), token=token,
        back=url_for("public.preferences", token=token, _anchor="purpose-direct_debit"),
    )  # fmt: skip


def _mandate_of(subject: Subject, mandate_id: int) -> SepaMandate | None:
    mandate = db.session.get(SepaMandate, mandate_id)
    return mandate if mandate is not None and mandate.subject_id == subject.id else None
