"""Each library's own face: the sender and footer of its mails, its contact, privacy officer
and complaint link on member pages, and its logo (upload checks, serving, metadata)."""

import io
import random
import re
import struct
import zlib
from email import message_from_bytes, policy
from email.header import decode_header, make_header

import pytest
from PIL import Image, PngImagePlugin
from sqlalchemy import select

from consentsvc import library_face
from consentsvc.demo import FACES, seed_statements
from consentsvc.extensions import db
from consentsvc.models import AuditEntry, Library, LibraryLogo

from .conftest import csrf_token, signup
from .test_admin import log_in

# The form as the demo fills it for Borne, with the complaint link on.
BORNE_FACE = {**FACES["borne"], "complaint_link": "yes"}


def library_row(app, slug="borne"):
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == slug))
        db.session.expunge(library)
        return library


def stored_logo(app, slug="borne"):
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == slug))
        row = db.session.get(LibraryLogo, library.id)
        return (library.logo_sha256, row.content if row else None)


def header(app, message, name):
    """A header as a mail program shows it: decoded and unfolded."""
    with app.app_context():
        value = message_from_bytes(message.as_bytes(), policy=policy.default)[name]
    return None if value is None else str(value)


def sender(app, message):
    """(display name, address) of the From header, decoded as RFC 2047 says: the name is
    one phrase of encoded words, in which <, >, a comma or a quote are encoded, so exactly
    one address follows it and nothing of the name can become a header or an address."""
    with app.app_context():
        raw = " ".join(message_from_bytes(message.as_bytes())["From"].split())
    assert raw.count("<") == 1 and raw.count(",") == 0, raw
    phrase, address = re.fullmatch(r"(.*) <([^<>]+)>", raw).groups()
    return str(make_header(decode_header(phrase))), address


def save_face(client, **change):
    data = {**BORNE_FACE, **change}
    data["csrf_token"] = csrf_token(client, "/admin/library")
    return client.post("/admin/library/face", data=data)


def png(size=(120, 40), colour="#00666e", **save):
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG", **save)
    return out.getvalue()


def upload(client, data, name="logo.png", content_type="image/png", lang="nl"):
    token = csrf_token(client, "/admin/library")
    return client.post(
        f"/admin/library/logo?lang={lang}",
        data={"csrf_token": token, "logo": (io.BytesIO(data), name, content_type)},
        content_type="multipart/form-data",
    )


# -- mails ----------------------------------------------------------------------------------


def test_each_library_mails_from_its_own_sender_with_its_own_footer(app, client, outbox):
    signup(client, "jan@example.nl", library="borne")
    signup(client, "fatima@example.nl", library="zoetermeer")
    mails = {message.recipients[0]: message for message in outbox}
    borne, zoetermeer = mails["jan@example.nl"], mails["fatima@example.nl"]

    assert header(app, borne, "From") == "Bibliotheek Borne <nieuwsbrief@bibliotheekborne.nl>"
    assert header(app, borne, "Reply-To") == "info@bibliotheekborne.nl"
    assert header(app, zoetermeer, "From") == (
        "Bibliotheek Zoetermeer <nieuws@bibliotheekzoetermeer.nl>"
    )
    assert header(app, zoetermeer, "Reply-To") == "klantenservice@bibliotheekzoetermeer.nl"

    for part in (borne.body, borne.html):
        assert "Marktstraat 1" in part and "7622 CP Borne" in part
        assert "info@bibliotheekborne.nl" in part and "074 266 0000" in part
        assert "https://www.bibliotheekborne.nl" in part
        assert "fg@bibliotheekborne.nl" in part and "Femke de Groot" in part
        assert library_face.COMPLAINT_URL in part
        assert "Zoetermeer" not in part
    assert "Stadhuisplein 2" in zoetermeer.body and "Stadhuisplein 2" in zoetermeer.html
    assert "privacy@bibliotheekzoetermeer.nl" in zoetermeer.body
    assert "Marktstraat" not in zoetermeer.body + zoetermeer.html
    # The text footer is a signature block; the logo in HTML is on the service's own origin.
    assert "\n-- \nBibliotheek Borne\n" in borne.body
    assert 'src="http://localhost/borne/logo?v=' in borne.html
    assert 'alt="Bibliotheek Borne"' in borne.html
    assert 'src="http://localhost/zoetermeer/logo?v=' in zoetermeer.html


def test_without_a_sender_mails_come_from_the_default_address_under_the_library_name(
    app_factory,
):
    app = app_factory(MAIL_DEFAULT_SENDER="Bibliotheek <no-reply@toestemming.example>")
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        library.sender_name = library.sender_address = library.reply_to = None
        library.complaint_link = False
        # A name typed with a line break never becomes a header of its own.
        library.name = "Bibliotheek\r\nBcc: iedereen@example.nl Borne"
        db.session.commit()
    from consentsvc.extensions import mail

    with mail.record_messages() as sent:
        signup(app.test_client(), "jan@example.nl")
        from .conftest import work_outbox

        work_outbox(app)
    [message] = sent
    with app.app_context():
        raw = message.as_bytes()
    parsed = message_from_bytes(raw)
    headers = raw.partition(b"\r\n\r\n")[0]
    assert parsed["Bcc"] is None and b"\nBcc:" not in headers
    assert sender(app, message) == (
        "Bibliotheek Bcc iedereen example.nl Borne",
        "no-reply@toestemming.example",
    )
    assert parsed["Reply-To"] is None
    assert library_face.COMPLAINT_URL not in message.body + message.html


@pytest.mark.parametrize(
    "name, shown",
    [
        ("Bibliotheek Den Haag – Centrale", "Bibliotheek Den Haag – Centrale"),
        ("Bibliotheek 't Gooi & Eemland!", "Bibliotheek 't Gooi & Eemland!"),
        # A library's name as typed on the command line, in a header long enough to be
        # folded: without the header specials it stays the name of the one address.
        (
            'Bibliotheek, "De Boekenkast" (Tiel) <x@example.nl>; Café',
            "Bibliotheek De Boekenkast Tiel x example.nl Café",
        ),
    ],
)
def test_the_library_name_reaches_the_member_as_the_name_of_one_sender(
    app, client, outbox, name, shown
):
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        library.name, library.sender_name = name, None
        db.session.commit()
    signup(client, "jan@example.nl")
    [message] = list(outbox)
    assert sender(app, message) == (shown, "nieuwsbrief@bibliotheekborne.nl")


# -- the sender's domain ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain, allowed",
    [
        ("bibliotheekborne.nl", True),
        ("mail.bibliotheekborne.nl", True),
        ("BIBLIOTHEEKBORNE.NL", True),
        ("evilbibliotheekborne.nl", False),
        ("bibliotheekborne.nl.example.com", False),
        ("gmail.com", False),
        ("mailpartner.example", True),
        ("nieuws.mailpartner.example", True),
    ],
)
def test_a_from_domain_must_be_the_librarys_own_or_configured(domain, allowed):
    own = library_face.own_domain("https://www.bibliotheekborne.nl/over-ons")
    assert own == "bibliotheekborne.nl"
    assert library_face.domain_allowed(domain, own, ["mailpartner.example"]) is allowed


def test_the_console_refuses_a_from_domain_not_the_librarys_own(app):
    admin = log_in(app, "admin")
    before = library_row(app)
    refused = save_face(admin, sender_address="bibliotheek.borne@gmail.com")
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert "Er is niets opgeslagen" in page
    assert "zakt voor DMARC" in page and "bibliotheekborne.nl" in page
    assert "CONSENTSVC_SENDER_DOMAINS" in page
    # What was typed stays in the form, to correct.
    assert 'value="bibliotheek.borne@gmail.com"' in page
    no_site = save_face(admin, website="", sender_address="nieuws@bibliotheekborne.nl")
    assert no_site.status_code == 400
    assert "Geef eerst de website" in no_site.get_data(as_text=True)
    english = admin.post(
        "/admin/library/face?lang=en",
        data={
            **BORNE_FACE,
            "sender_address": "x@gmail.com",
            "csrf_token": csrf_token(admin, "/admin/library"),
        },
    )
    assert "would fail DMARC" in english.get_data(as_text=True)
    after = library_row(app)
    assert (after.sender_address, after.website) == (before.sender_address, before.website)


def test_a_configured_sender_domain_is_accepted_and_saved(app_factory):
    app = app_factory(SENDER_DOMAINS=["mailpartner.example"])
    admin = log_in(app, "admin")
    saved = save_face(
        admin,
        sender_name="Bieb Borne",
        sender_address="borne@nieuws.mailpartner.example",
        reply_to="vragen@bibliotheekborne.nl",
        complaint_link="",
    )
    assert saved.status_code == 303
    assert saved.headers["Location"] == "/admin/library?done=face_saved#face"
    library = library_row(app)
    assert library.sender_address == "borne@nieuws.mailpartner.example"
    assert (library.sender_name, library.reply_to) == ("Bieb Borne", "vragen@bibliotheekborne.nl")
    assert library.complaint_link is False
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry.action == "library.face"
        assert "sender_address" in entry.detail and "complaint_link" in entry.detail


def test_the_sender_domains_setting_may_be_one_plain_domain(app_factory, monkeypatch):
    monkeypatch.setenv("CONSENTSVC_SENDER_DOMAINS", "mailpartner.example, other.example")
    app = app_factory()
    assert app.config["SENDER_DOMAINS"] == ["mailpartner.example", "other.example"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"reply_to": "geen adres"}, "Geef een e-mailadres, zoals info@bibliotheek.nl"),
        ({"contact_email": "info@"}, "Geef een e-mailadres, zoals info@bibliotheek.nl"),
        ({"reply_to": "bjørn@bibliotheekborne.nl"}, "Geef een e-mailadres, zoals info@"),
        ({"privacy_officer_email": "fg"}, "Geef een e-mailadres, zoals fg@bibliotheek.nl"),
        ({"sender_address": "nieuws@@x"}, "zoals nieuwsbrief@bibliotheek.nl"),
        ({"contact_phone": "bel ons"}, "Geef een telefoonnummer"),
        ({"website": "javascript:alert(1)"}, "Geef de website als volledig adres"),
        ({"website": "https://exa mple.nl"}, "Geef de website als volledig adres"),
        ({"website": "https://fg:geheim@bibliotheekborne.nl"}, "Geef de website als"),
        ({"postal_address": "1\n2\n3\n4\n5\n6"}, "hoogstens 5 regels"),
        ({"sender_name": "B" * 101}, "hoogstens 100 tekens"),
        ({"sender_name": "Bieb, Borne"}, "mailheaders een speciale betekenis"),
        ({"sender_name": "Bieb <nieuws@elders.nl>"}, "mailheaders een speciale betekenis"),
    ],
)
def test_wrong_face_settings_change_nothing(app, change, message):
    admin = log_in(app, "admin")
    before = library_row(app)
    response = save_face(admin, **change)
    assert response.status_code == 400, change
    page = response.get_data(as_text=True)
    assert message in page and "Er is niets opgeslagen" in page
    after = library_row(app)
    fields = [f for f in library_face.Face.__dataclass_fields__]
    assert [getattr(after, f) for f in fields] == [getattr(before, f) for f in fields]


def test_a_sender_name_with_a_line_break_is_saved_on_one_line(app):
    admin = log_in(app, "admin")
    assert save_face(admin, sender_name="Bibliotheek\r\nBorne").status_code == 303
    assert library_row(app).sender_name == "Bibliotheek Borne"


def test_desk_staff_cannot_change_the_face(app):
    desk = log_in(app, "desk")
    data = {
        **BORNE_FACE,
        "sender_name": "Iemand anders",
        "csrf_token": csrf_token(desk, "/admin/account"),
    }
    assert desk.post("/admin/library/face", data=data).status_code == 403
    assert library_row(app).sender_name == "Bibliotheek Borne"


# -- the logo -------------------------------------------------------------------------------


def test_a_png_logo_is_stored_without_its_metadata_and_served_with_safe_headers(app, client):
    admin = log_in(app, "admin")
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jan Geheim, Dorpsstraat 3")
    exif = Image.Exif()
    exif[0x013B] = "Fotograaf Geheim"  # Artist
    original = png(pnginfo=info, exif=exif)
    assert b"Jan Geheim" in original and b"Fotograaf Geheim" in original
    saved = upload(admin, original)
    assert saved.status_code == 303
    assert saved.headers["Location"] == "/admin/library?done=logo_saved#logo"

    sha, content = stored_logo(app)
    assert b"Geheim" not in content
    decoded = Image.open(io.BytesIO(content))
    assert decoded.format == "PNG" and decoded.size == (120, 40)
    assert "Author" not in decoded.info and not decoded.getexif()

    page = client.get("/borne/signup").get_data(as_text=True)
    src = f"/borne/logo?v={sha[:16]}"
    assert f'<img class="library-logo" src="{src}" alt="Bibliotheek Borne">' in page
    served = client.get(src)
    assert served.status_code == 200 and served.data == content
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["ETag"] == f'"{sha}"'
    assert "max-age=31536000" in served.headers["Cache-Control"]
    assert "immutable" in served.headers["Cache-Control"]
    again = client.get(src, headers={"If-None-Match": f'"{sha}"'})
    assert again.status_code == 304 and again.data == b""
    # Without its version the address may name a newer logo later: cached only briefly.
    unversioned = client.get("/borne/logo")
    assert unversioned.headers["Cache-Control"] == "public, max-age=300"


def test_a_webp_logo_is_accepted_and_served_as_webp(app, client):
    admin = log_in(app, "admin")
    out = io.BytesIO()
    Image.new("RGBA", (300, 100), (122, 31, 92, 255)).save(out, format="WEBP")
    assert upload(admin, out.getvalue(), "logo.webp", "image/webp").status_code == 303
    sha, content = stored_logo(app)
    served = client.get(f"/borne/logo?v={sha[:16]}")
    assert served.data == content
    assert served.headers["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(served.data)).format == "WEBP"


def png_claiming(width, height):
    """A PNG file whose header claims this size (its pixels are not there)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        library_face.PNG_SIGNATURE
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def noisy_png(width, height):
    """A PNG of random pixels: it hardly compresses, so the file is large."""
    out = io.BytesIO()
    pixels = random.Random(7).randbytes(width * height * 3)
    Image.frombytes("RGB", (width, height), pixels).save(out, format="PNG")
    return out.getvalue()


SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(document.cookie)</script></svg>"
)
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"


@pytest.mark.parametrize(
    "data, name, content_type, message",
    [
        (SVG, "logo.svg", "image/svg+xml", "geen PNG- of WebP-afbeelding"),
        (SVG, "logo.png", "image/png", "geen PNG- of WebP-afbeelding"),
        (HTML, "logo.png", "image/png", "geen PNG- of WebP-afbeelding"),
        (b"GIF89a" + b"\x00" * 40, "logo.gif", "image/gif", "geen PNG- of WebP-afbeelding"),
        (None, "groot.png", "image/png", "groter dan 200 KB"),
        (png((1201, 10)), "breed.png", "image/png", "groter dan 1200 bij 400 pixels"),
        (png((100, 401)), "hoog.png", "image/png", "groter dan 1200 bij 400 pixels"),
        (png_claiming(30000, 30000), "bom.png", "image/png", "groter dan 1200 bij 400"),
        (png()[:60], "kapot.png", "image/png", "beschadigd of niet te lezen"),
        (png_claiming(100, 40), "leeg.png", "image/png", "beschadigd of niet te lezen"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "kapot.webp", "image/webp", "beschadigd"),
        (b"", "leeg.png", "image/png", "Kies een PNG- of WebP-bestand"),
    ],
)
def test_a_wrong_logo_is_refused_clearly_and_changes_nothing(
    app, client, data, name, content_type, message
):
    if data is None:
        # Under the test client's 500 KB, beyond which it spools the body to a file.
        data = noisy_png(400, 200)
        assert len(data) > library_face.LOGO_MAX_BYTES
    admin = log_in(app, "admin")
    before = stored_logo(app)
    refused = upload(admin, data, name, content_type)
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert message in page and "Het logo is niet veranderd" in page
    assert stored_logo(app) == before
    served = client.get("/borne/logo")
    assert served.data == before[1] and served.headers["Content-Type"] == "image/png"


def test_logo_errors_are_in_english_too(app):
    admin = log_in(app, "admin")
    page = upload(admin, SVG, "logo.svg", "image/svg+xml", lang="en").get_data(as_text=True)
    assert "This file is no PNG or WebP image" in page and "no SVG" in page


def test_a_file_far_too_large_is_refused_before_it_is_read(app):
    admin = log_in(app, "admin")
    before = stored_logo(app)
    token = csrf_token(admin, "/admin/library")
    body = (
        (
            f'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
            '--b\r\nContent-Disposition: form-data; name="logo"; filename="logo.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + library_face.PNG_SIGNATURE
        + b"\x00" * library_face.LOGO_UPLOAD_LIMIT
    )
    response = admin.post(
        "/admin/library/logo", data=body + b"\r\n--b--\r\n",
        content_type="multipart/form-data; boundary=b",
    )  # fmt: skip
    assert response.status_code == 413
    assert stored_logo(app) == before


def test_a_name_with_control_characters_is_refused():
    fields = {f: "" for f in library_face.Face.__dataclass_fields__ if f != "complaint_link"}
    with pytest.raises(library_face.SettingsError) as refused:
        library_face.parse(
            **{**fields, "privacy_officer_name": "Femke\x1b[31m"},
            complaint_link=False, sender_domains=[],
        )  # fmt: skip
    assert (refused.value.field, refused.value.code) == ("privacy_officer_name", "name")


def test_removing_the_logo_shows_the_name_again(app, client):
    admin = log_in(app, "admin")
    token = csrf_token(admin, "/admin/library")
    removed = admin.post("/admin/library/logo/remove", data={"csrf_token": token})
    assert removed.headers["Location"] == "/admin/library?done=logo_removed#logo"
    assert stored_logo(app) == (None, None)
    assert client.get("/borne/logo").status_code == 404
    page = client.get("/borne/signup").get_data(as_text=True)
    assert '<p class="library-name">Bibliotheek Borne</p>' in page
    assert "library-logo" not in page
    # Mails show the name instead of a logo.
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry.action == "library.logo_removed"


# -- member pages -------------------------------------------------------------------------------


def test_member_pages_show_the_librarys_logo_contact_privacy_officer_and_complaint_link(client):
    page = client.get("/borne/signup").get_data(as_text=True)
    assert 'class="library-logo" src="/borne/logo?v=' in page and 'alt="Bibliotheek Borne"' in page
    assert "Marktstraat 1<br>7622 CP Borne" in page
    assert '<a href="mailto:info@bibliotheekborne.nl">' in page
    assert '<a href="tel:0742660000">074 266 0000</a>' in page
    assert (
        '<a href="https://www.bibliotheekborne.nl">Naar de website van Bibliotheek Borne</a>'
        in (page)
    )
    assert "privacy-functionaris (Femke de Groot)" in page
    assert '<a href="mailto:fg@bibliotheekborne.nl">' in page
    assert f'<a href="{library_face.COMPLAINT_URL}">' in page
    other = client.get("/zoetermeer/preferences").get_data(as_text=True)
    assert "privacy@bibliotheekzoetermeer.nl" in other and "Marktstraat" not in other


def test_the_complaint_link_shows_only_where_the_library_enables_it(app, client):
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        library.complaint_link = False
        db.session.commit()
    assert library_face.COMPLAINT_URL not in client.get("/borne/signup").get_data(as_text=True)
    assert library_face.COMPLAINT_URL in client.get("/zoetermeer/signup").get_data(as_text=True)


def test_the_postal_address_is_escaped_on_pages(app, client):
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        library.postal_address = "<script>alert(1)</script>\nBorne"
        db.session.commit()
    page = client.get("/borne/signup").get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;<br>Borne" in page


def test_console_pages_carry_no_member_footer(app, client):
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        seed_statements(db.session, library)
        db.session.commit()
    # Member pages link to the statement in effect; the console is for staff, and does not.
    assert 'class="privacy-statement"' in client.get("/borne/signup").get_data(as_text=True)
    admin = log_in(app, "admin")
    page = admin.get("/admin/library").get_data(as_text=True)
    assert "library-contact" not in page
    assert 'class="privacy-statement"' not in page
    # The settings page shows the face as stored, to change.
    assert 'value="nieuwsbrief@bibliotheekborne.nl"' in page
    assert "Marktstraat 1\n7622 CP Borne</textarea>" in page


def test_every_kind_of_mail_carries_the_library_footer():
    """Each mail the service sends (mailer.SUBJECT_LINES) ends with the library's footer, in
    text and in HTML: a new kind of mail cannot forget the address, contact and FG."""
    from pathlib import Path

    from consentsvc import mailer

    folder = Path(mailer.__file__).parent / "templates" / "email"
    for kind in mailer.SUBJECT_LINES:
        text = (folder / f"{kind}.txt").read_text(encoding="utf-8")
        html = (folder / f"{kind}.html").read_text(encoding="utf-8")
        assert text.rstrip().endswith('{% include "email/_footer.txt" %}'), kind
        assert '{% extends "email/_layout.html" %}' in html, kind
