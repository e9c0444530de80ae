"""A library's logo, served from the service's own origin at /<library>/logo, and what
every page and mail needs to show the library's face (the complaint page's address).

The logo was decoded and re-encoded when it was uploaded (library_face.check_logo), so
what is served is always a PNG or WebP image the service made itself.
"""

from __future__ import annotations

from flask import Flask, abort, request
from werkzeug.wrappers import Response

from .. import library_face
from ..extensions import db
from .public import _library, bp

YEAR = 365 * 24 * 60 * 60


@bp.get("/<library>/logo")
def logo(library: str) -> Response:
    """The library's logo; cached for a year under its versioned address (?v=…)."""
    lib = _library(library)
    row = library_face.logo_of(db.session, lib)
    if row is None or lib.logo_sha256 is None:
        abort(404)
    response = Response(row.content, mimetype=row.mimetype)
    extension = "webp" if row.mimetype == "image/webp" else "png"
    response.headers["Content-Disposition"] = f'inline; filename="logo.{extension}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.set_etag(lib.logo_sha256)
    response.cache_control.public = True
    if request.args.get("v") == lib.logo_sha256[:16]:
        # This address names this very image: a new logo gets another address.
        response.cache_control.max_age = YEAR
        response.cache_control.immutable = True
    else:
        response.cache_control.max_age = 300
    return response.make_conditional(request)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["complaint_url"] = library_face.COMPLAINT_URL
