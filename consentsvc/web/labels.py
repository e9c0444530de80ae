"""Words for the ledger's codes, as a member reads them."""

from __future__ import annotations

from flask import Flask
from flask_babel import lazy_gettext as _l

from ..ledger import current_text
from ..models import Purpose
from .i18n import current_language

STATUS = {
    None: _l("Off"),
    "pending": _l("Waiting for your confirmation"),
    "granted": _l("On"),
    "withdrawn": _l("Off"),
    "objected": _l("Off (you objected)"),
    "reconfirm_requested": _l("Waiting for you to agree to the new text"),
    "erased": _l("Off"),
}

ACTION = {
    "requested": _l("Signed up, waiting for confirmation"),
    "granted": _l("Permission given"),
    "withdrawn": _l("Unsubscribed"),
    "objected": _l("Objected"),
    "reconfirm_requested": _l("Asked to agree to a new text"),
    "erased": _l("Erased"),
}

CHANNEL = {
    "web_form": _l("Signup form on the website"),
    "email_link": _l("Link in your mail"),
    "one_click": _l("Unsubscribe button in your mail program"),
    "unsubscribe_page": _l("Unsubscribe page"),
    "preference_centre": _l("Your mail settings"),
    "staff": _l("At the library"),
    "api": _l("Through the library's website or mail service"),
    "import": _l("Taken over from the library's old system"),
    "provider_unsubscribe": _l("Unsubscribed through the library's mail service"),
    "provider_complaint": _l("Marked as spam in your mail program"),
    "provider_bounce": _l("Your mail could not be delivered"),
    "retention": _l("Removed because the time we keep data for had passed"),
    "family": _l("By a family member you gave access"),
}


# What library staff did with a member's record (AuditEntry.action), in the member's words.
STAFF_ACTION = {
    "view": _l("Looked at your data"),
    "auditor_view": _l("Looked up what you had agreed to on a certain date"),
    "receipt_download": _l("Made a copy of a receipt of your choice"),
    "export": _l("Made a copy of your data"),
    "rectification": _l("Corrected your data"),
    "restriction": _l("Limited what may be done with your data"),
    "restriction.lifted": _l("Lifted the limit on your data"),
    "objection": _l("Noted that you object to a mail"),
    "withdrawal": _l("Noted that you want to stop a mail"),
    "erase": _l("Erased your data"),
    "erase.partial": _l("Erased your data, except what the law says we must keep"),
    "young_member": _l("Noted your birth year or your parent or guardian"),
    "mandate.record": _l("Recorded your direct debit mandate"),
    "mandate.approve": _l("Checked and approved your direct debit mandate"),
    "mandate.reject": _l("Did not accept your direct debit mandate"),
    "mandate.end": _l("Ended your direct debit mandate"),
}

# What the evidence of a change says (Evidence.details keys), in the member's words. The
# member's copy and the privacy officer's export show these (templates/_data_copy.html).
EVIDENCE = {
    "how": _l("How"),
    "note": _l("Note by the library"),
    "client": _l("Sent by"),
    "identification": _l("How the library checked it was you"),
    "confirmed_by": _l("Confirmed by"),
    "guardian_fingerprint": _l("Code for your parent's or guardian's address"),
    "language": _l("Language of the page"),
    "file": _l("File"),
    "sha256": _l("Code of the file (SHA-256)"),
    "line": _l("Line in the file"),
}
# Said by the channel already, or about the service rather than the person.
EVIDENCE_NOT_SHOWN = {"retention"}
EVIDENCE_VALUES = {
    "desk": _l("At the library desk"),
    "phone": _l("By phone"),
    "paper": _l("On paper"),
    "online": _l("Online"),
    "guardian": _l("Your parent or guardian"),
}
MANDATE_SIGNED = {"paper": _l("on paper"), "online": _l("online")}

SUPPRESSION = {
    "complaint": _l("You marked one of our mails as spam. We never mail this address again."),
    "hard_bounce": _l("Our mail could not be delivered to this address. We no longer mail it."),
}


def staff_action(action: str) -> str:
    """What a staff member did, as the member reads it (a choice recorded at the desk too)."""
    if action.startswith("consent."):
        return str(_l("Recorded a choice of yours at the library"))
    return str(STAFF_ACTION.get(action, _l("Worked on your data")))


def suppression_reason(reason: str) -> str:
    return str(SUPPRESSION.get(reason, _l("We no longer mail this address.")))


def purpose_title(purpose: Purpose) -> str:
    """The purpose's name in the page's language, as members see it (its code as a last resort)."""
    text = current_text(purpose, current_language())
    return text.title if text is not None else purpose.code


def init_app(app: Flask) -> None:
    app.add_template_filter(purpose_title)

    @app.context_processor
    def _labels() -> dict[str, object]:
        return {
            "status_label": STATUS, "action_label": ACTION, "channel_label": CHANNEL,
            "evidence_label": EVIDENCE, "evidence_value": EVIDENCE_VALUES,
            "evidence_not_shown": EVIDENCE_NOT_SHOWN, "mandate_signed": MANDATE_SIGNED,
        }  # fmt: skip
