"""Webhook formats of mailing processors, read into the service's own events.

Each parser takes the request and the purpose named in the webhook URL (?purpose=…) and
returns the events it understood; what does not concern consent (opens, deliveries, soft
bounces) is left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Request, g

TYPES = ("unsubscribe", "complaint", "hard_bounce")


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    email: str
    purpose: str | None = None


class BadPayload(ValueError):
    pass


def _default_purpose(purpose: str | None) -> str | None:
    """The purpose from the URL, or the key's only purpose."""
    if purpose:
        return purpose
    scope = g.client.purposes
    return scope[0] if len(scope) == 1 else None


def mailchimp(request: Request, purpose: str | None) -> list[Event]:
    """Mailchimp list webhooks: form posts of type unsubscribe or cleaned."""
    form = request.form
    kind, email = form.get("type"), form.get("data[email]")
    if not kind:
        raise BadPayload("expected the form field type")
    if kind not in ("unsubscribe", "cleaned"):
        return []  # subscribes, profile updates and campaign reports do not concern consent
    if not email:
        raise BadPayload("expected the form field data[email]")
    reason = form.get("data[reason]", "")
    # Mailchimp sends no id: the same report always has the same time, list and address.
    event_id = _event_id(
        "mailchimp", kind, form.get("fired_at", ""), email, form.get("data[list_id]", "")
    )
    if kind == "cleaned" or (kind == "unsubscribe" and reason == "abuse"):
        return [Event(event_id, "complaint" if reason == "abuse" else "hard_bounce", email)]
    if kind == "unsubscribe":
        return [Event(event_id, "unsubscribe", email, _default_purpose(purpose))]
    return []


def postmark(request: Request, purpose: str | None) -> list[Event]:
    """Postmark webhooks: Bounce (HardBounce), SpamComplaint, SubscriptionChange (its
    SuppressionReason: HardBounce, SpamComplaint or ManualSuppression)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "RecordType" not in body:
        raise BadPayload("expected a Postmark webhook object with RecordType")
    record = body["RecordType"]
    ident = _event_id(
        "postmark", record, body.get("ID") or body.get("MessageID"), body.get("ChangedAt", "")
    )
    if record == "Bounce" and body.get("Type") == "HardBounce":
        return [Event(ident, "hard_bounce", _text(body, "Email"))]
    if record == "SpamComplaint":
        return [Event(ident, "complaint", _text(body, "Email"))]
    if record == "SubscriptionChange" and body.get("SuppressSending") is True:
        # Postmark suppresses after a hard bounce or a complaint as well as on request;
        # a recipient's own unsubscribe arrives as ManualSuppression.
        reason = body.get("SuppressionReason")
        if reason == "HardBounce":
            return [Event(ident, "hard_bounce", _text(body, "Recipient"))]
        if reason == "SpamComplaint":
            return [Event(ident, "complaint", _text(body, "Recipient"))]
        if reason == "ManualSuppression":
            recipient = _text(body, "Recipient")
            return [Event(ident, "unsubscribe", recipient, _default_purpose(purpose))]
    return []  # reactivations (SuppressSending false) and what does not concern consent


def sendgrid(request: Request, purpose: str | None) -> list[Event]:
    """SendGrid's Event Webhook: a JSON array of events."""
    body = request.get_json(silent=True)
    if not isinstance(body, list):
        raise BadPayload("expected a JSON array of SendGrid events")
    events = []
    for item in body:
        if not isinstance(item, dict):
            raise BadPayload("every SendGrid event is an object")
        kind = item.get("event")
        ident = _event_id("sendgrid", item.get("sg_event_id") or item.get("sg_message_id"), kind)
        if kind == "bounce" and item.get("type", "bounce") == "bounce":
            events.append(Event(ident, "hard_bounce", _text(item, "email")))
        elif kind == "spamreport":
            events.append(Event(ident, "complaint", _text(item, "email")))
        elif kind in ("unsubscribe", "group_unsubscribe"):
            events.append(
                Event(ident, "unsubscribe", _text(item, "email"), _default_purpose(purpose))
            )
    return events


def _event_id(provider: str, *parts: Any) -> str:
    """A short, storable id for a processor's event: the same report gives the same id.

    (Processors' own ids can be long or absent, and Mailchimp sends none at all.)
    """
    seed = "|".join(str(p) for p in parts)
    return f"{provider}:" + hashlib.sha256(seed.encode("utf-8", "replace")).hexdigest()[:40]


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise BadPayload(f"missing {name}")
    return value


PARSERS: dict[str, Callable[[Request, str | None], list[Event]]] = {
    "mailchimp": mailchimp,
    "postmark": postmark,
    "sendgrid": sendgrid,
}
