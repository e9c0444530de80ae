"""A person's copy of everything held about them, for the privacy officer (an access request):
audited first, then shown in the same words as the member's own data page
(templates/_data_copy.html), or handed over as the JSON file (docs/export.schema.json)."""

from __future__ import annotations

import json
import time

from flask import current_app, redirect, render_template, request, session, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from ..extensions import db
from .admin import PRIVACY, SECOND_STEP_SECONDS, _audit, bp, roles
from .audit_words import person_label
from .console_person import identification_given, person_in_library
from .data_copy import copy_context, export_data


@bp.post("/subjects/<id:subject_id>/export")
@roles(*PRIVACY)
def export(subject_id: int) -> Response | str | tuple[str, int]:
    """Audit the request for everything held about the person, then show it (redirect)."""
    person = person_in_library(subject_id)
    identification = identification_given(person)
    if not isinstance(identification, str):
        return identification
    _audit("export", subject=person, reason=identification)
    db.session.commit()
    # Post/Redirect/Get: the audited POST opens the copy for a few minutes in this session,
    # so a reload shows it again instead of asking and auditing a second time.
    as_json = request.form.get("format") == "json"
    session["export"] = {"subject": person.id, "at": time.time(), "json": as_json}
    return redirect(url_for(".export_copy", subject_id=person.id), 303)


@bp.get("/subjects/<id:subject_id>/copy")
@roles(*PRIVACY)
def export_copy(subject_id: int) -> Response | str:
    """The copy an audited export opened: JSON to hand over, or a page to print."""
    person = person_in_library(subject_id)
    opened = session.get("export") or {}
    fresh = time.time() - opened.get("at", 0) <= SECOND_STEP_SECONDS
    if opened.get("subject") != person.id or not fresh:
        # Not opened (or long ago): the identification is asked, and audited, again.
        return redirect(url_for(".subject", subject_id=person.id), 303)
    data = export_data(person)
    if opened.get("json"):
        response = current_app.response_class(
            json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json"
        )
        response.headers["Content-Disposition"] = f'attachment; filename="export-{person.id}.json"'
        return response
    return render_template(
        "admin/export.html", person=person, person_label=person_label(person),
        made_by=current_user.name, **copy_context(person, data),
    )  # fmt: skip
