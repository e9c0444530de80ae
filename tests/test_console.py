"""The console's own settings: passwords, login codes, library settings, several libraries."""

import re
import time

import pytest
from sqlalchemy import select

from consentsvc import ledger, libraries, staff
from consentsvc.extensions import db
from consentsvc.libraries import DEFAULT_RETENTION, RETENTION_CATEGORIES
from consentsvc.models import AuditEntry, Library, StaffUser, WebhookEndpoint

from .conftest import csrf_token
from .test_admin import PASSWORD, log_in, person


def post(client, path, **data):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, "/admin/account")})


def login_form(client, email, password=PASSWORD):
    token = csrf_token(client, "/admin/login")
    return client.post(
        "/admin/login", data={"email": email, "password": password, "csrf_token": token}
    )


def send_code(client, code):
    token = csrf_token(client, "/admin/login/code")
    return client.post("/admin/login/code", data={"code": code, "csrf_token": token})


def staff_row(app, email):
    with app.app_context():
        user = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
        if user is not None:
            db.session.expunge(user)
        return user


def test_totp_codes_follow_rfc_6238():
    # RFC 6238 appendix B (SHA-1 seed "12345678901234567890"), the last six of eight digits.
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    assert staff.totp_code(secret, 59 // 30) == "287082"
    assert staff.totp_code(secret, 1111111109 // 30) == "081804"
    assert staff.totp_matches(secret, "287 082", None, now=59) == 1
    assert staff.totp_matches(secret, "287082", 1, now=59) is None  # already used
    assert staff.totp_matches(secret, "28708x", None, now=59) is None


def set_up_code(app, client):
    """Switch on the login code as a staff member would, reading the key off the page."""
    started = post(client, "/admin/account/code", action="start")
    assert started.status_code == 303  # a reload shows the same key, it makes no new one
    page = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "<svg" in page and "<title>" in page  # the QR code, with a text alternative
    secret = re.search(r'<code class="secret">([A-Z2-7]{32})</code>', page).group(1)
    assert secret in client.get("/admin/account").get_data(as_text=True)
    wrong = post(client, "/admin/account/code", code="000000")
    if staff.totp_matches(secret, "000000", None) is None:
        assert wrong.status_code == 400
        assert "Deze code klopt niet" in wrong.get_data(as_text=True)
    # The previous step's code, so the next login can use the current one.
    step = int(time.time() // 30)
    done = post(client, "/admin/account/code", code=staff.totp_code(secret, step - 1))
    assert done.status_code == 303
    return secret, step


def test_login_code_is_asked_after_the_password(app):
    client = log_in(app, "privacy_officer")
    email = "privacy_officer.borne@bibliotheek.example"
    secret, step = set_up_code(app, client)
    assert staff_row(app, email).totp_secret == secret

    fresh = app.test_client()
    first = login_form(fresh, email)
    assert first.headers["Location"] == "/admin/login/code"
    # Between the two steps, the console stays shut.
    assert fresh.get("/admin/").status_code == 302
    bad = send_code(fresh, "12345x")
    assert bad.status_code == 401
    assert "Deze code klopt niet of is al gebruikt" in bad.get_data(as_text=True)
    # The code used to switch it on cannot be used again.
    assert send_code(fresh, staff.totp_code(secret, step - 1)).status_code == 401
    good = send_code(fresh, staff.totp_code(secret, step))
    assert good.status_code == 303
    assert fresh.get("/admin/").status_code == 200
    # A code works once: replaying it from another browser fails.
    other = app.test_client()
    login_form(other, email)
    assert send_code(other, staff.totp_code(secret, step)).status_code == 401


def test_wrong_codes_lock_the_account_even_with_the_right_password(app):
    client = log_in(app, "admin")
    email = "admin.borne@bibliotheek.example"
    secret, _ = set_up_code(app, client)
    wrong = next(c for c in ("000000", "111111") if staff.totp_matches(secret, c, None) is None)
    attacker = app.test_client()
    for _ in range(staff.MAX_FAILURES):
        # Knowing the password does not reset the count of wrong codes.
        assert login_form(attacker, email).status_code == 303
        assert send_code(attacker, wrong).status_code == 401
    assert staff_row(app, email).locked_until is not None
    assert login_form(attacker, email).status_code == 401


def test_switching_the_code_off_needs_the_password(app):
    client = log_in(app, "desk")
    email = "desk.borne@bibliotheek.example"
    set_up_code(app, client)
    refused = post(client, "/admin/account/code", action="remove", current="raden maar")
    assert refused.status_code == 400
    assert staff_row(app, email).totp_secret is not None
    post(client, "/admin/account/code", action="remove", current=PASSWORD)
    assert staff_row(app, email).totp_secret is None
    assert login_form(app.test_client(), email).headers["Location"] == "/admin/"


def test_staff_change_their_own_password(app):
    client = log_in(app, "desk")
    email = "desk.borne@bibliotheek.example"
    new = "een nieuw en lang wachtwoord"
    cases = [
        ({"current": "fout fout fout", "new": new, "repeat": new}, "huidige wachtwoord klopt niet"),
        ({"current": PASSWORD, "new": "kort", "repeat": "kort"}, "minstens 12 tekens"),
        ({"current": PASSWORD, "new": new, "repeat": new + "!"}, "niet hetzelfde"),
        ({"current": PASSWORD, "new": PASSWORD, "repeat": PASSWORD}, "anders is dan het oude"),
    ]
    for form, message in cases:
        response = post(client, "/admin/account/password", **form)
        assert response.status_code == 400
        assert message in response.get_data(as_text=True)
    assert login_form(app.test_client(), email).status_code == 303  # unchanged so far
    done = post(client, "/admin/account/password", current=PASSWORD, new=new, repeat=new)
    assert done.headers["Location"] == "/admin/account?done=password"
    assert login_form(app.test_client(), email).status_code == 401
    assert login_form(app.test_client(), email, new).status_code == 303
    assert staff_row(app, email).password_changed_at is not None


SETTINGS = {
    "name": "Bibliotheek Borne",
    "colour": "#7a1f5c",
    "origins": "https://www.bibliotheekborne.nl\r\nhttps://Lezen.Borne.nl:8443/",
    "default_language": "en",
    "pause_until_reconfirmed": "",
    "legitimate_interest": "opt_in",
    "retention_contact_after_membership": "6",
    "retention_payment": "84",
    "retention_inactive": "60",
    **{
        f"retention_{category}": str(DEFAULT_RETENTION[category])
        for category in RETENTION_CATEGORIES[3:]
    },
}


def library_row(app, slug="borne"):
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == slug))
        db.session.expunge(library)
        return library


def test_admin_changes_the_library_settings(app, client):
    admin = log_in(app, "admin")
    page = admin.get("/admin/library").get_data(as_text=True)
    assert "Instellingen van de bibliotheek" in page
    assert 'value="Bibliotheek Borne"' in page
    saved = post(admin, "/admin/library", **SETTINGS)
    assert saved.headers["Location"] == "/admin/library?done=saved"
    library = library_row(app)
    assert library.colour == "#7a1f5c"
    assert library.allowed_origins == [
        "https://www.bibliotheekborne.nl",
        "https://lezen.borne.nl:8443",
    ]
    assert library.default_language == "en"
    assert library.pause_until_reconfirmed is False
    assert library.retention["inactive"] == 60
    assert "--brand: #7a1f5c" in client.get("/borne/theme.css").get_data(as_text=True)
    # The new website may now post the signup form from its own pages.
    cross_site = client.post(
        "/borne/signup",
        data={"email": "lezer@example.nl", "purpose": "newsletter"},
        headers={"Origin": "https://lezen.borne.nl:8443"},
    )
    assert cross_site.status_code == 303  # taken: on to the "check your mail" page
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry.action == "library.settings"
        assert "colour" in entry.detail and "allowed_origins" in entry.detail


def test_wrong_settings_change_nothing(app):
    admin = log_in(app, "admin")
    before = library_row(app)
    cases = [
        # White text on it would be unreadable: the figure, and what to do.
        ({"colour": "#ffeeaa"}, "Witte tekst op #ffeeaa heeft een contrast van 1,2 : 1."),
        ({"colour": "rood"}, "donker genoeg"),
        ({"colour": " "}, "Vul de kleur van de bibliotheek in"),
        ({"origins": "https://ok.example.nl\nwww.zonder-schema.nl"}, "een per regel"),
        ({"origins": "https://example.nl/pad"}, "een per regel"),
        ({"origins": "https://[::1"}, "een per regel"),
        ({"origins": "https://exa mple.nl"}, "een per regel"),
        ({"origins": "https://:geheim@example.nl"}, "een per regel"),
        ({"retention_payment": "0" * 5000 + "6"}, "van 1 tot 240"),
        ({"retention_payment": "0"}, "van 1 tot 240"),
        ({"retention_inactive": "veel"}, "van 1 tot 240"),
        ({"retention_outbox": "3651"}, "van 1 tot 3650"),
        ({"retention_pending_signup": ""}, "van 1 tot 3650"),
        ({"name": " "}, "naam van de bibliotheek"),
        ({"default_language": "de"}, "Kies een taal"),
    ]
    for change, message in cases:
        response = post(admin, "/admin/library", **{**SETTINGS, **change})
        assert response.status_code == 400, change
        page = response.get_data(as_text=True)
        assert message in page, change
        assert "Er is niets opgeslagen" in page
    after = library_row(app)
    assert (after.colour, after.allowed_origins, after.retention) == (
        before.colour,
        before.allowed_origins,
        before.retention,
    )


def test_the_colour_setting_shows_a_preview_with_its_contrast(app):
    admin = log_in(app, "admin")
    page = admin.get("/admin/library").get_data(as_text=True)
    colour = library_row(app).colour
    figure = f"{libraries.contrast_with_white(colour):.1f}".replace(".", ",")
    preview = page[page.index('id="colour-preview"') : page.index("</figure>")]
    assert f'<strong class="contrast-figure">{figure} : 1</strong>' in preview
    assert "genoeg voor witte tekst" in preview and "Bibliotheek Borne" in preview
    # The picker is there for JavaScript to show; the text field is what is sent.
    assert '<input type="color" id="colour-picker" value="' + colour + '"' in page
    assert 'name="colour"' not in page[page.index('id="colour-picker"') - 40 :][:200]
    english = admin.get("/admin/library?lang=en").get_data(as_text=True)
    assert f"{figure.replace(',', '.')} : 1" in english and "enough for white text" in english


def two_library_admin(app):
    """An admin of Borne who also looks after Zoetermeer, logged in."""
    with app.app_context():
        borne, zoetermeer = (
            db.session.scalar(select(Library).where(Library.slug == slug))
            for slug in ("borne", "zoetermeer")
        )
        user = staff.create(
            db.session, borne, "regio@bibliotheek.example", "Regio", "admin", PASSWORD
        )
        staff.add_library(user, zoetermeer)
        db.session.commit()
        zoetermeer_id = zoetermeer.id
    client = app.test_client()
    assert login_form(client, "regio@bibliotheek.example").status_code == 303
    return client, zoetermeer_id


def test_an_admin_of_several_libraries_switches_between_them(app):
    client, zoetermeer_id = two_library_admin(app)
    in_zoetermeer = person(app, "piet@example.nl", "zoetermeer")
    in_borne = person(app, "jan@example.nl", "borne")
    page = client.get("/admin/").get_data(as_text=True)
    assert 'id="switch-library"' in page and "Bibliotheek Zoetermeer" in page
    assert client.get(f"/admin/subjects/{in_zoetermeer}").status_code == 404
    post(client, "/admin/library/switch", library=str(zoetermeer_id))
    assert "piet@example.nl" in client.get(f"/admin/subjects/{in_zoetermeer}").get_data(
        as_text=True
    )
    # One library at a time: Borne's people are out of sight while working for Zoetermeer.
    assert client.get(f"/admin/subjects/{in_borne}").status_code == 404
    assert "Bibliotheek Zoetermeer" in client.get("/admin/library").get_data(as_text=True)
    with app.app_context():
        view = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "view")).one()
        assert view.library_id == zoetermeer_id


def test_staff_cannot_switch_to_a_library_they_do_not_look_after(app):
    desk = log_in(app, "desk")
    zoetermeer_id = library_row(app, "zoetermeer").id
    assert post(desk, "/admin/library/switch", library=str(zoetermeer_id)).status_code == 404
    in_zoetermeer = person(app, "piet@example.nl", "zoetermeer")
    assert desk.get(f"/admin/subjects/{in_zoetermeer}").status_code == 404
    assert 'id="switch-library"' not in desk.get("/admin/").get_data(as_text=True)


def test_only_admins_look_after_several_libraries(app):
    client, zoetermeer_id = two_library_admin(app)
    desk = post(
        client, "/admin/staff", name="Bas", email="bas@bibliotheek.example", role="desk",
        password="een lang genoeg wachtwoord", also=str(zoetermeer_id),
    )  # fmt: skip
    assert desk.status_code == 400
    assert staff_row(app, "bas@bibliotheek.example") is None
    added = post(
        client, "/admin/staff", name="Ria", email="ria@bibliotheek.example", role="admin",
        password="een lang genoeg wachtwoord", also=str(zoetermeer_id),
    )  # fmt: skip
    assert added.status_code == 303
    with app.app_context():
        ria = db.session.scalar(
            select(StaffUser).where(StaffUser.email == "ria@bibliotheek.example")
        )
        assert [lib.slug for lib in ria.libraries] == ["borne", "zoetermeer"]


def test_admin_starts_a_new_library(app):
    client, _ = two_library_admin(app)
    # On a page of its own, linked from the settings; no longer a form on the settings page.
    settings = client.get("/admin/library").get_data(as_text=True)
    assert '<a href="/admin/libraries/new">Een nieuwe bibliotheek</a>' in settings
    assert 'action="/admin/libraries"' not in settings
    form = client.get("/admin/libraries/new").get_data(as_text=True)
    assert "<h1>Een nieuwe bibliotheek</h1>" in form and 'action="/admin/libraries"' in form
    taken = post(client, "/admin/libraries", name="Nog een Borne", slug="borne")
    assert taken.status_code == 400
    page = taken.get_data(as_text=True)
    assert "niet in gebruik" in page and "<h1>Een nieuwe bibliotheek</h1>" in page
    assert 'value="Nog een Borne"' in page  # what was typed stays
    reserved = post(client, "/admin/libraries", name="Beheer", slug="admin")
    assert reserved.status_code == 400
    done = post(client, "/admin/libraries", name="Bibliotheek Hengelo", slug="hengelo")
    assert done.headers["Location"] == "/admin/library?done=added"
    assert "Bibliotheek Hengelo" in client.get("/admin/library").get_data(as_text=True)
    with app.app_context():
        hengelo = db.session.scalar(select(Library).where(Library.slug == "hengelo"))
        assert [p.code for p in hengelo.purposes] == [
            "newsletter",
            "acquisitions",
            "direct_marketing",
            "direct_debit",
        ]
        assert ledger.find_subject(db.session, hengelo, "x@example.nl") is None
    assert client.get("/hengelo/signup").status_code == 200


def test_staff_create_command_for_several_libraries(app, runner):
    result = runner.invoke(
        args=[
            "staff", "create", "--library", "borne", "--also", "zoetermeer",
            "--email", "regio@bibliotheek.example", "--name", "Regio", "--role", "admin",
            "--password", PASSWORD,
        ]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "for borne, zoetermeer" in result.output
    refused = runner.invoke(
        args=[
            "staff", "create", "--library", "borne", "--also", "zoetermeer",
            "--email", "balie@bibliotheek.example", "--name", "Balie", "--role", "desk",
            "--password", PASSWORD,
        ]
    )  # fmt: skip
    assert refused.exit_code != 0
    assert "only admins" in refused.output
    assert staff_row(app, "balie@bibliotheek.example") is None


def test_a_page_from_before_a_switch_of_library_changes_nothing(app):
    client, zoetermeer_id = two_library_admin(app)
    navy = {**SETTINGS, "colour": "#123456"}
    borne_id = library_row(app).id
    post(client, "/admin/library/switch", library=str(zoetermeer_id))
    # A settings page for Borne, still open in another tab.
    stale = post(client, "/admin/library", **navy, working_in=str(borne_id))
    assert stale.status_code == 409
    assert "naar een andere bibliotheek gewisseld" in stale.get_data(as_text=True)
    assert library_row(app, "zoetermeer").colour == "#7a1f5c"
    fresh = post(client, "/admin/library", **navy, working_in=str(zoetermeer_id))
    assert fresh.status_code == 303
    assert library_row(app, "zoetermeer").colour == "#123456"


def test_access_to_another_library_is_listed_there_and_can_be_taken_away(app):
    regio, zoetermeer_id = two_library_admin(app)
    local = log_in(app, "admin", "zoetermeer")
    page = local.get("/admin/staff").get_data(as_text=True)
    assert "Regio" in page and "Toegang tot deze bibliotheek weghalen…" in page
    regio_id = staff_row(app, "regio@bibliotheek.example").id
    post(regio, "/admin/library/switch", library=str(zoetermeer_id))
    token = csrf_token(local, "/admin/staff")
    done = local.post(f"/admin/staff/{regio_id}/access/remove", data={"csrf_token": token})
    assert done.status_code == 303
    # Their session pointed at Zoetermeer: it quietly returns to their home library.
    assert "Bibliotheek Borne" in regio.get("/admin/library").get_data(as_text=True)
    assert post(regio, "/admin/library/switch", library=str(zoetermeer_id)).status_code == 404
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.library_id == zoetermeer_id)
        ).all()
        assert "staff.access_removed" in actions


def test_changing_the_password_or_code_ends_other_sessions(app):
    client = log_in(app, "desk")
    email = "desk.borne@bibliotheek.example"
    other = app.test_client()
    assert login_form(other, email).status_code == 303
    new = "een nieuw en lang wachtwoord"
    post(client, "/admin/account/password", current=PASSWORD, new=new, repeat=new)
    assert client.get("/admin/").status_code == 200  # this session goes on
    assert other.get("/admin/").status_code == 302  # the other one is logged out


def test_a_login_code_is_not_replaced_without_switching_it_off(app):
    client = log_in(app, "desk")
    secret, _ = set_up_code(app, client)
    again = post(client, "/admin/account/code", action="start")
    assert again.status_code == 400
    assert "Zet die eerst uit" in again.get_data(as_text=True)
    forced = post(client, "/admin/account/code", secret="A" * 32, code="123456")
    assert forced.status_code == 400
    assert staff_row(app, "desk.borne@bibliotheek.example").totp_secret == secret


def test_wrong_codes_are_audited_and_a_lost_phone_is_reset_on_the_command_line(app, runner):
    client = log_in(app, "desk")
    email = "desk.borne@bibliotheek.example"
    secret, _ = set_up_code(app, client)
    wrong = next(c for c in ("000000", "111111") if staff.totp_matches(secret, c, None) is None)
    guesser = app.test_client()
    login_form(guesser, email)
    send_code(guesser, wrong)
    with app.app_context():
        actions = db.session.scalars(select(AuditEntry.action)).all()
        assert "login.code_wrong" in actions
    result = runner.invoke(args=["staff", "reset-code", "--email", email])
    assert result.exit_code == 0, result.output
    assert staff_row(app, email).totp_secret is None
    assert login_form(app.test_client(), email).headers["Location"] == "/admin/"


# -- webhook addresses that are refused -------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "url", "message"),
    [
        ("nl", "http://hooks.example.nl/consent", "Alleen adressen die met https:// beginnen"),
        ("en", "http://hooks.example.nl/consent", "Only addresses that start with https://"),
        ("nl", "https://hooks.example.invalid/consent", "hooks.example.invalid is niet te vinden"),
        ("en", "https://hooks.example.invalid/consent", "hooks.example.invalid cannot be found"),
        ("nl", "https://10.0.0.5/consent", "10.0.0.5 is een intern adres"),
        ("en", "https://10.0.0.5/consent", "10.0.0.5 is an internal address"),
        ("nl", "https://jan:geheim@hooks.example.nl/x", "zonder gebruikersnaam"),
        ("en", "https://jan:geheim@hooks.example.nl/x", "without a user name"),
    ],
)
def test_a_refused_webhook_address_is_explained_in_the_console_language(app, lang, url, message):
    admin = log_in(app, "admin")
    response = admin.post(
        f"/admin/webhooks?lang={lang}",
        data={
            "url": url,
            "event": ["consent.withdrawn", "consent.granted"],
            "csrf_token": csrf_token(admin, "/admin/webhooks"),
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    for english in ("only https URLs", "cannot resolve", "non-public", "no user name"):
        assert english not in page
    # What was typed and ticked is still there to correct.
    assert f'value="{url}"' in page
    assert re.search(r'value="consent.granted" checked', page)
    assert not re.search(r'value="subject.erased" checked', page)
    with app.app_context():
        assert db.session.scalar(select(WebhookEndpoint)) is None


def test_a_webhook_without_events_is_refused_in_staff_words(app):
    admin = log_in(app, "admin")
    response = admin.post(
        "/admin/webhooks",
        data={"url": "https://1.1.1.1/hook", "csrf_token": csrf_token(admin, "/admin/webhooks")},
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Kies minstens één gebeurtenis" in page and 'value="https://1.1.1.1/hook"' in page
