"""A new library, on a page of its own (/admin/libraries/new): the form, and starting the
library with the four standard purposes. Admins only; routes on the console's blueprint."""

from __future__ import annotations

from typing import Any

from flask import render_template, request, session, url_for
from flask_login import current_user
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from .. import libraries, staff
from ..demo import setup_library
from ..extensions import db
from .admin import ADMIN, SETTINGS_ERRORS, _audit, bp, roles


@bp.get("/libraries/new")
@roles(*ADMIN)
def new_library() -> str:
    """The form for a new library."""
    return _page()


@bp.post("/libraries")
@roles(*ADMIN)
def add_library() -> Response | tuple[str, int]:
    """Start a new library with the standard purposes; you look after it from then on."""
    form = request.form
    try:
        slug = libraries.check_slug(db.session, form.get("slug", "").strip().lower())
        settings = libraries.parse(
            name=form.get("name", ""), colour=form.get("colour") or libraries.DEFAULT_COLOUR,
            origins=[], default_language="nl", pause_until_reconfirmed=True,
            retention=libraries.DEFAULT_RETENTION,
        )  # fmt: skip
    except libraries.SettingsError as exc:
        return _page(errors={exc.field: SETTINGS_ERRORS[exc.field]}, form=form), 400
    library = setup_library(db.session, slug, settings.name, colour=settings.colour)
    staff.add_library(current_user, library)
    staff.audit(db.session, current_user, "library.add", library=library, detail=slug)
    _audit("library.add", detail=slug)
    db.session.commit()
    session["library_id"] = library.id
    return redirect(url_for(".library_settings", done="added"), 303)


def _page(errors: dict[str, str] | None = None, form: Any = None) -> str:
    return render_template("admin/library_new.html", errors=errors or {}, form=form or {})
