"""The consent check's request and answer, declared once as msgspec types.

The view (web/api.py) decodes and validates the request with CheckRequest and encodes the
answer with CheckAnswer; the OpenAPI document (web/openapi.py) takes the request's schema
from the same declaration, so the limits it publishes are the limits the view applies.
msgspec decodes and encodes a 10,000-recipient check in a fraction of the time the
standard json module takes (docs/performance.md).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from ..ledger import MAX_RECIPIENTS

# Any text field of the API (api._string): 1 to 254 characters, not only spaces; the
# OpenAPI document uses the same two for every such field.
TEXT_LIMIT = 254
NOT_BLANK = r"\S"

Purpose = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=TEXT_LIMIT,
        pattern=NOT_BLANK,
        description="A purpose code of this key, e.g. newsletter.",
    ),
]
Recipients = Annotated[
    list[str],
    msgspec.Meta(
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description=(
            "Addresses as you hold them; answered in the same order and spelling. "
            "Anything that is not a valid address is answered with invalid_address."
        ),
    ),
]


class CheckRequest(msgspec.Struct):
    """POST /api/v1/consent/check. Fields the API does not know are ignored."""

    purpose: Purpose
    recipients: Recipients


NOT_AN_OBJECT = "Send a JSON object with Content-Type: application/json."


class Refused(Exception):
    """The body is not a check request; `field` names the wrong field (None: the body)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


# Per field, the error the API has always given (docs/senders.md lists them).
MESSAGES = {
    "purpose": f"A text of 1 to {TEXT_LIMIT} characters.",
    "recipients": "A list of e-mail addresses.",
}
_COUNT = f"Between 1 and {MAX_RECIPIENTS} recipients."
_FIELD = re.compile(r"`\$\.(\w+)")
_DECODER = msgspec.json.Decoder(CheckRequest)


def read_request(body: bytes) -> CheckRequest:
    """The validated request, or Refused with the field and the API's own message."""
    try:
        return _DECODER.decode(body)
    except msgspec.ValidationError as error:
        text = str(error)
        if text.startswith("Object missing required field"):
            field = text.rpartition("`")[0].rpartition("`")[2]
        else:
            found = _FIELD.search(text)
            field = found.group(1) if found else None
        if field not in MESSAGES:
            raise Refused(None, NOT_AN_OBJECT) from None
        if field == "recipients" and "length" in text and "[" not in text.partition("$.")[2]:
            raise Refused(field, _COUNT) from None
        raise Refused(field, MESSAGES[field]) from None
    except msgspec.DecodeError:
        raise Refused(None, NOT_AN_OBJECT) from None


# gc=False: a 10,000-recipient answer is 20,000 objects without references back, and the
# garbage collector walking them after every few thousand allocations cost more than the
# encoding itself.
class MailHeaders(msgspec.Struct, gc=False, rename={"unsubscribe": "List-Unsubscribe",
                                          "unsubscribe_post": "List-Unsubscribe-Post",
                                          "list_id": "List-Id"}):  # fmt: skip
    unsubscribe: str
    unsubscribe_post: str
    list_id: str


class Result(msgspec.Struct, omit_defaults=True, gc=False):
    """One recipient's answer; headers and preferences_url only for those allowed."""

    email: str
    allowed: bool
    reason: str
    headers: Any = None  # MailHeaders, or {} for a purpose that is not mail
    preferences_url: str | None = None


class CheckAnswer(msgspec.Struct, gc=False):
    decision_id: str
    purpose: str
    checked_at: str
    results: list[Result]


_ENCODER = msgspec.json.Encoder()


def encode_answer(answer: CheckAnswer) -> bytes:
    return _ENCODER.encode(answer)


def request_schema() -> dict[str, Any]:
    """The OpenAPI schema of CheckRequest, made from the declaration above."""
    _refs, components = msgspec.json.schema_components([CheckRequest])
    return components["CheckRequest"]
