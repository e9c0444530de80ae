"""The console's API keys (/admin/clients): the keys of a library's mailing processors and
website, what each may do and when it was last used; making and revoking keys. Admins."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from .. import clients
from ..extensions import db
from ..ledger import LedgerError
from .admin import ADMIN, _audit, _confirm_page, bp, roles


@bp.get("/clients")
@roles(*ADMIN)
def api_clients() -> str:
    """The library's API keys: who, which purposes, when last used."""
    return _clients_page()


@bp.post("/clients")
@roles(*ADMIN)
def create_client() -> Response | str | tuple[str, int]:
    """Make a key for a mailing processor or the website; it is shown once."""
    name = request.form.get("name", "").strip()[:100]
    codes = request.form.getlist("purpose")
    scopes = request.form.getlist("scope")
    if not name or not (codes or scopes):
        return _clients_page(error=_("Give a name and at least one purpose or permission.")), 400
    try:
        client, key = clients.create(db.session, g.library, name, codes, scopes)
    except (LedgerError, clients.UnknownScope):
        db.session.rollback()
        return _clients_page(error=_("Give a name and at least one purpose or permission.")), 400
    _audit("client.create", detail=f"client {client.id}")
    db.session.commit()
    # The key is kept only as a hash: it reaches the page after the redirect once, through
    # the (signed, HttpOnly) session cookie, and is gone from it on that page.
    flash(_("The key for %(name)s. Copy it now: it is shown only this once.", name=client.name))
    flash(key, "secret")
    return redirect(url_for(".api_clients"), 303)


@bp.route("/clients/<id:client_id>/revoke", methods=["GET", "POST"])
@roles(*ADMIN)
def revoke_client(client_id: int) -> Response | str:
    """Stop a key at once (GET asks first)."""
    client = clients.find(db.session, g.library.id, client_id)
    if client is None:
        abort(404)
    if request.method == "GET":
        if client.revoked_at is not None:
            abort(404)
        return _confirm_page(
            _("Revoke the key of %(name)s?", name=client.name),
            _("%(name)s can do nothing with this key any more: no checks, no signups, no "
              "events. Mail they send without checking is their responsibility. This cannot "
              "be undone; they need a new key.", name=client.name),
            _("Revoke the key"), url_for(".api_clients"),
        )  # fmt: skip
    clients.revoke(db.session, client)
    _audit("client.revoke", detail=f"client {client.id}")
    db.session.commit()
    flash(_("The key of %(name)s is revoked.", name=client.name))
    return redirect(url_for(".api_clients"), 303)


def _clients_page(**extra: Any) -> str:
    rows = clients.of_library(db.session, g.library.id)
    return render_template("admin/clients.html", clients=rows, purposes=g.library.purposes, **extra)
