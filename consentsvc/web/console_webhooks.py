"""The console's webhooks (/admin/webhooks): where a library's signed webhooks go, adding
and stopping receivers, each receiver's delivery log (/admin/webhooks/<id>) with "send a
test event" and "send again" for given-up messages. Admins."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from .. import outbox
from ..extensions import db
from ..models import WebhookEndpoint
from .admin import ADMIN, _audit, _confirm_page, bp, roles
from .errors import render_error

# The events in staff words (the code beside them is what the receiver gets as "type").
EVENT_LABELS = {
    "consent.granted": _l("Consent given"),
    "consent.withdrawn": _l("Consent withdrawn"),
    "consent.objected": _l("Objection to a mail"),
    "suppression.added": _l("Address never to be mailed again"),
    "subject.erased": _l("Person erased"),
    "mandate.approved": _l("Direct debit mandate started"),
    "mandate.ended": _l("Direct debit mandate ended"),
    outbox.TEST_EVENT: _l("Test event"),
}
# Why an attempt got no HTTP answer (OutboxMessage.last_error), in staff words.
NO_ANSWER = {
    "ConnectError": _l("could not connect"),
    "ConnectTimeout": _l("could not connect in time"),
    "ReadTimeout": _l("no answer in time"),
    "WriteTimeout": _l("no answer in time"),
    "PoolTimeout": _l("no answer in time"),
    "RemoteProtocolError": _l("the connection broke off"),
    "endpoint disabled": _l("the receiver is stopped"),
}
NOT_QUEUED = {
    "not_given_up": (
        _l("Not given up"),
        _l("Only a message that was given up can be sent again. This one was delivered, or "
           "is still being tried. Nothing has changed."),
    ),
    "stopped": (
        _l("Receiver stopped"),
        _l("Nothing is sent to this receiver any more. To send there again, add the address "
           "anew. Nothing has changed."),
    ),
    "address_gone": (
        _l("Cannot be sent again"),
        _l("When this message was given up, the address it was about was taken out of it, and "
           "it cannot be put back (the person was erased, or the event names nobody we still "
           "know). Nothing has changed."),
    ),
}  # fmt: skip

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
    endpoint = _endpoint(endpoint_id)
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


@bp.get("/webhooks/<id:endpoint_id>")
@roles(*ADMIN)
def webhook_log(endpoint_id: int) -> str:
    """One receiver: its latest deliveries, what it answered, and what happens next."""
    endpoint = _endpoint(endpoint_id)
    return render_template(
        "admin/webhook.html", endpoint=endpoint,
        deliveries=outbox.deliveries(db.session, endpoint),
        counts=outbox.endpoint_counts(db.session, endpoint.id),
        event_labels=EVENT_LABELS, no_answer=NO_ANSWER,
    )  # fmt: skip


@bp.post("/webhooks/<id:endpoint_id>/test")
@roles(*ADMIN)
def test_webhook(endpoint_id: int) -> Response | str | tuple[str, int]:
    """Queue a test event for this receiver; it shows in the log once the worker sent it."""
    endpoint = _endpoint(endpoint_id)
    try:
        message = outbox.enqueue_test(db.session, endpoint)
    except outbox.NotQueued as exc:
        db.session.rollback()
        return render_error(409, *NOT_QUEUED[exc.code])
    _audit("webhook.test", detail=f"endpoint {endpoint.id} message {message.id}")
    db.session.commit()
    flash(_("A test event is queued: it goes out with the worker's next round. Reload this "
            "page to see what the receiver answered."))  # fmt: skip
    return redirect(url_for(".webhook_log", endpoint_id=endpoint.id), 303)


@bp.post("/webhooks/<id:endpoint_id>/deliveries/<id:message_id>/redeliver")
@roles(*ADMIN)
def redeliver_webhook(endpoint_id: int, message_id: int) -> Response | str | tuple[str, int]:
    """Send a given-up message again, due now, with the whole retry schedule ahead of it."""
    endpoint = _endpoint(endpoint_id)
    message = outbox.find_delivery(db.session, endpoint, message_id)
    if message is None:
        abort(404)
    before = f"{message.attempts} attempts, last {message.last_status or message.last_error}"
    try:
        outbox.redeliver(db.session, message)
    except outbox.NotQueued as exc:
        db.session.rollback()
        return render_error(409, *NOT_QUEUED[exc.code])
    _audit("webhook.redeliver", detail=f"endpoint {endpoint.id} message {message.id}: {before}")
    db.session.commit()
    flash(_("The message is queued again: it goes out with the worker's next round."))
    return redirect(url_for(".webhook_log", endpoint_id=endpoint.id), 303)


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = outbox.find_endpoint(db.session, g.library.id, endpoint_id)
    # Another library's receiver does not exist, as far as this staff member can tell.
    if endpoint is None:
        abort(404)
    return endpoint


def _webhooks_page(**extra: Any) -> str:
    endpoints = outbox.endpoints_of(db.session, g.library.id)
    counts = {e.id: outbox.endpoint_counts(db.session, e.id) for e in endpoints}
    return render_template(
        "admin/webhooks.html", endpoints=endpoints, counts=counts,
        event_types=outbox.EVENT_TYPES, event_labels=EVENT_LABELS, **extra,
    )  # fmt: skip


@bp.app_template_filter()
def stop_reason(reason: str | None) -> str:
    """Why a receiver gets no more messages, in staff words (the column keeps a code and,
    for a receiver that answered 410, when it did)."""
    if reason and reason.startswith("410 Gone"):
        return _("the receiver answered 410 Gone: it wants no more messages")
    if reason == "removed":
        return _("stopped by an administrator")
    return _("stopped")
