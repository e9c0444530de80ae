"""The ledger's codes in staff words, for every console page: a consent's state, an event,
the channel it came through. The member pages have their own words (labels.py)."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..extensions import db
from ..models import ApiClient, StaffUser
from .admin import bp
from .console_person import HOW

STATUS = {
    None: _l("No consent: never asked"),
    "pending": _l("Signed up, not confirmed: no mail"),
    "granted": _l("Consent given"),
    "withdrawn": _l("Consent withdrawn"),
    "objected": _l("Objected"),
    "reconfirm_requested": _l("Asked to agree to a new text"),
    "erased": _l("Erased"),
}
ACTION = {
    "requested": _l("Signed up (waiting for confirmation)"),
    "granted": _l("Consent given"),
    "withdrawn": _l("Consent withdrawn"),
    "objected": _l("Objected"),
    "reconfirm_requested": _l("Asked to agree to a new text"),
    "erased": _l("Erased"),
}
CHANNEL = {
    "web_form": _l("Signup form on the website"),
    "email_link": _l("Link in a mail from the service"),
    "one_click": _l("One-click unsubscribe in the mail program"),
    "unsubscribe_page": _l("Unsubscribe page"),
    "preference_centre": _l("The member's mail settings"),
    "staff": _l("Recorded by staff"),
    "api": _l("The library's website or mail service (API)"),
    "import": _l("Imported list from an old system"),
    "provider_unsubscribe": _l("Unsubscribe reported by the mail service"),
    "provider_complaint": _l("Spam complaint reported by the mail service"),
    "provider_bounce": _l("Hard bounce reported by the mail service"),
    "retention": _l("Retention: the period for keeping data had passed"),
    "family": _l("A family member with access"),
}
SUPPRESSION = {
    "complaint": _l("spam complaint"),
    "hard_bounce": _l("hard bounce"),
    "erased": _l("erased"),
    "unsubscribed": _l("unsubscribed in an imported list"),
}
EVIDENCE_DETAILS = {
    "how": _l("How"),
    "note": _l("Note"),
    "client": _l("API key"),
    "identification": _l("Identification"),
    "confirmed_by": _l("Confirmed by"),
    "guardian_fingerprint": _l("Guardian (fingerprint of the address)"),
    "retention": _l("Retention category"),
    "language": _l("Language"),
    "file": _l("File"),
    "sha256": _l("SHA-256 of the file"),
    "line": _l("Line"),
}
# A purpose on legitimate interest (LegalBasis) holds for members who did not object.
AS_MEMBER = _l("Mailed as a member (legitimate interest), no objection")


@bp.context_processor
def _staff_words() -> dict[str, Any]:
    return {
        "staff_status": STATUS,
        "staff_action": ACTION,
        "staff_channel": CHANNEL,
        "staff_suppression": SUPPRESSION,
        "staff_details": EVIDENCE_DETAILS,
        "staff_as_member": AS_MEMBER,
        "how_options": HOW,
    }


@bp.app_template_global()
def staff_actor(actor: str) -> str:
    """Who made an event, for staff: a colleague's or API key's name instead of its id."""
    kind, _sep, ident = actor.partition(":")
    if kind == "retention":
        return _("the retention run")
    if kind == "member":
        return _("the person themselves")
    if kind == "family":
        return _("a family member with access")  # the address follows (family_actor)
    number = int(ident) if ident.isdigit() else None
    if kind == "staff" and number is not None:
        colleague = db.session.get(StaffUser, number)
        if colleague is not None:
            return colleague.name
    if kind == "client" and number is not None:
        client = db.session.get(ApiClient, number)
        if client is not None:
            return _("API key “%(name)s”", name=client.name)
    return actor
