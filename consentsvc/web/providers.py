"""Webhook formats of mailing processors, read into the service's own events.

Each parser takes the request and the purpose named in the webhook URL (?purpose=…) and
returns the events it understood; what does not concern consent (opens, deliveries, soft
bounces) is left out. Mailchimp, Postmark and SendGrid, and the two Dutch libraries use
most besides them: Laposta and Brevo (formerly Sendinblue).
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


def laposta(request: Request, purpose: str | None) -> list[Event]:
    """Laposta list webhooks: {"data": [{"type": "member", "event": …, "data": {member},
    "info": {"action": …, "date_event": …}}, …], "date_requested": …}, up to 1,000 a call.

    Only "deactivated" concerns consent; its info.action says why: unsubscribed (the member
    did it) or hardbounce. "deleted" (someone at the library removed the member in Laposta)
    is not the member's choice and changes nothing here; nor do "subscribed" and
    "modified", since consent here is given by double opt-in, not by a processor's list.
    """
    if not request.get_data() and request.mimetype in ("", "application/json"):
        return []  # an empty call: Laposta testing the address, as a GET also does
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise BadPayload("expected a Laposta webhook object with a data list")
    events = []
    for item in body["data"]:
        if not isinstance(item, dict):
            raise BadPayload("every Laposta event is an object")
        kind = _text(item, "event")
        if _optional_text(item, "type") not in (None, "member") or kind != "deactivated":
            continue
        member, info = item.get("data"), item.get("info", {})
        if not isinstance(member, dict):
            raise BadPayload("missing data (the member)")
        if not isinstance(info, dict):
            raise BadPayload("info is an object")
        email = _text(member, "email")
        action, state = _optional_text(info, "action"), _optional_text(member, "state")
        # Without info.action the member's state tells the same: unsubscribed or cleaned.
        reason = action or {"unsubscribed": "unsubscribed", "cleaned": "hardbounce"}.get(
            state or ""
        )
        # Laposta sends no id; the same report always has the same member, list and time
        # (date_event, not date_fired: a retry is fired again, the event happened once).
        # The address is left out: the report's key holds it already, as a keyed hash.
        ident = _event_id(
            "laposta", kind, reason, _optional_text(member, "member_id"),
            _optional_text(member, "list_id"), _optional_text(info, "date_event"),
        )  # fmt: skip
        if reason == "unsubscribed":
            events.append(Event(ident, "unsubscribe", email, _default_purpose(purpose)))
        elif reason == "hardbounce":
            events.append(Event(ident, "hard_bounce", email))
    return events


# Brevo's names for what concerns consent; its marketing webhook says "unsubscribe", its
# transactional one "unsubscribed", and a spam report is "spam" or (transactional)
# "complaint". blocked (Brevo did not send, e.g. to an address it had already blocked),
# soft bounces, invalid_email, deliveries, opens, clicks, list_addition, contact_updated
# and contact_deleted are left out.
BREVO_TYPES = {
    "hard_bounce": "hard_bounce",
    "spam": "complaint",
    "complaint": "complaint",
    "unsubscribe": "unsubscribe",
    "unsubscribed": "unsubscribe",
}


def brevo(request: Request, purpose: str | None) -> list[Event]:
    """Brevo (Sendinblue) webhooks, marketing and transactional: one JSON object a call, or
    a JSON array of them when the webhook is set to send batches."""
    body = request.get_json(silent=True)
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        raise BadPayload("expected a Brevo webhook object or an array of them")
    events = []
    for item in body:
        if not isinstance(item, dict):
            raise BadPayload("every Brevo event is an object")
        kind = BREVO_TYPES.get(_text(item, "event"))
        if kind is None:
            continue
        email = _text(item, "email")
        # Brevo's "id" is its webhook's (or account's), not the event's: the message
        # (message-id, or camp_id for a campaign), the event and its time, with the
        # address the report's key holds (as a keyed hash), tell one report from another.
        ident = _event_id(
            "brevo", item["event"], _optional_id(item, "message-id"),
            _optional_id(item, "camp_id"), _optional_id(item, "ts_event"),
            _optional_id(item, "ts_epoch"), _optional_id(item, "date_event"),
            _optional_id(item, "id"),
        )  # fmt: skip
        purpose_code = _default_purpose(purpose) if kind == "unsubscribe" else None
        events.append(Event(ident, kind, email, purpose_code))
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


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadPayload(f"{name} is text")
    return value


def _optional_id(body: dict[str, Any], name: str) -> str | int | None:
    """An id or time a processor sends as text or as a whole number."""
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
        raise BadPayload(f"{name} is text or a whole number")
    return value


PARSERS: dict[str, Callable[[Request, str | None], list[Event]]] = {
    "mailchimp": mailchimp,
    "postmark": postmark,
    "sendgrid": sendgrid,
    "laposta": laposta,
    "brevo": brevo,
}
