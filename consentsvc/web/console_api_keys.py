"""The console's API keys (/admin/clients): the keys of a library's mailing processors and
website, what each may do and when it was last used, in words; making and revoking keys.
Admins. A key itself is shown once, when it is made, and never again."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import format_time, format_timedelta, to_user_timezone
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from .. import clients
from ..extensions import db
from ..ledger import LedgerError
from ..models import ApiClient, utcnow
from .admin import ADMIN, _audit, _confirm_page, bp, roles
from .labels import purpose_title


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


def last_use(moment: datetime | None, now: datetime | None = None) -> str:
    """When a key was last used, as staff say it: "vandaag om 14:02", "3 dagen geleden"."""
    if moment is None:
        return _("never used")
    days = (to_user_timezone(now or utcnow()).date() - to_user_timezone(moment).date()).days
    if days <= 0:
        return _("today at %(time)s", time=format_time(moment, "HH:mm"))
    if days == 1:
        return _("yesterday at %(time)s", time=format_time(moment, "HH:mm"))
    # Whole days on the calendar, so Monday evening is "2 days ago" all Wednesday.
    return format_timedelta(timedelta(days=-days), granularity="day", add_direction=True)


def scope_of(client: ApiClient) -> list[str]:
    """What a key may do, in staff words: its purposes by their titles, then its extras."""
    titles = {p.code: purpose_title(p) for p in g.library.purposes}
    said = []
    if client.purposes:
        names = ", ".join(titles.get(code, code) for code in client.purposes)
        said.append(
            _("For %(purposes)s: ask who may be mailed, sign people up, report unsubscribes "
              "and bounces, and look up a person's choices.", purposes=names)
        )  # fmt: skip
    if clients.MEMBERSHIP in client.scopes:
        said.append(_("May report memberships from the library system"))
    return said


def _clients_page(**extra: Any) -> str:
    rows = clients.of_library(db.session, g.library.id)
    return render_template(
        "admin/clients.html", clients=rows, purposes=g.library.purposes,
        scope_of=scope_of, last_use=last_use, **extra,
    )  # fmt: skip
