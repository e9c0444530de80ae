"""The staff console: login, roles, libraries kept apart, search, recording, audit."""

import re
import time
from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy import func, select

from consentsvc import ledger, staff
from consentsvc.extensions import db
from consentsvc.models import AuditEntry, Library, StaffUser, Subject

from .conftest import csrf_token

PASSWORD = "correct horse battery"


def make_staff(app, role="desk", library="borne", email=None):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        user = staff.create(
            db.session,
            lib,
            email or f"{role}.{library}@bibliotheek.example",
            "Anna",
            role,
            PASSWORD,
        )
        db.session.commit()
        return user.email


def log_in(app, role="desk", library="borne"):
    return log_in_as(app, make_staff(app, role, library))


def log_in_as(app, email):
    """A logged-in client for an existing staff account (password PASSWORD)."""
    client = app.test_client()
    response = client.post(
        "/admin/login",
        data={
            "email": email,
            "password": PASSWORD,
            "csrf_token": csrf_token(client, "/admin/login"),
        },
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


def person(app, email="jan@example.nl", library="borne"):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        subject = ledger.subject_for(db.session, lib, email, "nl")
        db.session.commit()
        return subject.id


def audit_actions(app):
    with app.app_context():
        return [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def test_console_needs_a_login(client):
    for url in ("/admin/", "/admin/subjects/1"):
        response = client.get(url)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/admin/login")


@pytest.mark.parametrize("role", ["desk", "privacy_officer", "admin"])
def test_every_role_can_find_and_open_a_person_of_its_own_library(app, role):
    client = log_in(app, role)
    subject_id = person(app)
    page = client.get("/admin/?q=jan@ex").get_data(as_text=True)
    assert "1 persoon gevonden" in page
    assert f'href="/admin/subjects/{subject_id}"' in page
    assert "jan@example.nl" in client.get(f"/admin/subjects/{subject_id}").get_data(as_text=True)
    assert audit_actions(app) == ["search", "view"]


def test_another_librarys_people_do_not_exist_for_staff(app):
    client = log_in(app, "privacy_officer", "zoetermeer")
    subject_id = person(app, library="borne")
    assert "0 personen gevonden" in client.get("/admin/?q=jan@example.nl").get_data(as_text=True)
    assert client.get(f"/admin/subjects/{subject_id}").status_code == 404
    data = {"purpose": "newsletter", "note": "x", "csrf_token": csrf_token(client, "/admin/")}
    assert client.post(f"/admin/subjects/{subject_id}/stop", data=data).status_code == 404


def test_search_never_lists_everyone(app):
    client = log_in(app)
    for i in range(3):
        person(app, f"reader{i}@example.nl")
    for query in ("", "r", "re", "%", "_"):
        page = client.get(f"/admin/?q={query}").get_data(as_text=True)
        assert "reader0@example.nl" not in page, query


def test_recording_consent_at_the_desk(app, outbox):
    client = log_in(app)
    subject_id = person(app)
    page = client.get(f"/admin/subjects/{subject_id}").get_data(as_text=True)
    text_id = consent_options(page)["Nieuwsbrief — Nederlands, versie 1 (huidig)"]
    token = csrf_token(client, f"/admin/subjects/{subject_id}")
    missing_note = client.post(
        f"/admin/subjects/{subject_id}/consent",
        data={"text": text_id, "how": "desk", "csrf_token": token},
    )
    assert missing_note.status_code == 400
    assert "Schrijf een korte notitie" in missing_note.get_data(as_text=True)
    response = client.post(
        f"/admin/subjects/{subject_id}/consent",
        data={
            "text": text_id,
            "how": "phone",
            "note": "Belde zelf",
            "csrf_token": token,
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/subjects/{subject_id}?done=requested"
    # The newsletter needs double opt-in: the person gets a mail first.
    [mail] = outbox
    assert mail.recipients == ["jan@example.nl"]
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        [event] = ledger.history(db.session, subject)
        assert (event.action, event.channel, event.actor) == ("requested", "staff", event.actor)
        assert event.actor.startswith("staff:")
        assert event.evidence.details == {"how": "phone", "note": "Belde zelf"}
        assert event.consent_text_id == int(text_id)
    assert "consent.requested" in audit_actions(app)


def test_recording_an_objection(app):
    client = log_in(app)
    subject_id = person(app)
    token = csrf_token(client, f"/admin/subjects/{subject_id}")
    client.post(
        f"/admin/subjects/{subject_id}/stop",
        data={
            "purpose": "direct_marketing",
            "objection": "yes",
            "note": "aan de balie",
            "csrf_token": token,
        },
    )
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        offers = ledger.purpose_by_code(subject.library, "direct_marketing")
        assert ledger.status_of(db.session, subject, offers) == "objected"
    assert audit_actions(app)[-1] == "objection"


def test_console_forms_need_their_csrf_token(app):
    client = log_in(app)
    subject_id = person(app)
    response = client.post(
        f"/admin/subjects/{subject_id}/stop", data={"purpose": "newsletter", "note": "x"}
    )
    assert response.status_code == 400
    assert "Dit formulier is verlopen" in response.get_data(as_text=True)


def test_wrong_passwords_lock_the_account(app):
    email = make_staff(app)
    client = app.test_client()
    for _ in range(staff.MAX_FAILURES):
        data = {
            "email": email,
            "password": "wrong password!",
            "csrf_token": csrf_token(client, "/admin/login"),
        }
        assert client.post("/admin/login", data=data).status_code == 401
    # Now even the right password is refused, with the same words.
    data = {"email": email, "password": PASSWORD, "csrf_token": csrf_token(client, "/admin/login")}
    response = client.post("/admin/login", data=data)
    assert response.status_code == 401
    assert "even op slot" in response.get_data(as_text=True)


def test_login_attempts_are_rate_limited(app_factory):
    app = app_factory(RATELIMIT_ENABLED=True, STAFF_LOGIN_RATE_LIMIT="3 per minute")
    client = app.test_client()
    statuses = []
    for _ in range(4):
        data = {
            "email": "x@example.nl",
            "password": "y" * 12,
            "csrf_token": csrf_token(client, "/admin/login"),
        }
        statuses.append(client.post("/admin/login", data=data).status_code)
    assert statuses == [401, 401, 401, 429]


def test_staff_sessions_expire(app_factory):
    app = app_factory(STAFF_SESSION_SECONDS=60)
    client = log_in(app)
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.expires is not None
    remaining = cookie.expires.timestamp() - time.time()
    assert 0 < remaining <= 61


def test_staff_create_command(app):
    result = app.test_cli_runner().invoke(
        args=["staff", "create", "--library", "borne", "--email", "fg@bibliotheek.example",
              "--name", "Femke", "--role", "privacy_officer", "--password", "a long enough secret"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(select(StaffUser))
        assert user.password_hash.startswith("$argon2")
        assert db.session.scalar(select(func.count()).select_from(StaffUser)) == 1
    short = app.test_cli_runner().invoke(
        args=["staff", "create", "--library", "borne", "--email", "b@bibliotheek.example",
              "--name", "B", "--role", "desk", "--password", "short"]
    )  # fmt: skip
    assert short.exit_code == 1 and "at least 12" in short.output


def test_search_while_typing_returns_only_the_results(app):
    client = log_in(app, "desk")
    subject_id = person(app)
    fragment = client.get("/admin/?q=jan", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="results"')
    assert "<html" not in fragment
    assert f'href="/admin/subjects/{subject_id}"' in fragment
    # Two characters search nothing and leave no trace; three are a search, and audited.
    short = client.get("/admin/?q=ja", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Typ minstens 3 tekens." in short
    assert audit_actions(app) == ["search"]
    page = client.get("/admin/?q=jan").get_data(as_text=True)
    assert 'hx-get="/admin/"' in page and 'id="results"' in page


def test_staff_see_purposes_by_the_names_members_know(app):
    client = log_in(app, "desk")
    subject_id = person(app)
    dutch = client.get(f"/admin/subjects/{subject_id}").get_data(as_text=True)
    assert '<span class="state-purpose">Nieuwsbrief</span>' in dutch
    assert '<option value="direct_marketing">Aanbiedingen voor leden</option>' in dutch
    english = client.get(f"/admin/subjects/{subject_id}?lang=en").get_data(as_text=True)
    assert '<span class="state-purpose">Newsletter</span>' in english


# -- how a staff session ends ----------------------------------------------------------------


def test_logging_out_ends_the_session_also_for_a_copied_cookie(app):
    client = log_in(app, "desk")
    # Someone copied the session cookie (a shared desk computer, a stolen backup).
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    assert "desk.borne@bibliotheek.example" in copy.get("/admin/account").get_data(as_text=True)
    token = csrf_token(client, "/admin/account")
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 303
    for browser in (client, copy):
        response = browser.get("/admin/account")
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/admin/login")
    # Logging in again works, and the copy stays out.
    again = log_in_again(app, client)
    assert "desk.borne@bibliotheek.example" in again.get("/admin/account").get_data(as_text=True)
    assert copy.get("/admin/account").status_code == 302


def log_in_again(app, client, email="desk.borne@bibliotheek.example"):
    data = {"email": email, "password": PASSWORD, "csrf_token": csrf_token(client, "/admin/login")}
    assert client.post("/admin/login", data=data).status_code == 303
    return client


def test_a_session_in_use_still_ends_when_its_time_is_up(app_factory):
    """With a request every 6 seconds, a 20-second session ends at 20 seconds, not later."""
    app = app_factory(STAFF_SESSION_SECONDS=20)
    with time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=UTC), tick=False) as clock:
        client = log_in(app, "desk")
        answers = []
        for _ in range(9):
            clock.shift(6)
            answers.append(client.get("/admin/account").status_code)
    # 6, 12 and 18 s: in; 24 s and later: out, although the session was used all the time.
    assert answers == [200, 200, 200] + [302] * 6
    again = client.get("/admin/account")
    assert again.headers["Location"].startswith("/admin/login")


def test_a_session_left_alone_ends_after_the_idle_time(app_factory):
    app = app_factory(STAFF_SESSION_SECONDS=3600, STAFF_IDLE_SECONDS=600)
    with time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=UTC), tick=False) as clock:
        client = log_in(app, "desk")
        clock.shift(599)
        assert client.get("/admin/account").status_code == 200  # used: the idle clock restarts
        clock.shift(599)
        assert client.get("/admin/account").status_code == 200
        clock.shift(601)
        left = client.get("/admin/account")
        assert left.status_code == 302 and left.headers["Location"].startswith("/admin/login")
        page = client.get(left.headers["Location"]).get_data(as_text=True)
        assert "je was te lang niet actief of te lang ingelogd" in page
        # The login itself does not count as a session ending: a fresh login says nothing.
        clock.shift(1)
        fresh = app.test_client().get("/admin/login").get_data(as_text=True)
        assert "niet actief" not in fresh


def consent_options(page):
    """The desk consent form's choices: label → value, in the order shown."""
    start = page.index('<select id="text"')
    form = page[start : page.index("</select>", start)]
    return dict(
        (label, value)
        for value, label in re.findall(
            r'<option value="(\d+)"(?: selected)?>([^<]+)</option>', form
        )
    )


def test_the_desk_chooses_a_purpose_and_gets_its_current_text_in_the_members_language(app):
    client = log_in(app, "desk")
    subject_id = person(app)
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        subject.language = "en"
        newsletter = ledger.purpose_by_code(subject.library, "newsletter")
        ledger.add_text(db.session, newsletter, "en", "Newsletter", "Now with more tips.")
        db.session.commit()
    page = client.get(f"/admin/subjects/{subject_id}").get_data(as_text=True)
    labels = list(consent_options(page))
    # One choice per purpose first, each with the member's (English) current text; named in
    # staff words, never as codes. Direct debit is not among them: it starts from a mandate.
    assert labels[:3] == [
        "Nieuwsbrief — Engels, versie 2 (huidig)",
        "Aanwinstenmail — Engels, versie 1 (huidig)",
        "Aanbiedingen voor leden — Engels, versie 1 (huidig)",
    ]
    assert not any(label.startswith("Automatische incasso") for label in labels)
    assert "Nieuwsbrief — Nederlands, versie 1 (huidig)" in labels[3:]
    assert "Nieuwsbrief — Engels, versie 1 (oud)" in labels[3:]
    assert "newsletter · en" not in page and 'id="text_id"' not in page
    english = client.get(f"/admin/subjects/{subject_id}?lang=en").get_data(as_text=True)
    assert next(iter(consent_options(english))) == "Newsletter — English, version 2 (current)"


def test_a_refused_desk_consent_keeps_every_input_and_records_nothing(app, outbox):
    client = log_in(app, "desk")
    subject_id = person(app)
    page = client.get(f"/admin/subjects/{subject_id}").get_data(as_text=True)
    acquisitions = consent_options(page)["Aanwinstenmail — Nederlands, versie 1 (huidig)"]
    token = csrf_token(client, f"/admin/subjects/{subject_id}")
    url = f"/admin/subjects/{subject_id}/consent"
    no_note = client.post(url, data={"text": acquisitions, "how": "phone", "csrf_token": token})
    assert no_note.status_code == 400
    shown = no_note.get_data(as_text=True)
    assert f'<option value="{acquisitions}" selected>' in shown
    assert re.search(r'id="how-phone" name="how" value="phone" checked', shown)
    assert 'href="#note"' in shown  # the summary leads to the field
    with app.app_context():
        zoetermeer = db.session.scalar(select(Library).where(Library.slug == "zoetermeer"))
        foreign = ledger.purpose_by_code(zoetermeer, "newsletter").texts[0].id
    for text in (str(foreign), "", "abc"):
        wrong = client.post(
            url,
            data={"text": text, "how": "paper", "note": "Formulier getekend", "csrf_token": token},
        )
        assert wrong.status_code == 400
        shown = wrong.get_data(as_text=True)
        assert "Kies waarmee de persoon instemde." in shown
        assert 'value="Formulier getekend"' in shown
        assert re.search(r'id="how-paper" name="how" value="paper" checked', shown)
    with app.app_context():
        assert ledger.history(db.session, db.session.get(Subject, subject_id)) == []
    assert len(outbox) == 0 and audit_actions(app) == ["view", "view"]  # the page, twice
