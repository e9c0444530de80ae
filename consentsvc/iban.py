"""Account numbers of direct-debit mandates: checking an IBAN and a SEPA creditor identifier,
encrypting the IBAN for storage, and the one masked form in which it is ever shown.

The IBAN is encrypted (Fernet: AES-128-CBC with an HMAC, from `cryptography`) with a key of
its own, CONSENTSVC_IBAN_KEY, that is never derived from SECRET_KEY: rotating the link key
must not make the mandates unreadable, and a leaked link key must not open them. Only the
last four characters stay in clear, for the masked form "…4300"; that form is the only one
that may reach a page, an export, an API answer, a webhook, a log line or an error message.
"""

from __future__ import annotations

import re

from cryptography.fernet import Fernet, InvalidToken
from schwifty import IBAN
from schwifty import exceptions as schwifty_errors

# The one masked form, everywhere: the last four characters after an ellipsis.
MASK_PREFIX = "…"
# ISO 13616: at most 34 characters; a creditor identifier at most 35.
MAX_IBAN_LENGTH = 34
MAX_CREDITOR_ID_LENGTH = 35
# EPC's SEPA creditor identifier: country, 2 check digits, a 3-character business code that
# the check ignores, and the national identifier (for the Netherlands 12 digits: the KvK
# number and 4 more, e.g. NL98ZZZ999999999999).
CREDITOR_ID = re.compile(r"([A-Z]{2})([0-9]{2})([A-Z0-9]{3})([A-Z0-9]{1,28})")
NATIONAL_CREDITOR_LENGTH = {"NL": 12, "DE": 11}


class AccountError(ValueError):
    """Refused input. `code` picks the translated message; the text never holds the input."""

    def __init__(self, field: str, code: str) -> None:
        super().__init__(f"{field}: {code}")
        self.field, self.code = field, code


def compact(value: str) -> str:
    """Without spaces (as printed on cards and forms) and in capitals."""
    return "".join(value.split()).upper()


def check_iban(value: str) -> str:
    """The IBAN in compact form, or AccountError with the reason: characters, country,
    length, check digits or bank code (schwifty knows each country's format)."""
    text = compact(value)
    if not text:
        raise AccountError("iban", "required")
    if len(text) > MAX_IBAN_LENGTH or not text.isascii() or not text.isalnum():
        raise AccountError("iban", "characters" if len(text) <= MAX_IBAN_LENGTH else "length")
    try:
        iban = IBAN(text)
    except schwifty_errors.InvalidCountryCode:
        raise AccountError("iban", "country") from None
    except schwifty_errors.InvalidLength:
        raise AccountError("iban", "length") from None
    except schwifty_errors.InvalidChecksumDigits:
        raise AccountError("iban", "check_digits") from None
    except schwifty_errors.InvalidStructure:
        raise AccountError("iban", "characters") from None
    except schwifty_errors.SchwiftyException:
        # A bank code or national check that does not exist: a typing error just as well.
        raise AccountError("iban", "bank") from None
    if not iban.in_sepa_zone:
        raise AccountError("iban", "not_sepa")
    return str(iban.compact)


def check_creditor_id(value: str) -> str:
    """A SEPA creditor identifier (incassant-ID) in compact form, or AccountError.

    schwifty has no creditor identifiers, so the check is written here: EPC262-08 and the
    Dutch Betaalvereniging's description compute its check digits by ISO 7064 MOD 97-10, as
    for an IBAN, over the national identifier followed by the country code and "00"; the
    business code in positions 5-7 is left out. (The format as often printed,
    NL98ZZZ999999999999, is a pattern, not a valid number: its check digits would be 57.
    Germany's published test number DE98ZZZ09999999999 is valid.)
    """
    text = compact(value)
    if not text:
        raise AccountError("creditor_id", "required")
    match = CREDITOR_ID.fullmatch(text) if len(text) <= MAX_CREDITOR_ID_LENGTH else None
    if match is None:
        raise AccountError("creditor_id", "format")
    country, digits, _business, national = match.groups()
    expected = NATIONAL_CREDITOR_LENGTH.get(country)
    if expected is not None and (len(national) != expected or not national.isdigit()):
        raise AccountError("creditor_id", "format")
    if mod97(national + country + digits) != 1:
        raise AccountError("creditor_id", "check_digits")
    return text


def mod97(text: str) -> int:
    """ISO 7064 MOD 97-10 of letters and digits (A=10 … Z=35), as IBANs use it."""
    return int("".join(str(int(c, 36)) for c in text)) % 97


def mask(last4: str | None) -> str:
    """The masked form of an account number of which only the last four are known."""
    return f"{MASK_PREFIX}{last4}" if last4 else MASK_PREFIX


def last4(iban: str) -> str:
    return compact(iban)[-4:]


class Vault:
    """Encrypts and decrypts IBANs with CONSENTSVC_IBAN_KEY."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def encrypt(self, iban: str) -> str:
        return self._fernet.encrypt(compact(iban).encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """The IBAN; for the payment system's export only, never for a page or a log."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise AccountError("iban", "key") from None


def is_key(value: object) -> bool:
    """Whether a value can be CONSENTSVC_IBAN_KEY: a Fernet key (32 bytes, URL-safe base64)."""
    if not isinstance(value, str):
        return False
    try:
        Fernet(value.encode())
    except ValueError:
        return False
    return True


def new_key() -> str:
    return Fernet.generate_key().decode()
