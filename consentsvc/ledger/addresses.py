"""Addresses: the one spelling under which each is stored, and the keyed hash and
fingerprint that name one without showing it."""

from __future__ import annotations

import hashlib
import hmac
import re

import email_validator
from email_validator import EmailNotValidError, validate_email

from .errors import InvalidEmail

MAX_EMAIL_LENGTH = 254


# Plain ASCII addresses, which are nearly all of them, whose normal form email-validator
# would give as the address itself (lower-cased). A check of 10,000 recipients spends most
# of its time normalising; this takes it from ~30 µs to ~1 µs an address. Anything else
# (quoted parts, IDN, special-use domains) goes the full way.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[a-z]{{2,63}}")
_SPECIAL_USE = frozenset(email_validator.SPECIAL_USE_DOMAIN_NAMES)


def normalise_email(raw: str) -> str:
    """Return the one spelling under which an address is stored, or raise InvalidEmail."""
    raw = (raw or "").strip()
    if not raw or len(raw) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(raw)
    lowered = raw.lower()
    if (
        _PLAIN_ADDRESS.fullmatch(lowered)
        # "--" in a domain label: punycode ("xn--", where email-validator gives the Unicode
        # form) or a label IDNA reserves (hyphens in 3rd and 4th place), which it refuses.
        and "--" not in lowered.partition("@")[2]
        and len(lowered.partition("@")[0]) <= 64
        and lowered.rpartition(".")[2] not in _SPECIAL_USE
    ):
        return lowered
    try:
        # Addresses with non-ASCII before the @ need SMTPUTF8, which the mail path (and
        # many receiving servers) cannot do; refuse them up front rather than fail later.
        checked = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(raw) from exc
    # Mail providers treat the local part case-insensitively; so do we, so that one
    # person is one subject however they type their address.
    return checked.normalized.lower()


def email_hmac(key: str, email: str) -> str:
    """The keyed hash under which a suppressed address is kept (never the address itself)."""
    return email_hmac_bytes(key.encode(), email)


def email_hmac_bytes(key: bytes, email: str) -> str:
    """email_hmac with the key already encoded, for a check that hashes 10,000 addresses."""
    return hmac.digest(key, email.encode(), "sha256").hex()


def email_fingerprint(email: str) -> str:
    """Names one address in a link without showing it."""
    return hashlib.sha256(email.encode()).hexdigest()[:16]
