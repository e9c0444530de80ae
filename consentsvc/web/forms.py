"""Reading numbers and e-mail addresses from forms the same way in every view."""

from __future__ import annotations

from flask_babel import gettext as _
from werkzeug.routing import IntegerConverter, Map

from ..ledger import InvalidEmail, normalise_email

# Every id column fits a signed 32-bit integer (the smallest integer type in use).
MAX_ID = 2**31 - 1


def as_id(value: str | None) -> int | None:
    """A positive whole number of at most 9 digits (every id fits a database integer), or None.

    isdigit() alone also passes "²", which int() refuses: only ASCII digits count.
    """
    if value and value.isascii() and value.isdigit() and len(value) < 10:
        number = int(value)
        return number if 0 < number <= MAX_ID else None
    return None


class IdConverter(IntegerConverter):
    """`<id:name>` in a URL: a row id. Larger numbers are a 404, not a database overflow."""

    def __init__(self, map: Map) -> None:
        super().__init__(map, min=1, max=MAX_ID)


def email_error(value: str, empty: str) -> str | None:
    """What is wrong with a typed e-mail address, in the words of every member form: `empty`
    when nothing was typed, one message for anything that is not an address, else None."""
    if not value.strip():
        return empty
    try:
        normalise_email(value)
    except InvalidEmail:
        return _("Fill in a valid e-mail address, like name@example.nl.")
    return None
