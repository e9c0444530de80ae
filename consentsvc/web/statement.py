"""Members and the privacy statement: the footer link of every member page (the version
that applies today, and from when a newer one applies), and the preference centre's
"Gelezen" button that puts away the notice of a changed statement. The rules are in
ledger/statements.py; the centre's page is public.preferences.
"""

from __future__ import annotations

from flask import Flask, redirect, request, url_for
from jinja2_fragments.flask import render_blocks
from werkzeug.wrappers import Response

from .. import ledger
from ..extensions import csrf, db, htmx
from ..models import Library, PrivacyStatement
from .forms import as_id
from .public import _preference_context, _preference_subject, bp


def init_app(app: Flask) -> None:
    app.add_template_global(privacy_statements)


def privacy_statements(
    library: Library | None,
) -> tuple[PrivacyStatement | None, PrivacyStatement | None]:
    """The version that applies today and a newer one announced for later, for the footer."""
    if library is None or library.id is None:
        return None, None
    return ledger.statements_in_effect_and_upcoming(db.session, library)


@bp.post("/preferences/<token>/privacy-statement")
@csrf.exempt  # the signed token is the proof, as for every change in the centre
def statement_seen(token: str) -> Response | str:
    """Put away the notice of a changed privacy statement: an htmx fragment, or back to the page."""
    subject = _preference_subject(token)
    if ledger.mark_statement_seen(db.session, subject, as_id(request.form.get("version")) or 0):
        db.session.commit()
    if htmx and not htmx.boosted:
        context = _preference_context(subject, token, "statement")
        blocks = ["statement_notice", "saved_notice"]
        return render_blocks("public/preferences.html", blocks, fragment=True, **context)
    # Without JavaScript the page opens where the notice was, saying it is put away.
    return redirect(
        url_for(".preferences", token=token, saved="statement", _anchor="statement-notice"), 303
    )
