"""A library's own face: the sender of its mails, the contact in their footer and on its
member pages, its website, its privacy officer, and its logo.

Checks what an admin gives (SettingsError, like libraries.py, with a field and a code the
console translates) and stores it; knows no request and no HTML. Callers commit.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from PIL import Image, UnidentifiedImageError
from sqlalchemy.orm import Session

from .libraries import SettingsError
from .models import Library, LibraryLogo

# The Autoriteit Persoonsgegevens' own page on complaining about how data is handled.
COMPLAINT_URL = "https://autoriteitpersoonsgegevens.nl/een-tip-of-klacht-indienen-bij-de-ap"

# A logo is small: a header on a phone, the top of a mail. Limits on the file and on the
# image, so neither a large file nor a small file that unpacks into a huge image gets in.
LOGO_MAX_BYTES = 200 * 1024
LOGO_MAX_WIDTH, LOGO_MAX_HEIGHT = 1200, 400
# The largest request body the logo upload accepts at all: files a little too large still
# reach the check and get its clear answer instead of a bare 413.
LOGO_UPLOAD_LIMIT = 4 * 1024 * 1024
LOGO_TYPES = {"PNG": "image/png", "WEBP": "image/webp"}
# How the file itself begins, whatever its name or Content-Type says.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Characters with a meaning in an address header. Python's mail package, refolding a long
# From header, takes them out of the encoded name again, and "Bieb, Borne" would become two
# addresses: a From name never holds them.
HEADER_SPECIALS = re.compile(r'[()<>@,;:\\"\[\]]')
PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{5,24}$")
MAX_ADDRESS_LINES = 5
MAX_NAME = 100
MAX_POSTAL = 300


@dataclass(frozen=True)
class Face:
    """Checked settings; None where not given."""

    sender_name: str | None
    sender_address: str | None
    reply_to: str | None
    website: str | None
    postal_address: str | None
    contact_email: str | None
    contact_phone: str | None
    privacy_officer_name: str | None
    privacy_officer_email: str | None
    complaint_link: bool


@dataclass(frozen=True)
class Logo:
    """A checked logo, re-encoded without any metadata."""

    mimetype: str
    content: bytes
    width: int
    height: int
    sha256: str


def own_domain(website: str | None) -> str | None:
    """The library's own mail domain: its website's host without a leading www."""
    if not website:
        return None
    host = (urlsplit(website).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host or None


def domain_allowed(domain: str, library_domain: str | None, configured: list[str]) -> bool:
    """A From domain is the library's own (or a subdomain of it), or one that is configured."""
    domain = domain.lower().rstrip(".")
    allowed = [d.lower().strip().rstrip(".") for d in configured if d.strip()]
    if library_domain:
        allowed.append(library_domain)
    return any(domain == d or domain.endswith("." + d) for d in allowed)


def parse(
    *,
    sender_name: str,
    sender_address: str,
    reply_to: str,
    website: str,
    postal_address: str,
    contact_email: str,
    contact_phone: str,
    privacy_officer_name: str,
    privacy_officer_email: str,
    complaint_link: bool,
    sender_domains: list[str],
) -> Face:
    """Check every setting; raises SettingsError for the first that is wrong."""
    site = _website(website)
    sender = _address("sender_address", sender_address)
    if sender is not None:
        domain = sender.rpartition("@")[2]
        if not domain_allowed(domain, own_domain(site), sender_domains):
            raise SettingsError("sender_address", "domain", f"{domain} is not the library's own")
    return Face(
        sender_name=_sender_name(sender_name),
        sender_address=sender,
        reply_to=_address("reply_to", reply_to),
        website=site,
        postal_address=_postal(postal_address),
        contact_email=_address("contact_email", contact_email),
        contact_phone=_phone(contact_phone),
        privacy_officer_name=_name("privacy_officer_name", privacy_officer_name),
        privacy_officer_email=_address("privacy_officer_email", privacy_officer_email),
        complaint_link=complaint_link,
    )


def apply(library: Library, face: Face) -> list[str]:
    """Store checked settings; returns the names of the settings that changed (for the audit)."""
    changed = []
    for field in Face.__dataclass_fields__:
        value = getattr(face, field)
        if getattr(library, field) != value:
            setattr(library, field, value)
            changed.append(field)
    return changed


def sender_of(library: Library, default_sender: str) -> tuple[str, str | None]:
    """(From, Reply-To) of the library's mails, each a header value on one line.

    Without an own sender, the service's default address under the library's name, so that
    a member still sees who writes.
    """
    address = library.sender_address or parseaddr(default_sender)[1] or default_sender
    # A library's name may hold anything typed on the command line; without the header
    # specials, and on one line, it can only ever be the display name of one address.
    name = " ".join(HEADER_SPECIALS.sub(" ", library.sender_name or library.name).split())
    # Quoted, not RFC 2047-encoded: Flask-Mail parses this and encodes the name itself
    # (formataddr's encoding would be encoded twice).
    return f'"{name}" <{address}>', library.reply_to or None


def check_logo(data: bytes) -> Logo:
    """Decode an uploaded file and re-encode it; raises SettingsError (field "logo") when it
    is no PNG or WebP, too large, or cannot be read."""
    if not data:
        raise SettingsError("logo", "missing", "no file")
    if len(data) > LOGO_MAX_BYTES:
        raise SettingsError("logo", "too_large", f"more than {LOGO_MAX_BYTES} bytes")
    looks_like_image = data.startswith(PNG_SIGNATURE) or (
        data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    )
    try:
        # Only these two decoders are tried: an SVG, HTML or GIF is never opened at all.
        image = Image.open(io.BytesIO(data), formats=list(LOGO_TYPES))
    except UnidentifiedImageError:
        code = "corrupt" if looks_like_image else "type"
        raise SettingsError("logo", code, "not a PNG or WebP image") from None
    except Image.DecompressionBombError:  # a header claiming hundreds of millions of pixels
        raise SettingsError("logo", "dimensions", "far too many pixels") from None
    except (OSError, ValueError, SyntaxError):
        raise SettingsError("logo", "corrupt", "the image cannot be read") from None
    with image:
        width, height = image.size
        # Before decoding the pixels: a small file may unpack into an enormous image.
        if width > LOGO_MAX_WIDTH or height > LOGO_MAX_HEIGHT or not width or not height:
            raise SettingsError("logo", "dimensions", f"{width} x {height} pixels")
        kind = image.format or ""
        try:
            image.load()
            content = _reencode(image, kind)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise SettingsError("logo", "corrupt", "the image cannot be read") from None
    if len(content) > LOGO_MAX_BYTES:
        raise SettingsError("logo", "too_large", f"more than {LOGO_MAX_BYTES} bytes re-encoded")
    return Logo(LOGO_TYPES[kind], content, width, height, hashlib.sha256(content).hexdigest())


def store_logo(session: Session, library: Library, logo: Logo) -> None:
    """Replace the library's logo with a checked one."""
    row = session.get(LibraryLogo, library.id)
    if row is None:
        row = LibraryLogo(library_id=library.id)
        session.add(row)
    row.mimetype, row.content = logo.mimetype, logo.content
    row.width, row.height = logo.width, logo.height
    library.logo_sha256 = logo.sha256


def remove_logo(session: Session, library: Library) -> bool:
    """Remove the library's logo; False when it had none."""
    row = session.get(LibraryLogo, library.id)
    had = row is not None or library.logo_sha256 is not None
    if row is not None:
        session.delete(row)
    library.logo_sha256 = None
    return had


def logo_of(session: Session, library: Library) -> LibraryLogo | None:
    return session.get(LibraryLogo, library.id) if library.logo_sha256 else None


def _reencode(image: Image.Image, kind: str) -> bytes:
    # A fresh image of the pixels only: no text chunks, EXIF, XMP, ICC profile or comments
    # survive (they may carry names, places, software). The first frame of an animation.
    mode = "RGBA" if image.mode not in ("RGB", "RGBA", "L", "LA") else image.mode
    pixels = image.convert(mode)
    clean = Image.new(pixels.mode, pixels.size)
    clean.paste(pixels)
    out = io.BytesIO()
    if kind == "PNG":
        clean.save(out, format="PNG", optimize=True)
    else:
        clean.save(out, format="WEBP", lossless=True, quality=80)
    return out.getvalue()


def _website(given: str) -> str | None:
    value = given.strip()
    if not value:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError:
        raise SettingsError("website", "format", "not a web address") from None
    host = (parts.hostname or "").lower()
    if (
        parts.scheme not in ("https", "http")
        or not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", host)
        or parts.username
        or parts.password is not None
        or len(value) > 300
        or any(c.isspace() or ord(c) < 32 for c in value)
    ):
        raise SettingsError("website", "format", "not a web address")
    return value


def _address(field: str, given: str) -> str | None:
    value = given.strip()
    if not value:
        return None
    try:
        # The library's own addresses go into headers and mailto: links: plain ASCII ones.
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        raise SettingsError(field, "email", "not an e-mail address") from None
    if len(checked.normalized) > 254:
        raise SettingsError(field, "email", "not an e-mail address")
    return checked.normalized


def _name(field: str, given: str) -> str | None:
    # A name goes into a From header or next to an address: one line, no control characters.
    value = " ".join(given.split())
    if not value:
        return None
    if len(value) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise SettingsError(field, "name", "a name of at most 100 characters")
    return value


def _sender_name(given: str) -> str | None:
    value = _name("sender_name", given)
    if value is not None and HEADER_SPECIALS.search(value):
        raise SettingsError("sender_name", "specials", "a From name without , ; : < > ( ) [ ] @")
    return value


def _postal(given: str) -> str | None:
    lines = [" ".join(line.split()) for line in given.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return None
    value = "\n".join(lines)
    if (
        len(lines) > MAX_ADDRESS_LINES
        or len(value) > MAX_POSTAL
        or any(ord(c) < 32 and c != "\n" for c in value)
    ):
        raise SettingsError("postal_address", "postal", "at most 5 lines, 300 characters")
    return value


def _phone(given: str) -> str | None:
    value = " ".join(given.split())
    if not value:
        return None
    if not PHONE.match(value):
        raise SettingsError("contact_phone", "phone", "not a phone number")
    return value
