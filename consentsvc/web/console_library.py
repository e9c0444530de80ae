"""The library settings page's part about the library's own face: the sender of its mails,
its contact and privacy officer for the footers, its website, and its logo (upload, remove).

Own forms on /admin/library (the template admin/_library_face.html), so a refused logo
never loses what was typed in the other settings; the rules are in library_face.py. Routes
are added to the console's blueprint (admin.bp).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from .. import library_face
from ..extensions import db
from ..libraries import SettingsError
from .admin import ADMIN, _audit, _library_page, bp, roles

FACE_FIELDS = (
    "sender_name",
    "sender_address",
    "reply_to",
    "website",
    "postal_address",
    "contact_email",
    "contact_phone",
    "privacy_officer_name",
    "privacy_officer_email",
)
FACE_ERRORS = {
    "website": _l("Give the website as a full address, like https://www.bibliotheek.nl."),
    "sender_name": _l(
        "Give a From name of at most 100 characters, without these characters, which "
        'mail headers treat specially: , ; : < > ( ) [ ] @ \\ "'
    ),
    "sender_address": _l("Give an e-mail address, like nieuwsbrief@bibliotheek.nl."),
    "reply_to": _l("Give an e-mail address, like info@bibliotheek.nl."),
    "postal_address": _l("Give the postal address in at most 5 lines and 300 characters."),
    "contact_email": _l("Give an e-mail address, like info@bibliotheek.nl."),
    "contact_phone": _l("Give a phone number in digits, like 074 266 1234 or +31 74 266 1234."),
    "privacy_officer_name": _l("Give a name of at most 100 characters."),
    "privacy_officer_email": _l("Give an e-mail address, like fg@bibliotheek.nl."),
}
LOGO_ERRORS = {
    "missing": _l("Choose a PNG or WebP file to upload."),
    "type": _l(
        "This file is no PNG or WebP image. Only PNG and WebP are accepted (no SVG), "
        "whatever the file is called."
    ),
    "corrupt": _l("This image is damaged or cannot be read. Save it again as PNG or WebP."),
    "too_large": _l("The file is larger than %(kb)s KB. Make it smaller and try again."),
    "dimensions": _l(
        "The image is larger than %(width)s by %(height)s pixels. Make it smaller and try again."
    ),
}


LOGO_LIMITS = {
    "kb": library_face.LOGO_MAX_BYTES // 1024,
    "width": library_face.LOGO_MAX_WIDTH,
    "height": library_face.LOGO_MAX_HEIGHT,
}


@bp.context_processor
def _face_context() -> dict[str, Any]:
    return {
        "face_errors": g.get("face_errors", {}),
        "face_form": g.get("face_form"),
        "logo_limits": LOGO_LIMITS,
    }


@bp.post("/library/face")
@roles(*ADMIN)
def save_library_face() -> Response | str | tuple[str, int]:
    """Save the sender, contact and privacy officer; nothing changes unless all are right."""
    form = request.form
    try:
        face = library_face.parse(
            **{field: form.get(field, "") for field in FACE_FIELDS},
            complaint_link=form.get("complaint_link") == "yes",
            sender_domains=current_app.config["SENDER_DOMAINS"],
        )
    except SettingsError as exc:
        return _refused({exc.field: _face_error(exc, form)}, form)
    changed = library_face.apply(g.library, face)
    if changed:
        _audit("library.face", detail=", ".join(changed))
    db.session.commit()
    return redirect(url_for(".library_settings", done="face_saved") + "#face", 303)


@bp.post("/library/logo")
@roles(*ADMIN)
def upload_logo() -> Response | str | tuple[str, int]:
    """Check an uploaded logo, strip it of metadata and store it; a refused file changes nothing."""
    upload = request.files.get("logo")
    # One byte more than allowed is enough to know a file is too large.
    data = upload.read(library_face.LOGO_MAX_BYTES + 1) if upload else b""
    try:
        logo = library_face.check_logo(data)
    except SettingsError as exc:
        return _refused({"logo": LOGO_ERRORS[exc.code] % LOGO_LIMITS}, None)
    library_face.store_logo(db.session, g.library, logo)
    _audit("library.logo", detail=f"{logo.mimetype} {logo.width}x{logo.height}")
    db.session.commit()
    return redirect(url_for(".library_settings", done="logo_saved") + "#logo", 303)


@bp.post("/library/logo/remove")
@roles(*ADMIN)
def remove_logo() -> Response:
    """Remove the logo: pages and mails show the library's name instead."""
    if library_face.remove_logo(db.session, g.library):
        _audit("library.logo_removed")
    db.session.commit()
    return redirect(url_for(".library_settings", done="logo_removed") + "#logo", 303)


def _face_error(exc: SettingsError, form: Any) -> str:
    if exc.field != "sender_address" or exc.code != "domain":
        return str(FACE_ERRORS[exc.field])
    domain = form.get("sender_address", "").rpartition("@")[2].strip().lower()
    own = library_face.own_domain(form.get("website", "").strip())
    if not own:
        return _(
            "Give the library's website first: the From address must be at its domain, "
            "or at a domain the service's operator allows."
        )
    return _(
        "Mail from %(domain)s would fail DMARC: receiving mail servers check that the domain "
        "in From is the domain that sends the mail, and put other mail in spam or refuse it. "
        "Use an address at the library's own domain %(own)s (from its website), or ask the "
        "service's operator to allow %(domain)s (CONSENTSVC_SENDER_DOMAINS).",
        domain=domain,
        own=own,
    )


def _refused(errors: dict[str, str], form: Any) -> tuple[str, int]:
    g.face_errors, g.face_form = errors, form
    return _library_page(), 400
