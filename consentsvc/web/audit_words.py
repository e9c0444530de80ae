"""The audit trail in staff words: who did what to whom ("Femke bekeek de gegevens van
j…@example.nl"). The member reads the same entries in their own words (labels.STAFF_ACTION);
these are the console's, for the audit log and its CSV."""

from __future__ import annotations

import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from markupsafe import Markup

from .. import mailer
from ..models import Subject

# %(staff)s is the staff member's name, %(person)s the masked address of whom it was about.
SENTENCES = {
    "view": _l("%(staff)s looked at the data of %(person)s"),
    "search": _l("%(staff)s searched for a person"),
    "consent.requested": _l(
        "%(staff)s recorded consent of %(person)s; a confirmation mail was sent"
    ),
    "consent.granted": _l("%(staff)s recorded consent of %(person)s"),
    "objection": _l("%(staff)s recorded an objection of %(person)s"),
    "withdrawal": _l("%(staff)s recorded that %(person)s wants to stop a mail"),
    "export": _l("%(staff)s made a copy of the data of %(person)s"),
    "erase": _l("%(staff)s erased the data of %(person)s"),
    "erase.partial": _l("%(staff)s erased the data of %(person)s, except what a legal duty keeps"),
    "rectification": _l("%(staff)s corrected the e-mail address of %(person)s"),
    "restriction": _l("%(staff)s limited the use of the data of %(person)s"),
    "restriction.lifted": _l("%(staff)s lifted the limit on the data of %(person)s"),
    "young_member": _l("%(staff)s recorded the birth year or guardian of %(person)s"),
    "auditor_view": _l("%(staff)s looked up what %(person)s had agreed to on a date"),
    "receipt_download": _l("%(staff)s downloaded a signed receipt of %(person)s"),
    "mandate.record": _l("%(staff)s recorded a direct debit mandate of %(person)s"),
    "mandate.approve": _l("%(staff)s approved a direct debit mandate of %(person)s"),
    "mandate.reject": _l("%(staff)s rejected a direct debit mandate of %(person)s"),
    "mandate.end": _l("%(staff)s ended a direct debit mandate of %(person)s"),
    "login.code_wrong": _l("%(staff)s typed a wrong login code"),
    "account.password": _l("%(staff)s changed their password"),
    "account.code_added": _l("%(staff)s set up a login code"),
    "account.code_removed": _l("%(staff)s switched off their login code"),
    "client.create": _l("%(staff)s made an API key"),
    "client.revoke": _l("%(staff)s revoked an API key"),
    "webhook.add": _l("%(staff)s added a webhook address"),
    "webhook.remove": _l("%(staff)s stopped a webhook address"),
    "webhook.test": _l("%(staff)s sent a test event to a webhook address"),
    "webhook.redeliver": _l("%(staff)s sent a given-up webhook message again"),
    "staff.add": _l("%(staff)s added a staff account"),
    "staff.access": _l("%(staff)s gave an administrator access to this library"),
    "staff.deactivate": _l("%(staff)s closed a staff account"),
    "staff.access_removed": _l("%(staff)s took away an administrator's access"),
    "library.add": _l("%(staff)s started a new library"),
    "library.settings": _l("%(staff)s changed the library's settings"),
    "library.face": _l("%(staff)s changed the library's sender and contact details"),
    "library.logo": _l("%(staff)s uploaded a logo"),
    "library.logo_removed": _l("%(staff)s removed the logo"),
    "import.preview": _l("%(staff)s checked a subscriber list before importing"),
    "import.run": _l("%(staff)s imported a subscriber list"),
    "text.add": _l("%(staff)s added a new version of a consent text"),
    "purpose.retire": _l("%(staff)s retired a purpose"),
    "statement.publish": _l("%(staff)s published a new privacy statement"),
}
# The same actions as a filter names them.
NAMES = {
    "view": _l("Looked at a person's data"),
    "search": _l("Searched"),
    "consent.requested": _l("Recorded consent (confirmation mailed)"),
    "consent.granted": _l("Recorded consent"),
    "objection": _l("Recorded an objection"),
    "withdrawal": _l("Recorded a stop"),
    "export": _l("Made a copy of a person's data"),
    "erase": _l("Erased a person"),
    "erase.partial": _l("Erased a person, partly"),
    "rectification": _l("Corrected an address"),
    "restriction": _l("Limited the use of data"),
    "restriction.lifted": _l("Lifted a limit"),
    "young_member": _l("Young member's details"),
    "auditor_view": _l("Consent on a date"),
    "receipt_download": _l("Downloaded a receipt"),
    "mandate.record": _l("Recorded a mandate"),
    "mandate.approve": _l("Approved a mandate"),
    "mandate.reject": _l("Rejected a mandate"),
    "mandate.end": _l("Ended a mandate"),
    "login.code_wrong": _l("Wrong login code"),
    "account.password": _l("Changed own password"),
    "account.code_added": _l("Set up a login code"),
    "account.code_removed": _l("Switched off a login code"),
    "client.create": _l("Made an API key"),
    "client.revoke": _l("Revoked an API key"),
    "webhook.add": _l("Added a webhook"),
    "webhook.remove": _l("Stopped a webhook"),
    "webhook.test": _l("Sent a webhook test event"),
    "webhook.redeliver": _l("Sent a webhook message again"),
    "staff.add": _l("Added a staff account"),
    "staff.access": _l("Gave access to this library"),
    "staff.deactivate": _l("Closed a staff account"),
    "staff.access_removed": _l("Took away access"),
    "library.add": _l("Started a library"),
    "library.settings": _l("Changed settings"),
    "library.face": _l("Changed sender and contact"),
    "library.logo": _l("Uploaded a logo"),
    "library.logo_removed": _l("Removed the logo"),
    "import.preview": _l("Checked a list to import"),
    "import.run": _l("Imported a list"),
    "text.add": _l("Added a consent text"),
    "purpose.retire": _l("Retired a purpose"),
    "statement.publish": _l("Published a privacy statement"),
}
# What the reason typed with an action was: how the person was identified, or a note.
IDENTIFIED = {"export", "erase", "erase.partial", "rectification"}
NOTED = {"consent.requested", "consent.granted", "objection", "withdrawal"}
FOUND = re.compile(r"(\d+) found")
# A detail that names a staff account, an API key or a webhook receiver by its number.
NUMBERED = re.compile(
    r"(staff|client|endpoint) (\d+)( (?:desk|privacy_officer|admin)\b)?(.*)", re.S
)
NUMBERED_WORDS = {
    "staff": _l("Account of %(name)s"),
    "client": _l("API key of %(name)s"),
    "endpoint": _l("Webhook address %(name)s"),
}


def masked(email: str) -> str:
    """An address as the console lists it: first letter, an ellipsis, the domain."""
    return mailer.mask(email, "…") if "@" in email else "…"


def person_label(person: Subject | None) -> str:
    """Whom an entry is about, without showing their whole address."""
    if person is None:
        return _("a person no longer on record")
    if person.erased_at is not None:
        return _("an erased person")
    return masked(person.email)


def sentence(action: str, staff: str, person: str | Markup | None) -> str:
    """What happened, as one sentence: who did what to whom.

    With the person as Markup (a link to them), the sentence is Markup too, the rest escaped.
    """
    words = SENTENCES.get(action)
    if words is None:
        return _(
            "%(staff)s did something not described here (%(action)s)", staff=staff, action=action
        )
    text = str(words)
    if "%(person)s" in text and person is None:
        # An action about a person with none recorded (e.g. an address that was not known).
        return _("%(staff)s: %(action)s, about an address that is not on record",
                 staff=staff, action=str(NAMES[action]).lower())  # fmt: skip
    if isinstance(person, Markup):
        return Markup.escape(text) % {"staff": staff, "person": person}
    return text % {"staff": staff, "person": person}


def reason_label(action: str) -> str:
    if action in IDENTIFIED:
        return _("Identified by")
    if action in NOTED:
        return _("Note")
    return _("Reason")


def numbered(detail: str | None) -> tuple[str, int] | None:
    """The kind and number of what a detail names ("staff 12 desk": staff, 12), if any."""
    found = NUMBERED.fullmatch(detail or "")
    return (found[1], int(found[2])) if found else None


# The fields a settings change or a young member's record names in its detail ("colour,
# retention"), in staff words.
FIELD_WORDS = {
    "name": _l("name"),
    "colour": _l("colour"),
    "allowed_origins": _l("signup websites"),
    "default_language": _l("default language"),
    "pause_until_reconfirmed": _l("pause mail after a new text"),
    "retention": _l("retention periods"),
    "legitimate_interest": _l("legitimate interest"),
    "asks_birth_year": _l("ask birth years"),
    "mandate_approval": _l("who approves mandates"),
    "sender_name": _l("From name"),
    "sender_address": _l("From address"),
    "reply_to": _l("Reply-To address"),
    "website": _l("website"),
    "postal_address": _l("postal address"),
    "contact_email": _l("contact address"),
    "contact_phone": _l("phone number"),
    "privacy_officer_name": _l("privacy officer's name"),
    "privacy_officer_email": _l("privacy officer's address"),
    "complaint_link": _l("complaint link"),
    "birth_year": _l("birth year"),
    "marked_minor": _l("younger than 16"),
    "guardian_email": _l("parent or guardian's address"),
}


def detail_text(
    detail: str | None, titles: dict[str, str], names: dict[tuple[str, int], str] | None = None
) -> str | None:
    """An entry's detail, in words where it is a code (a purpose, a count of people found, a
    staff account, API key or webhook by its number: `names` has their names)."""
    if not detail:
        return None
    found = NUMBERED.fullmatch(detail)
    if found is not None and (found[1], int(found[2])) in (names or {}):
        name = (names or {})[(found[1], int(found[2]))]
        return str(NUMBERED_WORDS[found[1]] % {"name": name}) + found[4]
    if detail in titles:
        return _("Purpose: %(purpose)s", purpose=titles[detail])
    found = FOUND.fullmatch(detail)
    if found is not None:
        number = int(found[1])
        return ngettext("%(num)s person found", "%(num)s people found", number)
    fields = detail.split(", ")
    if all(field in FIELD_WORDS for field in fields):
        return _("Changed: %(fields)s", fields=", ".join(str(FIELD_WORDS[f]) for f in fields))
    return detail
