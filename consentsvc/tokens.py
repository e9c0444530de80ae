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
    """Authentic but too old."""


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


def read_confirm(token: str, *, expired_ok: bool = False) -> ConfirmLink:
    """expired_ok: for asking a new link, which goes only to the person's own address."""
    max_age = None if expired_ok else current_app.config["CONFIRM_MAX_AGE"]
    subject_id, request_ids = _load("confirm", token, max_age)
    return ConfirmLink(subject_id, request_ids)


def make_preferences(subject_id: int) -> str:
    return _serializer("preferences").dumps(subject_id)


def read_preferences(token: str, *, expired_ok: bool = False) -> int:
    max_age = None if expired_ok else current_app.config["PREFERENCES_MAX_AGE"]
    return _load("preferences", token, max_age)


def make_unsubscribe(subject_id: int, purpose_id: int) -> str:
    return _serializer("unsubscribe").dumps([subject_id, purpose_id])


def make_many_unsubscribe(pairs: list[tuple[int, int]]) -> list[str]:
    """Unsubscribe tokens for (subject, purpose) pairs, with one serializer for the batch."""
    serializer = _serializer("unsubscribe")
    return [serializer.dumps([subject_id, purpose_id]) for subject_id, purpose_id in pairs]


def make_many_preferences(subject_ids: list[int]) -> list[str]:
    serializer = _serializer("preferences")
    return [serializer.dumps(subject_id) for subject_id in subject_ids]


def read_unsubscribe(token: str) -> UnsubscribeLink:
    # No max age: a link in a years-old mail must still stop the mail.
    subject_id, purpose_id = _load("unsubscribe", token, None)
    return UnsubscribeLink(subject_id, purpose_id)


def _serializer(kind: str) -> URLSafeTimedSerializer:
    config = current_app.config
    keys = [*config["SECRET_KEY_FALLBACKS"], config["SECRET_KEY"]]  # newest signs
    return URLSafeTimedSerializer(keys, salt=SALTS[kind])


def _load(kind: str, token: str, max_age: int | None) -> Any:
    if len(token) > 1000:
        raise InvalidToken
    try:
        payload = _serializer(kind).loads(token, max_age=max_age)
    except SignatureExpired:
        raise ExpiredToken from None
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
