"""Every signed link the service hands out: a make_*/read_* pair per kind.

Each kind has its own salt, so a token of one kind never passes as another. Keys rotate
through Flask's SECRET_KEY_FALLBACKS: old links keep working until their key is retired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALTS = {
    "confirm": "consentsvc.confirm.v1",
    "preferences": "consentsvc.preferences.v1",
    "unsubscribe": "consentsvc.unsubscribe.v1",
}


class InvalidToken(Exception):
    """Tampered, truncated, of another kind, or signed with a retired key."""


class ExpiredToken(Exception):
    """Authentic but too old; carries what it said so the member can ask for a new one."""

    def __init__(self, payload: Any) -> None:
        super().__init__("expired")
        self.payload = payload


@dataclass(frozen=True)
class ConfirmLink:
    subject_id: int
    request_ids: list[int]


@dataclass(frozen=True)
class UnsubscribeLink:
    subject_id: int
    purpose_id: int


def make_confirm(subject_id: int, request_ids: list[int]) -> str:
    return _serializer("confirm").dumps([subject_id, request_ids])


def read_confirm(token: str) -> ConfirmLink:
    subject_id, request_ids = _load("confirm", token, current_app.config["CONFIRM_MAX_AGE"])
    return ConfirmLink(subject_id, request_ids)


def make_preferences(subject_id: int) -> str:
    return _serializer("preferences").dumps(subject_id)


def read_preferences(token: str) -> int:
    return _load("preferences", token, current_app.config["PREFERENCES_MAX_AGE"])


def make_unsubscribe(subject_id: int, purpose_id: int) -> str:
    return _serializer("unsubscribe").dumps([subject_id, purpose_id])


def read_unsubscribe(token: str) -> UnsubscribeLink:
    # No max age: a link in a years-old mail must still stop the mail.
    subject_id, purpose_id = _load("unsubscribe", token, None)
    return UnsubscribeLink(subject_id, purpose_id)


def subject_of_expired(exc: ExpiredToken) -> int | None:
    """The subject an expired confirm or preferences token named."""
    payload = exc.payload
    if isinstance(payload, list) and payload and isinstance(payload[0], int):
        return payload[0]
    return payload if isinstance(payload, int) else None


def _serializer(kind: str) -> URLSafeTimedSerializer:
    config = current_app.config
    keys = [*config["SECRET_KEY_FALLBACKS"], config["SECRET_KEY"]]  # newest signs
    return URLSafeTimedSerializer(keys, salt=SALTS[kind])


def _load(kind: str, token: str, max_age: int | None) -> Any:
    if len(token) > 1000:
        raise InvalidToken
    serializer = _serializer(kind)
    try:
        payload = serializer.loads(token, max_age=max_age)
    except SignatureExpired as exc:
        # The signature was good, so what it carries can be trusted (but not acted on).
        expired = serializer.load_payload(exc.payload) if exc.payload is not None else None
        if not _well_formed(kind, expired):
            raise InvalidToken from None
        raise ExpiredToken(expired) from None
    except (BadSignature, UnicodeDecodeError, ValueError):
        raise InvalidToken from None
    if not _well_formed(kind, payload):
        raise InvalidToken
    return payload


def _well_formed(kind: str, payload: Any) -> bool:
    def is_id(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    if kind == "preferences":
        return is_id(payload)
    if not (isinstance(payload, list) and len(payload) == 2 and is_id(payload[0])):
        return False
    if kind == "confirm":
        return isinstance(payload[1], list) and all(is_id(v) for v in payload[1])
    return is_id(payload[1])
