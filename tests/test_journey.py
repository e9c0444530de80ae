"""The member's whole journey through the test client, with every mail captured."""

import json

import pytest
from sqlalchemy import func, select

from consentsvc import ledger, tokens
from consentsvc.extensions import db
from consentsvc.models import ConsentEvent, ConsentState, Evidence, Subject

from .conftest import link_in, signup, switch_in, work_outbox


def table_counts(app):
    with app.app_context():
        return {
            model.__name__: db.session.scalar(select(func.count()).select_from(model))
            for model in (Subject, ConsentEvent, ConsentState, Evidence)
        }


def states(app, email="jan@example.nl"):
    with app.app_context():
        subject = db.session.scalar(select(Subject).where(Subject.email == email))
        return {s.purpose.code: s.status for s in ledger.state_of(db.session, subject)}


def test_signup_confirm_preferences_unsubscribe(app, client, outbox, runner):
    response = signup(client, "Jan@Example.nl", ["newsletter", "acquisitions"])
    assert response.status_code == 200
    assert "Kijk in je mail" in response.get_data(as_text=True)
    work_outbox(app)  # the worker records the signup and sends the mail
    assert states(app) == {
        "newsletter": "pending",
        "acquisitions": "pending",
        "direct_marketing": None,
        "direct_debit": None,
    }

    [mail] = outbox
    assert mail.recipients == ["jan@example.nl"]
    assert mail.subject == "Bevestig je aanmelding bij Bibliotheek Borne"
    assert "Nieuwsbrief" in mail.body and "Aanwinstenmail" in mail.body
    confirm = link_in(mail, "confirm")
    assert confirm in mail.html

    page = client.get(confirm)
    assert page.status_code == 200
    assert "Ja, ik bevestig" in page.get_data(as_text=True)
    assert states(app)["newsletter"] == "pending"  # a GET changes nothing

    done = client.post(confirm)
    text = done.get_data(as_text=True)
    assert "Bedankt, je bent aangemeld" in text
    assert states(app)["newsletter"] == states(app)["acquisitions"] == "granted"

    # The same link again: nothing to confirm, and a way on to the settings.
    again = client.post(confirm).get_data(as_text=True)
    assert "Er is niets meer te bevestigen" in again

    preferences = "/preferences/" + text.split('href="/preferences/')[1].split('"')[0]
    page = client.get(preferences).get_data(as_text=True)
    assert "Je mailinstellingen" in page
    assert "jan@example.nl" in page
    assert page.count('role="switch" aria-checked="true"') == 2
    assert switch_in(page, "newsletter") == (True, "Nieuwsbrief: Aan", "off")

    with app.app_context():
        subject = db.session.scalar(select(Subject).where(Subject.email == "jan@example.nl"))
        newsletter = ledger.purpose_by_code(subject.library, "newsletter")
        unsubscribe = f"/unsubscribe/{tokens.make_unsubscribe(subject.id, newsletter.id)}"
    page = client.get(unsubscribe).get_data(as_text=True)
    assert "Afmelden voor: Nieuwsbrief" in page
    assert states(app)["newsletter"] == "granted"

    done = client.post(unsubscribe).get_data(as_text=True)
    assert "Je bent afgemeld" in done
    assert "Opnieuw aanmelden" in done
    assert states(app)["newsletter"] == "withdrawn"
    assert states(app)["acquisitions"] == "granted"

    exported = runner.invoke(args=["subject", "export", "JAN@example.nl", "--library", "borne"])
    assert exported.exit_code == 0, exported.output
    data = json.loads(exported.output)
    assert [(e["purpose"], e["action"], e["channel"]) for e in data["events"]] == [
        ("newsletter", "requested", "web_form"),
        ("acquisitions", "requested", "web_form"),
        ("newsletter", "granted", "email_link"),
        ("acquisitions", "granted", "email_link"),
        ("newsletter", "withdrawn", "unsubscribe_page"),
    ]


@pytest.mark.parametrize("encoding", ["application/x-www-form-urlencoded", "multipart/form-data"])
def test_one_click_unsubscribe_as_gmail_sends_it(app, encoding):
    with app.app_context():
        library = db.session.scalar(select(ledger.Library).where(ledger.Library.slug == "borne"))
        result = ledger.signup(
            db.session, library, "jan@example.nl", ["newsletter"], language="nl", channel="x"
        )
        ledger.confirm(db.session, result.subject, result.request_ids)
        db.session.commit()
        token = tokens.make_unsubscribe(result.subject.id, library.purposes[0].id)
    # A fresh client: no cookies, no CSRF token, no session; exactly the RFC 8058 body.
    client = app.test_client(use_cookies=False)
    if encoding == "multipart/form-data":
        response = client.post(
            f"/unsubscribe/{token}",
            data={"List-Unsubscribe": "One-Click"},
            content_type="multipart/form-data",
        )
    else:
        response = client.post(
            f"/unsubscribe/{token}",
            data="List-Unsubscribe=One-Click",
            content_type=encoding,
            headers={"User-Agent": "Google-One-Click-Unsubscribe"},
        )
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers or "session" not in response.headers["Set-Cookie"]
    assert states(app)["newsletter"] == "withdrawn"
    with app.app_context():
        last = ledger.history(db.session, db.session.get(Subject, result.subject.id))[0]
        assert (last.action, last.channel) == ("withdrawn", "one_click")


def test_get_on_every_token_url_changes_nothing(app, client, outbox):
    signup(client, "jan@example.nl", ["newsletter"])
    confirm = link_in(outbox[0], "confirm")
    with app.app_context():
        subject = db.session.scalar(select(Subject))
        purpose_id = subject.library.purposes[0].id
        preferences = f"/preferences/{tokens.make_preferences(subject.id)}"
        unsubscribe = f"/unsubscribe/{tokens.make_unsubscribe(subject.id, purpose_id)}"
    before = table_counts(app)
    state_before = states(app)
    for url in (
        confirm,
        preferences,
        preferences + "/history",
        unsubscribe,
        confirm + "/resend",
        preferences + "/stop-all",
        preferences + "/resend",
        unsubscribe + "/undo",
    ):
        response = client.get(url)
        assert response.status_code in (200, 405), url
        response = client.head(url)
    assert table_counts(app) == before
    assert states(app) == state_before
    assert len(outbox) == 1


def test_undo_after_unsubscribe_needs_a_new_confirmation(app, client, outbox):
    signup(client, "jan@example.nl", ["newsletter"])
    client.post(link_in(outbox[0], "confirm"))
    with app.app_context():
        subject = db.session.scalar(select(Subject))
        token = tokens.make_unsubscribe(subject.id, subject.library.purposes[0].id)
    client.post(f"/unsubscribe/{token}")
    response = client.post(f"/unsubscribe/{token}/undo", follow_redirects=True)
    assert response.request.path == "/borne/signup/sent"
    page = response.get_data(as_text=True)
    assert "Kijk in je mail" in page and "jan@example.nl" in page
    assert "Verkeerd adres?" not in page  # the address came from the link, not typed
    assert states(app)["newsletter"] == "pending"
    assert len(outbox) == 2
    client.post(link_in(outbox[1], "confirm"))
    assert states(app)["newsletter"] == "granted"
