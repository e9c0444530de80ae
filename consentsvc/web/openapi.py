"""The OpenAPI 3.1 description of the sender API, served at /api/openapi.json.

Written by hand to say what api.py does, limits included; tests/test_openapi.py fails when a
route is missing here and fuzzes every operation against it. Value lists (reasons, statuses,
channels, languages, event types) come from the code that produces them, so they cannot
drift apart.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import outbox
from ..config import LANGUAGES
from ..ledger import (
    MAX_CARD_NUMBER_LENGTH,
    REASON_BY_STATUS,
    REASON_MEMBER,
    REASON_RETIRED,
    Action,
    Channel,
    Status,
)
from . import check_types, providers
from .check_types import NOT_BLANK, TEXT_LIMIT

Schema = dict[str, Any]

# The limits api.py puts on strings (_string's default and the explicit ones).
EVENT_ID_LIMIT = 200
PURPOSE_LIMIT = 40
IP_LIMIT, USER_AGENT_LIMIT, PAGE_URL_LIMIT = 45, 400, 200
KEY_LIMIT = 100  # clients.authenticate refuses longer keys


def _constants(owner: type) -> list[str]:
    return [v for k, v in vars(owner).items() if k.isupper() and isinstance(v, str)]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _response(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _json(schema: Schema, example: Any = None) -> Schema:
    media: Schema = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _text(limit: int, description: str, *, required: bool = True) -> Schema:
    schema: Schema = {"type": "string", "maxLength": limit, "description": description}
    if required:
        schema.update(minLength=1, pattern=NOT_BLANK)
    return schema


def _nullable_text(limit: int, description: str) -> Schema:
    return {"type": ["string", "null"], "maxLength": limit, "description": description}


RATE_HEADERS = {
    "X-RateLimit-Limit": {"$ref": "#/components/headers/X-RateLimit-Limit"},
    "X-RateLimit-Remaining": {"$ref": "#/components/headers/X-RateLimit-Remaining"},
    "X-RateLimit-Reset": {"$ref": "#/components/headers/X-RateLimit-Reset"},
    "Retry-After": {"$ref": "#/components/headers/Retry-After"},
}


def _ok(description: str, schema: Schema, example: Any = None, *, limited: bool) -> Schema:
    response: Schema = {"description": description, "content": _json(schema, example)}
    if limited:
        response["headers"] = RATE_HEADERS
    return response


def _to_subject(
    response: Schema,
    email: str,
    description: str = "The person's consents and history after this call.",
) -> Schema:
    """Add an OpenAPI link: the person this call was about can be looked up next."""
    response["links"] = {
        "GetSubject": {
            "operationId": "getSubject",
            "parameters": {"email": email},
            "description": description,
        }
    }
    return response


def _errors(*statuses: str) -> dict[str, Schema]:
    names = {
        "400": "BadRequest",
        "401": "Unauthorized",
        "403": "Forbidden",
        "404": "NotFound",
        "413": "TooLarge",
        "429": "RateLimited",
        "500": "ServerError",
    }
    return {status: _response(names[status]) for status in (*statuses, "500")}


def _error_body(code: str, message: str, field: str | None = None) -> Schema:
    body = {"code": code, "message": message}
    if field:
        body["field"] = field
    return {"error": body}


def document(base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document, with its server at base_url."""
    # A copy, so that no caller can change the next answer.
    return copy.deepcopy(
        {
            "openapi": "3.1.0",
            "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
            "info": INFO,
            "servers": [{"url": base_url, "description": "This consentsvc installation."}],
            "security": [{"bearerAuth": []}],
            "tags": TAGS,
            "paths": PATHS,
            "webhooks": WEBHOOKS,
            "components": {
                "securitySchemes": SECURITY_SCHEMES,
                "schemas": SCHEMAS,
                "responses": RESPONSES,
                "headers": HEADERS,
            },
        }
    )


# -- top level ----------------------------------------------------------------------------------

INFO: Schema = {
    "title": "consentsvc sender API",
    "version": "1",
    "summary": "Consent and newsletter preferences of Dutch public libraries, for senders.",
    "description": (
        "For mailing processors and library website backends. Every call under /api/v1 "
        "carries `Authorization: Bearer csk_…` (the processors' webhooks carry the key in "
        "their URL instead); a key belongs to one library and a list of "
        "purposes, and sees nothing else (403 for other purposes, 404 for other libraries' "
        'people). Errors are JSON: `{"error": {"code", "message", "field"?}}`.\n\n'
        "Each key may make `CONSENTSVC_API_RATE_LIMIT` calls to all operations together "
        "(default 600 a minute); beyond that the answer is 429 with `Retry-After` in seconds. "
        "Bodies may be up to "
        "`CONSENTSVC_API_MAX_CONTENT_LENGTH` bytes (default 4 MiB), else 413.\n\n"
        "The service also calls you: see `webhooks`, signed per Standard Webhooks "
        "(https://www.standardwebhooks.com)."
    ),
}

TAGS = [
    {"name": "senders", "description": "Mailing processors: check before sending, report back."},
    {"name": "websites", "description": "Library website backends: start a signup."},
    {
        "name": "processors",
        "description": "Webhooks in the formats of Mailchimp, Postmark, SendGrid, Laposta, Brevo.",
    },
    {"name": "meta", "description": "This document."},
]

SECURITY_SCHEMES: Schema = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "csk_…",
        "description": (
            "A key made with `consentsvc clients create --library … --name … --purposes …`: "
            "`csk_` and 43 URL-safe characters, shown once. A missing, unknown or revoked key "
            'gives 401 with `WWW-Authenticate: Bearer realm="consentsvc"`.'
        ),
    }
}

# -- schemas ------------------------------------------------------------------------------------

REASONS = [
    *REASON_BY_STATUS.values(),
    REASON_MEMBER,
    REASON_RETIRED,
    "suppressed",
    "invalid_address",
]
EVENT_TYPES = list(providers.TYPES)
STATUSES = ["none", *_constants(Status)]
ACTIONS = _constants(Action)
CHANNELS = _constants(Channel)
TIMESTAMP: Schema = {
    "type": "string",
    "format": "date-time",
    "description": "UTC, ISO 8601 with a Z, e.g. 2026-11-20T12:15:00.123456Z.",
}

SCHEMAS: Schema = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "description": (
                            "Stable, for programs: invalid_body, invalid_field, "
                            "invalid_address, invalid_payload, not_self_service, "
                            "unknown_purpose, unauthorized, forbidden_purpose, not_found, "
                            "method_not_allowed, too_large, rate_limited, server_error."
                        ),
                    },
                    "message": {"type": "string", "description": "For people, in English."},
                    "field": {
                        "type": "string",
                        "description": "The body field that is wrong, e.g. recipients or "
                        "evidence.user_agent.",
                    },
                },
            }
        },
    },
    # Declared once, in web/check_types.py, where the view decodes and validates with it.
    "CheckRequest": {
        **check_types.request_schema(),
        "example": {"purpose": "newsletter", "recipients": ["jan@example.nl", "piet@example.nl"]},
    },
    "CheckResult": {
        "type": "object",
        "required": ["decision_id", "purpose", "checked_at", "results"],
        "properties": {
            "decision_id": {
                "type": "string",
                "format": "uuid",
                "description": "Kept with the answer; quote it to trace a send back to it.",
            },
            "purpose": {"type": "string"},
            "checked_at": TIMESTAMP,
            "results": {"type": "array", "items": _ref("RecipientResult")},
        },
    },
    "RecipientResult": {
        "type": "object",
        "required": ["email", "allowed", "reason"],
        "properties": {
            "email": {"type": "string", "description": "As sent in recipients."},
            "allowed": {"type": "boolean"},
            "reason": {
                "type": "string",
                "enum": REASONS,
                "description": (
                    "granted: confirmed consent. member: a running member who never "
                    "objected, for a legitimate-interest purpose in a library that chose "
                    "soft opt-in (the other reason with allowed true; reconfirm_requested "
                    "too where the library does not pause). no_consent: never asked, or "
                    "unknown address. pending_confirmation: signed up, not yet confirmed. "
                    "withdrawn / objected: the person said no. purpose_retired: the library "
                    "no longer offers the purpose. suppressed: complaint or hard bounce, "
                    "whatever the consent. invalid_address: not an e-mail address."
                ),
            },
            "headers": {
                "description": (
                    "Only for allowed recipients. For a purpose that is not mail (direct "
                    "debit) an empty object: there is nothing to unsubscribe from."
                ),
                "oneOf": [_ref("MailHeaders"), {"type": "object", "maxProperties": 0}],
            },
            "preferences_url": {
                "type": "string",
                "format": "uri",
                "description": "The person's own preference centre, for a link in the mail.",
            },
        },
        "dependentRequired": {"headers": ["preferences_url"]},
    },
    "MailHeaders": {
        "type": "object",
        "description": (
            "Put these in the mail as they are. Only for allowed recipients of a purpose "
            "that is mail."
        ),
        "required": ["List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"],
        "properties": {
            "List-Unsubscribe": {
                "type": "string",
                "pattern": "^<https?://[^>]+>$",
                "description": "RFC 2369: one https link (http only on a test set-up).",
            },
            "List-Unsubscribe-Post": {
                "const": "List-Unsubscribe=One-Click",
                "description": "RFC 8058 one-click: a POST to the link unsubscribes at once.",
            },
            "List-Id": {
                "type": "string",
                "description": 'RFC 2919, e.g. "Nieuwsbrief" <newsletter.borne.lists.example.org>.',
            },
        },
    },
    "SignupRequest": {
        "type": "object",
        "required": ["email", "purposes"],
        "properties": {
            "email": {**_text(TEXT_LIMIT, "The address the person typed."), "format": "email"},
            "purposes": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string"},
                "description": (
                    "Purpose codes of this key that members choose themselves (consent-based, "
                    "self-service); others give 403 forbidden_purpose or 400 not_self_service."
                ),
            },
            "language": {
                "type": "string",
                "enum": list(LANGUAGES),
                "description": "Of the mail and the texts; default the library's language.",
            },
            "text_versions": {
                "type": ["object", "null"],
                "additionalProperties": {"type": ["integer", "null"]},
                "description": (
                    "Purpose code to the version of the consent text your page showed; "
                    "without it the current version is recorded. An unknown version is a 400."
                ),
            },
            "evidence": _ref("Evidence"),
        },
        "example": {
            "email": "jan@example.nl",
            "purposes": ["newsletter"],
            "language": "nl",
            "text_versions": {"newsletter": 1},
            "evidence": {
                "ip_address": "203.0.113.7",
                "user_agent": "Mozilla/5.0",
                "page_url": "https://www.bibliotheekborne.nl/nieuwsbrief",
            },
        },
    },
    "Evidence": {
        "type": ["object", "null"],
        "description": "What your website saw when the person ticked the box.",
        "properties": {
            "ip_address": _nullable_text(IP_LIMIT, "The person's IP address."),
            "user_agent": _nullable_text(USER_AGENT_LIMIT, "Their browser's User-Agent."),
            "page_url": _nullable_text(PAGE_URL_LIMIT, "The page with the form."),
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": "accepted"}},
        "description": "The same for new, pending and confirmed addresses (no enumeration).",
    },
    "EventRequest": {
        "type": "object",
        "required": ["id", "type", "email"],
        "properties": {
            "id": _text(EVENT_ID_LIMIT, "Your own id of the event; a repeat is a no-op."),
            "type": {
                "type": "string",
                "enum": EVENT_TYPES,
                "description": (
                    "unsubscribe: stop this purpose for this person. complaint: stop all "
                    "their mail and suppress the address. hard_bounce: the same (the "
                    "mailbox is gone)."
                ),
            },
            "email": {**_text(TEXT_LIMIT, "The recipient's address."), "format": "email"},
            "purpose": {
                "type": ["string", "null"],
                "maxLength": PURPOSE_LIMIT,
                "description": "A purpose code of this key; required for unsubscribe.",
            },
        },
        "if": {"properties": {"type": {"const": "unsubscribe"}}, "required": ["type"]},
        "then": {
            "required": ["purpose"],
            "properties": {"purpose": {"type": "string", "minLength": 1}},
        },
        "example": {
            "id": "laposta-7f3a9c",
            "type": "unsubscribe",
            "email": "jan@example.nl",
            "purpose": "newsletter",
        },
    },
    "EventStatus": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {
                "type": "string",
                "enum": ["processed", "duplicate"],
                "description": (
                    "duplicate: this key reported this id, type and address before; "
                    "nothing changed."
                ),
            }
        },
    },
    "ProviderReady": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": "ready"}},
    },
    "ProviderResult": {
        "type": "object",
        "required": ["status", "events", "results"],
        "properties": {
            "status": {"const": "processed"},
            "events": {
                "type": "integer",
                "minimum": 0,
                "description": "How many consent events the payload held (opens, deliveries "
                "and soft bounces are left out).",
            },
            "results": {
                "type": "array",
                "description": (
                    "One per event, in order. An event the service cannot use is answered "
                    "'rejected: <code> (<field>)' and does not hold up the others."
                ),
                "items": {
                    "type": "string",
                    "anyOf": [
                        {"enum": ["processed", "duplicate"]},
                        {"pattern": "^rejected: [a-z_]+ \\([a-z_.]+\\)$"},
                    ],
                },
            },
        },
    },
    "MailchimpWebhook": {
        "type": "object",
        "description": (
            "Mailchimp list webhook (form post). unsubscribe stops the purpose (from ?purpose= "
            "or the key's only purpose); unsubscribe with data[reason]=abuse is a complaint; "
            "cleaned is a hard bounce; other types are ignored. unsubscribe and cleaned "
            "need data[email]."
        ),
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "minLength": 1},
            "fired_at": {"type": "string"},
            "data[email]": {"type": "string"},
            "data[reason]": {"type": "string"},
            "data[list_id]": {"type": "string"},
        },
    },
    # The processors' own formats: only the shape below is required; fields are read where
    # they matter and anything not understood is ignored (opens, deliveries, soft bounces).
    "PostmarkWebhook": {
        "type": "object",
        "description": (
            "Postmark webhook. Bounce with Type HardBounce is a hard bounce, SpamComplaint a "
            "complaint (both need Email); SubscriptionChange with SuppressSending true is, "
            "by SuppressionReason, a hard bounce (HardBounce), a complaint (SpamComplaint) "
            "or an unsubscribe (ManualSuppression) and needs Recipient. Other records, "
            "reactivations included, are ignored."
        ),
        "required": ["RecordType"],
        "properties": {
            "RecordType": {"description": "Bounce, SpamComplaint or SubscriptionChange."},
            "Type": {"description": "Of a Bounce: only HardBounce counts."},
            "ID": {"description": "With MessageID and ChangedAt, makes the event's id."},
            "MessageID": {},
            "ChangedAt": {},
            "Email": {"description": "The address, for Bounce and SpamComplaint."},
            "Recipient": {"description": "The address, for SubscriptionChange."},
            "SuppressSending": {"description": "True: suppressed; false (reactivation): ignored."},
            "SuppressionReason": {
                "description": "HardBounce, SpamComplaint or ManualSuppression (an unsubscribe)."
            },
        },
    },
    "SendGridEvents": {
        "type": "array",
        "description": (
            "SendGrid Event Webhook. bounce (type bounce) is a hard bounce, spamreport a "
            "complaint, unsubscribe and group_unsubscribe an unsubscribe (each needs email); "
            "other events are ignored."
        ),
        "items": {
            "type": "object",
            "properties": {
                "event": {"description": "bounce, spamreport, unsubscribe, group_unsubscribe."},
                "type": {"description": "Of a bounce: bounce (hard) or blocked (ignored)."},
                "email": {"description": "The address."},
                "sg_event_id": {"description": "With event, makes the event's id."},
                "sg_message_id": {"description": "Used when sg_event_id is missing."},
            },
        },
    },
    "LapostaWebhook": {
        "type": "object",
        "description": (
            "Laposta list webhook. An event deactivated with info.action unsubscribed is an "
            "unsubscribe, with hardbounce a hard bounce (without info.action, the member's "
            "state unsubscribed or cleaned says the same); each needs data.email. deleted "
            "(removed by staff in Laposta), subscribed and modified are ignored. An empty "
            "body (Laposta testing the URL) is answered with 0 events."
        ),
        "required": ["data"],
        "properties": {
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["event"],
                    "properties": {
                        "type": {"description": "Always member."},
                        "event": {"description": "subscribed, modified or deactivated."},
                        "data": {
                            "type": "object",
                            "description": "The member: email, state, member_id, list_id, …",
                        },
                        "info": {
                            "type": "object",
                            "description": "action (unsubscribed, deleted, hardbounce), "
                            "date_event, source. With the member, makes the event's id.",
                        },
                    },
                },
            },
            "date_requested": {},
        },
    },
    "BrevoEvents": {
        "description": (
            "Brevo (Sendinblue) webhook, marketing or transactional: one event object, or an "
            "array of them (batched). hard_bounce is a hard bounce, spam and complaint a "
            "complaint, unsubscribe and unsubscribed an unsubscribe (each needs email); "
            "blocked, soft bounces, list_addition and the rest are ignored."
        ),
        "oneOf": [
            _ref("BrevoEvent"),
            {"type": "array", "items": _ref("BrevoEvent")},
        ],
    },
    "BrevoEvent": {
        "type": "object",
        "required": ["event"],
        "properties": {
            "event": {"type": "string", "description": "The event's name."},
            "email": {"description": "The address."},
            "message-id": {"description": "With event, times and address, makes the id."},
            "camp_id": {"description": "Of a campaign (marketing), instead of message-id."},
            "ts_event": {},
            "id": {"description": "Brevo's webhook or account id, not the event's."},
        },
    },
    "Subject": {
        "type": "object",
        "required": ["email", "language", "consents", "events"],
        "properties": {
            "email": {"type": "string", "description": "As stored: lower case."},
            "language": {"type": "string", "enum": list(LANGUAGES)},
            "membership": {
                "oneOf": [{"$ref": "#/components/schemas/Membership"}, {"type": "null"}],
                "description": (
                    "Only for a key with scope `membership`: as the library system reported "
                    "it, null if it never did."
                ),
            },
            "mandates": {
                "type": "array",
                "description": (
                    "Only for a key with purpose `direct_debit`: the person's SEPA mandates, "
                    "newest first. The IBAN is never sent, only masked to its last four "
                    "characters (…4300); null once retention wiped it."
                ),
                "items": {
                    "type": "object",
                    "required": [
                        "reference",
                        "creditor_id",
                        "iban",
                        "signed_on",
                        "status",
                        "active_since",
                        "ended_at",
                    ],
                    "properties": {
                        "reference": {"type": "string"},
                        "creditor_id": {"type": "string"},
                        "iban": {"type": ["string", "null"]},
                        "signed_on": {"type": "string", "format": "date"},
                        "status": {
                            "type": "string",
                            "enum": [
                                "awaiting_approval",
                                "awaiting_member",
                                "active",
                                "ended",
                                "rejected",
                            ],
                        },
                        "active_since": {"type": ["string", "null"]},
                        "ended_at": {"type": ["string", "null"]},
                    },
                },
            },
            "consents": {
                "type": "array",
                "description": "One per purpose of this key.",
                "items": {
                    "type": "object",
                    "required": ["purpose", "status", "changed_at", "text_version"],
                    "properties": {
                        "purpose": {"type": "string"},
                        "status": {"type": "string", "enum": STATUSES},
                        "changed_at": {**TIMESTAMP, "type": ["string", "null"]},
                        "text_version": {"type": ["integer", "null"]},
                    },
                },
            },
            "events": {
                "type": "array",
                "description": "Every change for this key's purposes, newest first.",
                "items": {
                    "type": "object",
                    "required": [
                        "id",
                        "purpose",
                        "action",
                        "channel",
                        "occurred_at",
                        "text_version",
                    ],
                    "properties": {
                        "id": {"type": "integer"},
                        "purpose": {"type": "string"},
                        "action": {"type": "string", "enum": ACTIONS},
                        "channel": {"type": "string", "enum": CHANNELS},
                        "occurred_at": TIMESTAMP,
                        "text_version": {"type": ["integer", "null"]},
                    },
                },
            },
        },
    },
    # -- webhooks the service sends --
    "WebhookEnvelope": {
        "type": "object",
        "required": ["type", "timestamp", "data"],
        "properties": {
            "type": {"type": "string", "description": "The event type, as in the webhook's name."},
            "timestamp": {**TIMESTAMP, "description": "When the message was queued (UTC)."},
            "data": {"type": "object"},
        },
    },
    "MandateChange": {
        "type": "object",
        "required": [
            "library",
            "email",
            "card_number",
            "mandate_reference",
            "creditor_id",
            "iban",
            "signed_on",
        ],
        "properties": {
            "library": {"type": "string", "description": "The library's slug, e.g. borne."},
            "email": {"type": "string"},
            "card_number": {"type": ["string", "null"]},
            "mandate_reference": {"type": "string", "description": "SEPA MndtId."},
            "creditor_id": {"type": "string", "description": "SEPA creditor identifier."},
            "iban": {
                "type": "string",
                "description": "Masked: only the last four characters, e.g. …4300.",
                "pattern": "^…",
            },
            "signed_on": {"type": "string", "format": "date"},
            "active_since": {**TIMESTAMP, "description": "mandate.approved only."},
            "ended_on": {"type": "string", "format": "date", "description": "mandate.ended only."},
            "ended_at": {**TIMESTAMP, "description": "mandate.ended only."},
        },
    },
    "ConsentChange": {
        "type": "object",
        "required": ["event_id", "library", "email", "purpose", "channel", "occurred_at"],
        "properties": {
            "event_id": {"type": "integer", "description": "The ledger event; unique."},
            "library": {"type": "string", "description": "The library's slug, e.g. borne."},
            "email": {"type": "string"},
            "purpose": {"type": "string"},
            "channel": {"type": "string", "enum": CHANNELS},
            "occurred_at": TIMESTAMP,
        },
    },
    "SuppressionAdded": {
        "type": "object",
        "required": ["library", "email", "reason"],
        "properties": {
            "library": {"type": "string"},
            "email": {"type": "string"},
            "reason": {"type": "string", "enum": ["complaint", "hard_bounce", "erased"]},
        },
    },
    "SubjectErased": {
        "type": "object",
        "required": ["library", "email", "erased_at"],
        "properties": {
            "library": {"type": "string"},
            "email": {"type": "string"},
            "erased_at": {"type": "string", "format": "date-time"},
        },
    },
}

HEADERS: Schema = {
    "Retry-After": {
        "description": "Seconds until the key may call again.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Limit": {
        "description": "Calls allowed in the current window.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "Calls left in the current window.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Reset": {
        "description": "When the window ends, in Unix seconds.",
        "schema": {"type": "integer"},
    },
}

RESPONSES: Schema = {
    "BadRequest": {
        "description": (
            "The body is not a JSON object or nests deeper than 32 levels (invalid_body), text "
            "holds a NUL or a lone surrogate (invalid_field), a field is wrong (invalid_field, "
            "invalid_address, not_self_service, unknown_purpose; `field` names it), or a "
            "processor payload is not understood (invalid_payload)."
        ),
        "content": _json(
            _ref("Error"),
            _error_body("invalid_field", "Between 1 and 10000 recipients.", "recipients"),
        ),
    },
    "Unauthorized": {
        "description": "No key, or a key that is unknown or revoked.",
        "headers": {
            "WWW-Authenticate": {
                "required": True,
                "schema": {"type": "string", "const": 'Bearer realm="consentsvc"'},
            }
        },
        "content": _json(
            _ref("Error"),
            _error_body("unauthorized", "Send a valid key as 'Authorization: Bearer csk_…'."),
        ),
    },
    "Forbidden": {
        "description": (
            "The purpose is not one of this key's (forbidden_purpose), or the key lacks the "
            "scope the operation needs (forbidden_scope)."
        ),
        "content": _json(
            _ref("Error"),
            _error_body("forbidden_purpose", "This key may not use this purpose.", "purpose"),
        ),
    },
    "NotFound": {
        "description": "Not known here (not_found).",
        "content": _json(_ref("Error"), _error_body("not_found", "Page not found")),
    },
    "TooLarge": {
        "description": "The body is larger than CONSENTSVC_API_MAX_CONTENT_LENGTH (too_large).",
        "content": _json(_ref("Error"), _error_body("too_large", "Too much data")),
    },
    "RateLimited": {
        "description": (
            "This key made too many calls, or too many calls came from this address without a "
            "valid key (rate_limited); wait Retry-After seconds."
        ),
        "headers": {**RATE_HEADERS, "Retry-After": {**HEADERS["Retry-After"], "required": True}},
        "content": _json(_ref("Error"), _error_body("rate_limited", "Too many attempts")),
    },
    "ServerError": {
        "description": "A fault on our side (server_error); retry later.",
        "content": _json(
            _ref("Error"), _error_body("server_error", "Something went wrong on our side")
        ),
    },
}

# -- paths --------------------------------------------------------------------------------------

PROVIDER_PARAMETERS = [
    {
        "name": "provider",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": list(providers.PARSERS)},
        "description": "Whose webhook format the body is in. Others give 404.",
    },
    {
        "name": "key",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^csk_", "maxLength": KEY_LIMIT},
        "description": (
            "The API key itself, since these processors cannot send an Authorization header. "
            "An unknown or revoked key gives 404."
        ),
    },
]

PATHS: Schema = {
    "/api/openapi.json": {
        "get": {
            "operationId": "openapi",
            "tags": ["meta"],
            "summary": "This document.",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI 3.1 document.",
                    "content": _json({"type": "object", "required": ["openapi", "paths"]}),
                },
                **_errors(),
            },
        }
    },
    "/api/v1/consent/check": {
        "post": {
            "operationId": "checkConsent",
            "tags": ["senders"],
            "summary": "Which recipients may get mail for this purpose, with the mail headers.",
            "description": (
                "Call right before a send. Send only to results with allowed true, and put "
                "their headers in the mail. The answer fails closed: unknown, unconfirmed, "
                "withdrawn, objected, suppressed and invalid addresses are all refused."
            ),
            "requestBody": {"required": True, "content": _json(_ref("CheckRequest"))},
            "responses": {
                "200": _ok(
                    "One result per recipient, in the order sent.",
                    _ref("CheckResult"),
                    {
                        "decision_id": "6f1c1a52-2b7e-4d6e-9d55-0c1f3f0b8e21",
                        "purpose": "newsletter",
                        "checked_at": "2026-11-20T12:15:00.123456Z",
                        "results": [
                            {
                                "email": "jan@example.nl",
                                "allowed": True,
                                "reason": "granted",
                                "headers": {
                                    "List-Unsubscribe": "<https://toestemming.example.nl/"
                                    "unsubscribe/eyJ…>",
                                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                                    "List-Id": '"Nieuwsbrief" <newsletter.borne.lists.example.org>',
                                },
                                "preferences_url": "https://toestemming.example.nl/preferences/eyJ…",
                            },
                            {"email": "piet@example.nl", "allowed": False, "reason": "withdrawn"},
                        ],
                    },
                    limited=True,
                ),
                **_errors("400", "401", "403", "413", "429"),
            },
        }
    },
    "/api/v1/signups": {
        "post": {
            "operationId": "createSignup",
            "tags": ["websites"],
            "summary": "Start double opt-in for a person who ticked the box on your website.",
            "description": (
                "The service mails the confirmation link; nothing is granted until the person "
                "clicks it. Purposes already granted are left as they are. The signup is "
                "recorded with the time of this call and the wording shown, and carried out "
                "by the service's worker moments later: the answer is the same, and takes "
                "as long, whether the address is new, pending or already subscribed."
            ),
            "requestBody": {"required": True, "content": _json(_ref("SignupRequest"))},
            "responses": {
                "202": _to_subject(
                    _ok(
                        "Accepted: recorded, to be carried out by the worker.",
                        _ref("Accepted"),
                        {"status": "accepted"},
                        limited=True,
                    ),
                    "$request.body#/email",
                    "The person's consents and history, once the worker has carried out the "
                    "signup (usually within seconds).",
                ),
                **_errors("400", "401", "403", "413", "429"),
            },
        }
    },
    "/api/v1/events": {
        "post": {
            "operationId": "reportEvent",
            "tags": ["senders"],
            "summary": "Report an unsubscribe, spam complaint or hard bounce you saw.",
            "description": (
                "Idempotent on `id` per key: send it again as often as you like. An unknown "
                "address is still suppressed for complaints and hard bounces."
            ),
            "requestBody": {"required": True, "content": _json(_ref("EventRequest"))},
            "responses": {
                "200": _to_subject(
                    _ok("Applied, or seen before.", _ref("EventStatus"), limited=True),
                    "$request.body#/email",
                ),
                **_errors("400", "401", "403", "413", "429"),
            },
        }
    },
    "/api/v1/providers/{provider}/{key}": {
        "parameters": PROVIDER_PARAMETERS,
        "get": {
            "operationId": "testProviderWebhook",
            "tags": ["processors"],
            "summary": "Answer the processor's test call when the webhook URL is set up.",
            "security": [],
            "responses": {
                "200": _ok("The URL works.", _ref("ProviderReady"), limited=True),
                **_errors("404", "429"),
            },
        },
        "post": {
            "operationId": "receiveProviderWebhook",
            "tags": ["processors"],
            "summary": "A processor's own webhook: unsubscribes, complaints, hard bounces.",
            "description": (
                "Point the processor's webhook at this URL. Each event is applied once "
                "(its id is derived from the processor's ids). The body is the processor's: "
                "a form for mailchimp, a JSON object for postmark, a JSON array for sendgrid, "
                "a JSON object with a data array for laposta, a JSON object or array for "
                "brevo; any other shape for the provider gives 400 invalid_payload."
            ),
            "security": [],
            "parameters": [
                {
                    "name": "purpose",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": (
                        "The purpose an unsubscribe stops; may be left out when the key has "
                        "only one purpose."
                    ),
                }
            ],
            "requestBody": {
                # Laposta tests the URL with a call that may carry no body at all.
                "required": False,
                "description": "Required, except by laposta: an empty call (JSON or no "
                "content type) is its test, answered with 0 events.",
                "content": {
                    "application/x-www-form-urlencoded": {"schema": _ref("MailchimpWebhook")},
                    "application/json": {
                        "schema": {
                            # anyOf: a Brevo object or array can look like the others.
                            "anyOf": [
                                _ref(name)
                                for name in (
                                    "PostmarkWebhook",
                                    "SendGridEvents",
                                    "LapostaWebhook",
                                    "BrevoEvents",
                                )
                            ],
                        }
                    },
                },
            },
            "responses": {
                "200": _ok("Processed.", _ref("ProviderResult"), limited=True),
                **_errors("400", "404", "413", "429"),
            },
        },
    },
    "/api/v1/subjects/{email}": {
        "get": {
            "operationId": "getSubject",
            "tags": ["senders", "websites"],
            "summary": "One person's current consents and history, for this key's purposes.",
            "parameters": [
                {
                    "name": "email",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "email", "maxLength": TEXT_LIMIT},
                    "description": "Any spelling; looked up normalised (lower case).",
                }
            ],
            "responses": {
                "200": _ok("What this key may see.", _ref("Subject"), limited=True),
                **_errors("400", "401", "404", "429"),
            },
        }
    },
}

# -- membership from the library system (scope `membership`) ------------------------------------

# What ledger/membership.py accepts; dates outside its bounds are refused with 400 too.
CARD_NUMBER: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_CARD_NUMBER_LENGTH,
    "pattern": r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$",
    "description": "The library card's number: letters, digits and hyphens, at most 40.",
}
DAY: Schema = {"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}

SCHEMAS.update(
    {
        "Membership": {
            "type": "object",
            "required": ["card_number", "start", "end"],
            "properties": {
                "card_number": CARD_NUMBER,
                "start": {**DAY, "description": "First day of the membership, YYYY-MM-DD."},
                "end": {
                    "oneOf": [DAY, {"type": "null"}],
                    "description": "Last day, YYYY-MM-DD; null (or left out) while it runs.",
                },
            },
        },
        "MembershipRequest": {
            "type": "object",
            "required": ["card_number", "start"],
            "properties": {
                "card_number": CARD_NUMBER,
                "start": {
                    **DAY,
                    "description": "First day, YYYY-MM-DD, from 1900-01-01 to ten years ahead.",
                },
                "end": {
                    "oneOf": [DAY, {"type": "null"}],
                    "description": "Last day, not before the start; null or left out: it runs.",
                },
            },
        },
        "MembershipResult": {
            "type": "object",
            "required": ["email", "status", "membership"],
            "properties": {
                "email": {"type": "string", "description": "As stored: lower case."},
                "status": {
                    "type": "string",
                    "enum": ["created", "updated", "unchanged"],
                    "description": "created: the person was new here (201).",
                },
                "membership": _ref("Membership"),
            },
        },
    }
)

PATHS["/api/v1/subjects/{email}/membership"] = {
    "put": {
        "operationId": "putMembership",
        "tags": ["library system"],
        "summary": "Record a person's membership as the library system knows it.",
        "description": (
            "Needs a key with scope `membership` (`consentsvc clients create --scope "
            "membership`). Creates the person if the service does not know them; sending the "
            "same membership again changes nothing (`unchanged`). The end starts the clock for "
            "keeping contact data. Not the member's own doing: their last activity stays. An "
            "address erased here is not recorded again (409 erased)."
        ),
        "parameters": [
            {
                "name": "email",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "email", "maxLength": TEXT_LIMIT},
                "description": "Any spelling; stored normalised (lower case).",
            }
        ],
        "requestBody": {
            "required": True,
            "content": _json(
                _ref("MembershipRequest"),
                {"card_number": "21234000012345", "start": "2020-03-01", "end": None},
            ),
        },
        "responses": {
            "200": _ok("Updated, or unchanged.", _ref("MembershipResult"), limited=True),
            "201": _ok("The person was new here.", _ref("MembershipResult"), limited=True),
            "409": {
                "description": "This address was erased here; it is not recorded again (erased).",
                "content": _json(
                    _ref("Error"),
                    _error_body(
                        "erased",
                        "This address was erased here; it is not recorded again.",
                        "email",
                    ),
                ),
            },
            **_errors("400", "401", "403", "404", "413", "429"),
        },
    }
}
TAGS.append({"name": "library system", "description": "The library's member records: memberships."})

# -- what a past check answered -------------------------------------------------------------------

DECISION_ID: Schema = {
    "type": "string",
    "format": "uuid",
    "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
}
DECISION_EXAMPLE_ID = "6f1c1a52-2b7e-4d6e-9d55-0c1f3f0b8e21"
DECISION_COMMON: Schema = {
    "decision_id": {**DECISION_ID, "description": "As the check answered it."},
    "purpose": {"type": "string", "description": "The purpose code that was checked."},
    "checked_at": TIMESTAMP,
    "kept_until": {
        "oneOf": [TIMESTAMP, {"type": "null"}],
        "description": (
            "When the library's retention period for check answers ends (by default 24 "
            "months after the check); from then on this decision is a 404."
        ),
    },
}

SCHEMAS.update(
    {
        "Decision": {
            "type": "object",
            "description": "What the check answered, without the addresses as they were sent.",
            "required": [
                *DECISION_COMMON,
                "recipients",
                "reasons",
                "allowed_people",
                "allowed_erased",
                "allowed_emails",
            ],
            "properties": {
                **DECISION_COMMON,
                "recipients": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "How many recipients were sent, duplicates included.",
                },
                "reasons": {
                    "type": "object",
                    "propertyNames": {"enum": REASONS},
                    "additionalProperties": {"type": "integer", "minimum": 1},
                    "description": "How many results had each reason (they add up to recipients).",
                },
                "allowed_people": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "How many different people the check allowed.",
                },
                "allowed_erased": {
                    "type": "integer",
                    "minimum": 0,
                    "description": (
                        "Of allowed_people, how many were erased since: counted, but their "
                        "addresses are gone."
                    ),
                },
                "allowed_emails": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": (
                        "The addresses of the other allowed people as the library knows them "
                        "now (lower case, sorted): a person who changed their address since "
                        "is listed under the new one."
                    ),
                },
            },
        },
        "DecisionForAddress": {
            "type": "object",
            "description": "Whether the check allowed the person with this address.",
            "required": [*DECISION_COMMON, "email", "known", "allowed"],
            "properties": {
                **DECISION_COMMON,
                "email": {"type": "string", "description": "The address asked about, lower case."},
                "known": {
                    "type": "boolean",
                    "description": (
                        "Whether the library knows a person with this address now. false: "
                        "never known, changed or erased since; such an address cannot be "
                        "matched to the decision, and allowed is false."
                    ),
                },
                "allowed": {
                    "type": "boolean",
                    "description": "Whether the check allowed this person.",
                },
            },
        },
    }
)

PATHS["/api/v1/decisions/{decision_id}"] = {
    "get": {
        "operationId": "getDecision",
        "tags": ["senders"],
        "summary": "What a past consent check answered, to prove what you were told.",
        "description": (
            "Give the decision_id of an earlier POST /api/v1/consent/check: the answer is the "
            "purpose, the time, how many recipients and how many of each reason, and the "
            "people the check allowed by their current address. With `email`, only whether "
            "the check allowed that person. Any key of the library with the decision's "
            "purpose may ask. A decision of another library or purpose, or one older than "
            "the library's retention period for check answers, is a 404 like an unknown id."
        ),
        "parameters": [
            {
                "name": "decision_id",
                "in": "path",
                "required": True,
                "schema": DECISION_ID,
                "description": "The decision_id of the check; anything else is a 400.",
            },
            {
                "name": "email",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "format": "email", "maxLength": TEXT_LIMIT},
                "description": "Answer for this address only (any spelling).",
            },
        ],
        "responses": {
            "200": _ok(
                "The kept answer, or with `email` the answer for that address.",
                {"oneOf": [_ref("Decision"), _ref("DecisionForAddress")]},
                {
                    "decision_id": DECISION_EXAMPLE_ID,
                    "purpose": "newsletter",
                    "checked_at": "2026-11-20T12:15:00.123456Z",
                    "kept_until": "2028-11-20T12:15:00.123456Z",
                    "recipients": 3,
                    "reasons": {"granted": 1, "withdrawn": 1, "invalid_address": 1},
                    "allowed_people": 1,
                    "allowed_erased": 0,
                    "allowed_emails": ["jan@example.nl"],
                },
                limited=True,
            ),
            "404": {
                "description": (
                    "No such decision for this key: never answered here, another library's "
                    "or purpose's, or removed after the retention period (not_found)."
                ),
                "content": _json(
                    _ref("Error"),
                    _error_body(
                        "not_found",
                        "No consent check with this decision_id for this key: it was never "
                        "answered here, or it was removed after this library's retention "
                        "period (24 months after the check).",
                    ),
                ),
            },
            **_errors("400", "401", "429"),
        },
    }
}

# -- webhooks the service sends -------------------------------------------------------------------

WEBHOOK_HEADERS = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "pattern": "^msg_"},
        "description": "Unique per message and the same on every retry: de-duplicate on it.",
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "schema": {"type": "integer"},
        "description": "Unix seconds of this attempt; refuse ones far from your clock.",
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "pattern": "^v1,"},
        "description": (
            "v1,<base64 HMAC-SHA256 of '{webhook-id}.{webhook-timestamp}.{body}'> keyed with "
            "the whsec_ secret from `consentsvc webhooks add`."
        ),
    },
]

WEBHOOK_RESPONSES: Schema = {
    "2XX": {"description": "Delivered; the message is not sent again."},
    "410": {"description": "Gone: the endpoint is disabled and gets nothing more."},
    "default": {
        "description": (
            "Anything else, no status line within 10 s (5 s to connect) or a refused "
            "connection: retried after "
            + ", ".join(f"{delay} s" for delay in outbox.RETRY_DELAYS)
            + " (each ±10 %), then given up."
        )
    },
}


def _webhook(event_type: str, summary: str, data: str) -> Schema:
    return {
        "post": {
            "operationId": event_type.replace(".", "_"),
            "summary": summary,
            "description": (
                "Sent to each active endpoint of the library registered for this event type "
                "(`consentsvc webhooks add --events …`), after the change is committed."
            ),
            "parameters": WEBHOOK_HEADERS,
            "requestBody": {
                "required": True,
                "content": _json(
                    {
                        "allOf": [
                            _ref("WebhookEnvelope"),
                            {
                                "properties": {
                                    "type": {"const": event_type},
                                    "data": _ref(data),
                                }
                            },
                        ]
                    }
                ),
            },
            "responses": WEBHOOK_RESPONSES,
        }
    }


WEBHOOKS: Schema = {
    "consent.granted": _webhook(
        "consent.granted",
        "A person gave consent (confirmed a signup, or was granted at the desk or in the "
        "preference centre).",
        "ConsentChange",
    ),
    "consent.withdrawn": _webhook(
        "consent.withdrawn",
        "A person withdrew consent: stop mailing this purpose now.",
        "ConsentChange",
    ),
    "consent.objected": _webhook(
        "consent.objected",
        "A person objected to mail sent on legitimate interest: stop mailing this purpose now.",
        "ConsentChange",
    ),
    "suppression.added": _webhook(
        "suppression.added",
        "An address complained, hard-bounced or was erased: send it nothing from this "
        "library again.",
        "SuppressionAdded",
    ),
    "mandate.approved": _webhook(
        "mandate.approved",
        "A direct-debit mandate became active (approved by a second staff member or the "
        "privacy officer, and for an online signature confirmed by the member): you may "
        "collect on it. The IBAN is masked; take the full one from the signed mandate.",
        "MandateChange",
    ),
    "mandate.ended": _webhook(
        "mandate.ended",
        "A direct-debit mandate ended (at the desk or by the member after a confirmation "
        "page; never by an unsubscribe link): collect nothing more on it after `ended_on`.",
        "MandateChange",
    ),
    "subject.erased": _webhook(
        "subject.erased",
        "The library erased this person, at their request or because the library's retention "
        "period ended (actor `retention`): delete your copy of the address.",
        "SubjectErased",
    ),
}
