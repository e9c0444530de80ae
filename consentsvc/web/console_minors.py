"""The console's part for young members (ledger/minors.py): on the person page, the birth
year (where the library asks for it) or the mark "minor", and the guardian's address.

The form is templates/admin/_minors.html, included in the person page; the library's
setting "asks for birth year" is templates/admin/_minors_library.html on its settings page.
"""

from __future__ import annotations

from flask import Response, redirect, request, url_for
from flask_babel import lazy_gettext as _l

from .. import ledger
from ..extensions import db
from ..models import Subject
from .admin import ANY_STAFF, _audit, bp, roles
from .console_person import person_in_library, person_page

ERRORS = {
    "birth_year": _l("Give the birth year as four digits, like 2012, and not in the future."),
    "birth_year_not_asked": _l("This library does not record birth years."),
    "guardian_email": _l("Give the parent's or guardian's e-mail address, like naam@voorbeeld.nl."),
    "guardian_is_member": _l(
        "That is the member's own address. Give the parent's or guardian's address."
    ),
}


@bp.context_processor
def _young_member_rules() -> dict[str, object]:
    # The person page's include asks these of the person it shows.
    return {"is_minor": ledger.is_minor, "decides_alone_from": ledger.decides_alone_from}


@bp.post("/subjects/<id:subject_id>/minor")
@roles(*ANY_STAFF)
def record_minor(subject_id: int) -> Response | str | tuple[str, int]:
    """Save the birth year or the mark "minor", and the guardian; nothing if any is wrong."""
    person = person_in_library(subject_id)
    form = request.form
    try:
        change = ledger.record_minor(
            db.session, person, birth_year=form.get("birth_year", ""),
            marked_minor=form.get("marked_minor") == "yes",
            guardian_email=form.get("guardian_email", ""),
        )  # fmt: skip
    except ledger.InvalidBirthYear:
        return _refused(person, "birth_year", "birth_year")
    except ledger.BirthYearNotAsked:
        return _refused(person, "birth_year", "birth_year_not_asked")
    except ledger.InvalidEmail:
        return _refused(person, "guardian_email", "guardian_email")
    except ledger.GuardianIsMember:
        return _refused(person, "guardian_email", "guardian_is_member")
    if change.changed:
        # Which fields, never the address: the audit trail is read more widely than the person.
        _audit("young_member", subject=person, detail=", ".join(change.changed))
    db.session.commit()
    return redirect(url_for(".subject", subject_id=person.id, done="young_member"), 303)


def _refused(person: Subject, field: str, error: str) -> tuple[str, int]:
    db.session.rollback()
    return person_page(person, errors={field: str(ERRORS[error])}, form=request.form), 400
