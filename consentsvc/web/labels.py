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
}


def purpose_title(purpose: Purpose) -> str:
    """The purpose's name in the page's language, as members see it (its code as a last resort)."""
    text = current_text(purpose, current_language())
    return text.title if text is not None else purpose.code


def init_app(app: Flask) -> None:
    app.add_template_filter(purpose_title)

    @app.context_processor
    def _labels() -> dict[str, object]:
        return {"status_label": STATUS, "action_label": ACTION, "channel_label": CHANNEL}
