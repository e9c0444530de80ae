"""The console's webhooks (/admin/webhooks): where a library's signed webhooks go, adding
and stopping receivers. Admins."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from .. import outbox
from ..extensions import db
from .admin import ADMIN, _audit, _confirm_page, bp, roles

WEBHOOK_ERRORS = {
    "events": _l("Choose at least one event to send."),
    "scheme": _l("Only addresses that start with https:// can receive webhooks."),
    "credentials": _l("Give the address with a host name and without a user name or password."),
    "unresolvable": _l("%(host)s cannot be found. Check the address for typing errors."),
    "not_public": _l(
        "%(host)s is an internal address. Webhooks only go to addresses on the internet."
    ),
    "too_long": _l("This address is too long."),
}


@bp.get("/webhooks")
@roles(*ADMIN)
def webhooks() -> str:
    """Where signed webhooks go, and how their deliveries fare."""
    return _webhooks_page()


@bp.post("/webhooks")
@roles(*ADMIN)
def add_webhook() -> Response | str | tuple[str, int]:
    """Register a receiver; its signing secret is shown once."""
    config = current_app.config
    url, events = request.form.get("url", "").strip(), request.form.getlist("event")
    try:
        endpoint = outbox.add_endpoint(
            db.session, g.library.id, url, events,
            allow_http=config["WEBHOOK_ALLOW_HTTP"],
            allowed_networks=config["WEBHOOK_ALLOWED_NETWORKS"],
        )  # fmt: skip
    except outbox.EndpointRefused as exc:
        db.session.rollback()
        error = WEBHOOK_ERRORS[exc.code] % {"host": exc.host}
        return _webhooks_page(error=error, form={"url": url, "events": events}), 400
    _audit("webhook.add", detail=f"endpoint {endpoint.id}")
    db.session.commit()
    flash(_("The signing secret for %(url)s. Copy it now: it is shown only this once.",
            url=endpoint.url))  # fmt: skip
    flash(endpoint.secret, "secret")
    return redirect(url_for(".webhooks"), 303)


@bp.route("/webhooks/<id:endpoint_id>/remove", methods=["GET", "POST"])
@roles(*ADMIN)
def remove_webhook(endpoint_id: int) -> Response | str:
    """Stop sending to a receiver (its history stays; GET asks first)."""
    endpoint = outbox.find_endpoint(db.session, g.library.id, endpoint_id)
    if endpoint is None:
        abort(404)
    if request.method == "GET":
        if not endpoint.active:
            abort(404)
        return _confirm_page(
            _("Stop sending to %(url)s?", url=endpoint.url),
            _("Nothing more goes to this address, also not the messages still waiting. Its "
              "history stays here. To send there again, add the address anew: it gets a new "
              "signing secret."),
            _("Stop sending"), url_for(".webhooks"),
        )  # fmt: skip
    endpoint.active = False
    endpoint.disabled_reason = "removed"
    _audit("webhook.remove", detail=f"endpoint {endpoint.id}")
    db.session.commit()
    flash(_("Nothing more is sent to %(url)s.", url=endpoint.url))
    return redirect(url_for(".webhooks"), 303)


def _webhooks_page(**extra: Any) -> str:
    endpoints = outbox.endpoints_of(db.session, g.library.id)
    counts = {e.id: outbox.endpoint_counts(db.session, e.id) for e in endpoints}
    return render_template(
        "admin/webhooks.html", endpoints=endpoints, counts=counts,
        event_types=outbox.EVENT_TYPES, **extra,
    )  # fmt: skip
