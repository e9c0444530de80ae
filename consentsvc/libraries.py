"""A library's own settings: name, colour, signup origins, language, retention, reconfirm
pause, what legitimate interest means.

Used by the console and the CLI; knows no request and no HTML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from .config import LANGUAGES
from .models import LegitimateInterest, Library

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_COLOUR = "#1f4e79"
# First path segments that can never be a library's slug.
RESERVED_SLUGS = frozenset(
    {
        "admin",
        "api",
        "confirm",
        "download",
        "email",
        "healthz",
        "metrics",
        "preferences",
        "readyz",
        "static",
        "unsubscribe",
    }
)
# How long each kind of data is kept (the seeds: contact data until 6 months after membership
# ends, payment data 7 years, anonymised after 7 years without activity, at most 5 years for
# some libraries, desk notes destroyed right after use). The retention job (ledger.retention)
# reads these; the first three keep the meaning they always had.
RETENTION_CATEGORIES = (
    "contact_after_membership",
    "payment",
    "inactive",
    "pending_signup",
    "evidence_details",
    "overall_maximum",
    "check_decisions",
    "audit",
    "outbox",
    "desk_notes",
)
# The unit of each category's number: short-lived things count in days, the rest in months.
RETENTION_UNITS = {
    "contact_after_membership": "months",
    "payment": "months",
    "inactive": "months",
    "pending_signup": "days",
    "evidence_details": "months",
    "overall_maximum": "months",
    "check_decisions": "months",
    "audit": "months",
    "outbox": "days",
    "desk_notes": "days",
}
DEFAULT_RETENTION = {
    "contact_after_membership": 6,
    "payment": 84,
    "inactive": 84,
    "pending_signup": 30,
    "evidence_details": 12,
    # 0: the library has no overall maximum (Borne's demo seed sets 60: "maximaal 5 jaar").
    "overall_maximum": 0,
    "check_decisions": 24,
    "audit": 24,
    "outbox": 30,
    # A desk note is read back the day it is typed (a correction, a question) and then goes.
    "desk_notes": 1,
}
# Categories a library may switch off with 0.
OPTIONAL_RETENTION = frozenset({"overall_maximum"})
MAX_RETENTION_MONTHS = 240
MAX_RETENTION_DAYS = 3650
MAX_ORIGINS = 20


class SettingsError(ValueError):
    """Refused input; `field` and `code` pick the console's translated message."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code


@dataclass(frozen=True)
class Settings:
    name: str
    colour: str
    origins: tuple[str, ...]
    default_language: str
    pause_until_reconfirmed: bool
    retention: dict[str, int]
    legitimate_interest: str = LegitimateInterest.OPT_IN


# WCAG 2.1 AA for normal text: white on the library's colour must reach this ratio.
MINIMUM_CONTRAST = 4.5


def contrast_with_white(colour: str) -> float:
    """WCAG contrast ratio of white text on this colour (buttons and the header use it)."""

    def channel(hex_pair: str) -> float:
        value = int(hex_pair, 16) / 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    return 1.05 / (luminance + 0.05)


def check_colour(colour: str) -> str:
    """A #rrggbb colour dark enough for white text (WCAG AA, 4.5:1)."""
    colour = colour.strip().lower()
    if not COLOUR.match(colour):
        raise SettingsError("colour", "format", "the colour must look like #1f4e79")
    if contrast_with_white(colour) < MINIMUM_CONTRAST:
        raise SettingsError("colour", "contrast", "white text on this colour is hard to read")
    return colour


def check_origin(origin: str) -> str:
    """scheme://host[:port] of a website whose signup form may post here."""
    try:
        parts = urlsplit(origin.strip())
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:  # e.g. "https://[::1" or a port that is no number
        raise SettingsError("origins", "origin", f"not an origin: {origin!r}") from None
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password is not None
        or not port_ok
        or not re.fullmatch(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]", (parts.hostname or "").lower())
    ):
        raise SettingsError("origins", "origin", f"not an origin: {origin!r}")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def check_slug(session: Session, slug: str) -> str:
    if slug in RESERVED_SLUGS or not SLUG.match(slug):
        raise SettingsError("slug", "format", "a slug is 2-40 lower-case letters, digits, dashes")
    if session.scalar(select(Library.id).where(Library.slug == slug)):
        raise SettingsError("slug", "taken", "there is already a library with this slug")
    return slug


def parse(
    name: str,
    colour: str,
    origins: list[str],
    default_language: str,
    pause_until_reconfirmed: bool,
    retention: dict[str, str | int],
    legitimate_interest: str = LegitimateInterest.OPT_IN,
) -> Settings:
    """Check every setting; raises SettingsError for the first that is wrong."""
    name = " ".join(name.split())
    if not 2 <= len(name) <= 200:
        raise SettingsError("name", "required", "give the library's name")
    cleaned = []
    for origin in origins:
        if origin.strip():
            checked = check_origin(origin)
            if checked not in cleaned:
                cleaned.append(checked)
    if len(cleaned) > MAX_ORIGINS:
        raise SettingsError("origins", "too_many", f"at most {MAX_ORIGINS} websites")
    if default_language not in LANGUAGES:
        raise SettingsError("default_language", "language", "choose a language")
    if legitimate_interest not in LegitimateInterest.ALL:
        raise SettingsError(
            "legitimate_interest", "choice", "choose what legitimate interest means"
        )
    periods = {}
    for category in RETENTION_CATEGORIES:
        periods[category] = _retention_period(category, retention.get(category, ""))
    return Settings(
        name=name,
        colour=check_colour(colour),
        origins=tuple(cleaned),
        default_language=default_language,
        pause_until_reconfirmed=pause_until_reconfirmed,
        retention=periods,
        legitimate_interest=legitimate_interest,
    )


def _retention_period(category: str, given: str | int) -> int:
    value = str(given).strip()
    if category in OPTIONAL_RETENTION and value in ("", "0"):
        return 0
    most = MAX_RETENTION_DAYS if RETENTION_UNITS[category] == "days" else MAX_RETENTION_MONTHS
    if not (value.isascii() and value.isdigit() and len(value) <= 4) or not (
        1 <= int(value) <= most
    ):
        raise SettingsError(
            "retention", "period", f"{category}: {RETENTION_UNITS[category]} between 1 and {most}"
        )
    return int(value)


def retention_of(library: Library) -> dict[str, int]:
    """The library's retention per category; categories it never set have their default."""
    stored = library.retention or {}
    return {c: int(stored.get(c, DEFAULT_RETENTION[c])) for c in RETENTION_CATEGORIES}


def apply(library: Library, settings: Settings) -> list[str]:
    """Store checked settings; returns the names of the settings that changed (for the audit)."""
    changed = []
    for field, value in (
        ("name", settings.name),
        ("colour", settings.colour),
        ("allowed_origins", list(settings.origins)),
        ("default_language", settings.default_language),
        ("pause_until_reconfirmed", settings.pause_until_reconfirmed),
        ("retention", dict(settings.retention)),
        ("legitimate_interest", settings.legitimate_interest),
    ):
        if getattr(library, field) != value:
            setattr(library, field, value)
            changed.append(field)
    return changed
