"""Everything held about one person, as a page reads it: one context for the member's own
data page (web/public.py) and the privacy officer's export (web/console_export.py), both
rendered by templates/_data_copy.html, so the two always say the same."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from flask import current_app
from flask_babel import gettext as _

from .. import ledger
from ..extensions import db
from ..models import Subject
from .labels import purpose_title, staff_action, suppression_reason


def export_data(subject: Subject) -> dict[str, Any]:
    """The export as plain data (docs/export.schema.json): the JSON file, and this page's base."""
    return ledger.export(db.session, subject, suppression_key=current_app.config["SUPPRESSION_KEY"])


def copy_context(subject: Subject, data: dict[str, Any]) -> dict[str, Any]:
    """What templates/_data_copy.html shows, in the words of the page's language."""
    titles = {p.id: purpose_title(p) for p in subject.library.purposes}
    mailings: dict[str, list[datetime]] = {}
    for decision in data["mailings_allowed"]:
        title = titles.get(decision["purpose_id"], _("Other mail"))
        mailings.setdefault(title, []).append(datetime.fromisoformat(decision["checked_at"]))
    return {
        "library": subject.library,
        "subject": subject,
        "states": ledger.state_of(db.session, subject),
        "events": ledger.history(db.session, subject),
        "titles": titles,
        "staff_access": [
            {
                "at": datetime.fromisoformat(a["at"]),
                "name": a["staff"],
                "what": staff_action(a["action"]),
                "reason": a["reason"],
            }
            for a in data["staff_access"]
        ],
        # Per mailing kind: how often, first and last time.
        "mailings": [
            (title, len(times), min(times), max(times)) for title, times in sorted(mailings.items())
        ],
        "mandates": [  # the IBAN already masked
            {
                **m,
                "signed_date": date.fromisoformat(m["signed_on"]),
                "ended": m["ended_at"] and datetime.fromisoformat(m["ended_at"]),
            }
            for m in data["mandates"]
        ],
        "family": [
            {**row, "since": datetime.fromisoformat(row["answered_at"] or row["requested_at"])}
            for row in data["family_access"]
        ],
        "young_member": data["young_member"],
        "suppression": data["suppression"]
        and (
            datetime.fromisoformat(data["suppression"]["since"]),
            suppression_reason(data["suppression"]["reason"]),
        ),
        "now": datetime.now(UTC),
    }
