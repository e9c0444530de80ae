"""The console's webhooks and API keys: each receiver's delivery log, a test event, sending
a given-up message again, and what each key may do and when it was last used."""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select, update

from consentsvc import clients, iban, ledger, outbox, staff
from consentsvc.extensions import db
from consentsvc.models import ApiClient, AuditEntry, Library, OutboxMessage, Subject, utcnow

from .conftest import csrf_token
from .test_admin import log_in
from .test_outbox import LOCAL, Receiver, change_something, deliver, make_due, register

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@pytest.fixture
def app(app_factory):
    return app_factory(**LOCAL)


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


def messages(app):
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        db.session.expunge_all()
        return [m for m in rows if m.channel == "webhook"]


def post(client, path, **data):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, "/admin/webhooks")})


def audited(app, action):
    with app.app_context():
        return db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


def local(moment):
    return moment.astimezone(AMSTERDAM)


def give_up(app, receiver):
    """Let the receiver fail until the message is given up, with its last answer kept."""
    receiver.status = 503
    deliver(app)
    with app.app_context():
        db.session.execute(update(OutboxMessage).values(attempts=len(outbox.RETRY_DELAYS)))
        db.session.commit()
    make_due(app)
    deliver(app)
    [message] = messages(app)
    assert message.dead_at is not None
    return message


def test_the_log_shows_each_delivery_with_its_answer_attempt_and_next_try(app, receiver):
    receiver.secret = register(app, receiver.url)
    receiver.status = 500
    change_something(app)
    deliver(app)
    [message] = messages(app)
    assert (message.last_status, message.attempts) == (500, 1)
    admin = log_in(app, "admin")
    listing = admin.get("/admin/webhooks").get_data(as_text=True)
    assert f'href="/admin/webhooks/{message.endpoint_id}"' in listing
    assert "Toestemming gegeven" in listing  # the events it wants, in staff words
    page = admin.get(f"/admin/webhooks/{message.endpoint_id}").get_data(as_text=True)
    row = re.search(rf'<tr id="delivery-{message.id}">(.*?)</tr>', page, re.S).group(1)
    assert "Toestemming gegeven" in row and "consent.granted" not in row
    assert "HTTP 500" in row
    assert re.search(r'data-label="Poging">1</td>', row)
    next_try = local(message.next_attempt_at)
    machine = message.next_attempt_at.replace(microsecond=0).isoformat()
    assert f'Volgende poging <time datetime="{machine}">' in row
    assert next_try.strftime("%H:%M:%S") in row
    created = local(message.created_at).strftime("%H:%M:%S")
    assert created in row
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d", row)  # no microseconds anywhere
    assert receiver.secret not in page
    english = admin.get(f"/admin/webhooks/{message.endpoint_id}?lang=en").get_data(as_text=True)
    assert "Consent given" in english and "Next try" in english


def test_a_delivery_without_an_answer_says_why(app):
    down = Receiver()
    url = down.url
    down.stop()
    register(app, url)
    change_something(app)
    deliver(app)
    [message] = messages(app)
    assert message.last_status is None and message.last_error == "ConnectError"
    page = log_in(app, "admin").get(f"/admin/webhooks/{message.endpoint_id}")
    assert "geen antwoord: kon geen verbinding maken" in page.get_data(as_text=True)


def test_a_test_event_is_signed_delivered_and_logged(app, receiver):
    receiver.secret = register(app, receiver.url, events=["consent.withdrawn"])
    admin = log_in(app, "admin")
    [endpoint] = [e for e in _endpoints(app)]
    page = admin.get(f"/admin/webhooks/{endpoint}").get_data(as_text=True)
    assert "Nog niets naar dit adres verstuurd." in page
    sent = post(admin, f"/admin/webhooks/{endpoint}/test")
    assert sent.status_code == 303 and sent.headers["Location"] == f"/admin/webhooks/{endpoint}"
    assert "Er staat een testgebeurtenis klaar" in admin.get(sent.headers["Location"]).get_data(
        as_text=True
    )
    assert deliver(app).delivered == 1
    [(webhook_id, payload)] = receiver.received
    assert receiver.rejected == 0  # signed with the endpoint's secret, like any event
    assert payload["type"] == "webhook.test"
    assert payload["data"] == {"library": "borne", "test": True}  # about nobody
    [message] = messages(app)
    assert message.message_id == webhook_id and message.last_status == 204
    page = admin.get(f"/admin/webhooks/{endpoint}").get_data(as_text=True)
    row = re.search(rf'<tr id="delivery-{message.id}">(.*?)</tr>', page, re.S).group(1)
    assert "Testgebeurtenis" in row and "HTTP 204" in row and "Bezorgd" in row
    [entry] = audited(app, "webhook.test")
    assert entry.note.detail == f"endpoint {endpoint} message {message.id}"


def _endpoints(app):
    with app.app_context():
        return list(db.session.scalars(select(outbox.WebhookEndpoint.id)))


def test_given_up_messages_are_sent_again_with_a_fresh_schedule(app, receiver):
    receiver.secret = register(app, receiver.url)
    change_something(app)
    message = give_up(app, receiver)
    assert message.last_status == 503 and "email" not in message.payload["data"]
    admin = log_in(app, "admin")
    path = f"/admin/webhooks/{message.endpoint_id}"
    page = admin.get(path).get_data(as_text=True)
    assert "Opgegeven" in page and "Opnieuw versturen" in page
    again = post(admin, f"{path}/deliveries/{message.id}/redeliver")
    assert again.status_code == 303 and again.headers["Location"] == path
    [queued] = messages(app)
    assert queued.dead_at is None and queued.attempts == 0
    assert queued.next_attempt_at <= utcnow()
    assert queued.payload["data"]["email"] == "jan@example.nl"  # put back from the ledger
    assert queued.message_id == message.message_id  # the receiver can drop a duplicate
    [entry] = audited(app, "webhook.redeliver")
    assert entry.note.detail == (
        f"endpoint {message.endpoint_id} message {message.id}: "
        f"{len(outbox.RETRY_DELAYS) + 1} attempts, last 503"
    )
    receiver.status = 204
    receiver.received.clear()
    assert deliver(app).delivered == 1
    [(_id, payload)] = receiver.received
    assert payload["type"] == "consent.granted" and payload["data"]["email"] == "jan@example.nl"
    page = admin.get(path).get_data(as_text=True)
    assert "Bezorgd" in page and "HTTP 204" in page and "Opnieuw versturen" not in page

    # Delivered now: sending it again is refused, in words, and changes nothing.
    before = messages(app)
    refused = post(admin, f"{path}/deliveries/{message.id}/redeliver")
    assert refused.status_code == 409
    assert "Alleen een opgegeven bericht kan opnieuw" in refused.get_data(as_text=True)
    assert messages(app)[0].delivered_at == before[0].delivered_at
    assert len(audited(app, "webhook.redeliver")) == 1


def test_a_waiting_message_is_not_sent_again(app, receiver):
    receiver.secret = register(app, receiver.url)
    receiver.status = 500
    change_something(app)
    deliver(app)
    [message] = messages(app)
    admin = log_in(app, "admin")
    refused = post(
        admin, f"/admin/webhooks/{message.endpoint_id}/deliveries/{message.id}/redeliver"
    )
    assert refused.status_code == 409
    [still] = messages(app)
    assert (still.attempts, still.next_attempt_at) == (1, message.next_attempt_at)


def test_a_message_whose_address_is_gone_is_not_sent_again(app, receiver):
    receiver.secret = register(app, receiver.url)
    endpoint = _endpoints(app)[0]
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        dead = OutboxMessage(
            library_id=library.id, channel="webhook", endpoint_id=endpoint,
            event_type="suppression.added", message_id="msg_suppression",
            payload={"type": "suppression.added", "data": {"library": "borne"}},
            attempts=10, dead_at=utcnow(), last_error="HTTP 500", last_status=500,
        )  # fmt: skip
        db.session.add(dead)
        db.session.commit()
        dead_id = dead.id
    admin = log_in(app, "admin")
    refused = post(admin, f"/admin/webhooks/{endpoint}/deliveries/{dead_id}/redeliver?lang=en")
    assert refused.status_code == 409
    assert "the address it was about was taken out" in refused.get_data(as_text=True)
    [still] = messages(app)
    assert still.dead_at is not None and still.attempts == 10
    assert audited(app, "webhook.redeliver") == []


def test_a_stopped_receiver_gets_no_test_event_and_nothing_again(app, receiver):
    receiver.secret = register(app, receiver.url)
    change_something(app)
    message = give_up(app, receiver)
    admin = log_in(app, "admin")
    path = f"/admin/webhooks/{message.endpoint_id}"
    assert post(admin, f"{path}/remove").status_code == 303
    page = admin.get(path).get_data(as_text=True)
    assert "Gestopt" in page and "Stuur een testgebeurtenis" not in page
    assert "Opnieuw versturen" not in page
    assert post(admin, f"{path}/test").status_code == 409
    listed = admin.get("/admin/webhooks").get_data(as_text=True)
    assert "Gestopt: gestopt door een beheerder" in listed and ": removed" not in listed
    assert post(admin, f"{path}/deliveries/{message.id}/redeliver").status_code == 409
    assert [m.dead_at is not None for m in messages(app)] == [True]


def test_another_librarys_receiver_does_not_exist(app, receiver):
    receiver.secret = register(app, receiver.url)
    change_something(app)
    message = give_up(app, receiver)
    path = f"/admin/webhooks/{message.endpoint_id}"
    other = log_in(app, "admin", "zoetermeer")
    assert other.get(path).status_code == 404
    assert post(other, f"{path}/test").status_code == 404
    assert post(other, f"{path}/deliveries/{message.id}/redeliver").status_code == 404
    # A message of this library, asked for under another receiver: not there either.
    admin = log_in(app, "admin")
    assert admin.get("/admin/webhooks/999").status_code == 404
    with app.app_context():
        second = outbox.add_endpoint(
            db.session, message.library_id, receiver.url, ["consent.granted"],
            allow_http=True, allowed_networks=["127.0.0.0/8"],
        )  # fmt: skip
        db.session.commit()
        second_id = second.id
    wrong = post(admin, f"/admin/webhooks/{second_id}/deliveries/{message.id}/redeliver")
    assert wrong.status_code == 404
    assert [m.dead_at is not None for m in messages(app)] == [True]
    assert audited(app, "webhook.redeliver") == audited(app, "webhook.test") == []


@pytest.mark.parametrize("role", ["desk", "privacy_officer"])
def test_only_admins_see_and_act_on_the_log(app, receiver, role):
    receiver.secret = register(app, receiver.url)
    change_something(app)
    message = give_up(app, receiver)
    path = f"/admin/webhooks/{message.endpoint_id}"
    staff = log_in(app, role)
    assert staff.get(path).status_code == 403
    token = csrf_token(staff, "/admin/account")
    for url in (f"{path}/test", f"{path}/deliveries/{message.id}/redeliver"):
        assert staff.post(url, data={"csrf_token": token}).status_code == 403
    assert [m.dead_at is not None for m in messages(app)] == [True]


# -- API keys ---------------------------------------------------------------------------------


def test_keys_show_their_scope_and_last_use_in_words(app):
    now = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)  # 16:30 in Amsterdam
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        used = {
            "Laposta": now - timedelta(hours=2, minutes=28),  # 14:02 Amsterdam, today
            "Website": now - timedelta(days=1, hours=3),  # yesterday, 13:30
            "Brevo": now - timedelta(days=3),
            "Bibliotheeksysteem": None,
        }
        for name, moment in used.items():
            scopes = ["membership"] if name == "Bibliotheeksysteem" else []
            codes = [] if scopes else ["newsletter", "acquisitions"]
            client, key = clients.create(db.session, library, name, codes, scopes)
            client.last_used_at = moment
        db.session.commit()
    with time_machine.travel(now, tick=False):
        admin = log_in(app, "admin")
        page = admin.get("/admin/clients").get_data(as_text=True)
        english = admin.get("/admin/clients?lang=en").get_data(as_text=True)
    assert "vandaag om 14:02" in page
    assert "gisteren om 13:30" in page
    assert "3 dagen geleden" in page
    assert "Nog nooit gebruikt" in page
    assert "Nieuwsbrief" in page and "newsletter, acquisitions" not in page
    assert "Mag lidmaatschappen uit het bibliotheeksysteem doorgeven" in page
    assert key not in page and key not in english
    for words in ("today at 14:02", "yesterday at 13:30", "3 days ago", "Never used"):
        assert words in english
    assert "May report memberships from the library system" in english
    with app.app_context():
        assert db.session.scalar(select(ApiClient).where(ApiClient.name == "Brevo")) is not None


def test_a_given_up_message_about_an_erased_person_stays_given_up(app, receiver):
    receiver.secret = register(app, receiver.url, events=["consent.granted"])
    subject_id = change_something(app)
    message = give_up(app, receiver)
    with app.app_context():
        person = db.session.get(Subject, subject_id)
        ledger.erase(
            db.session, person, suppression_key=app.config["SUPPRESSION_KEY"],
            actor="staff:1", identification="pas",
        )  # fmt: skip
        db.session.commit()
    admin = log_in(app, "admin")
    path = f"/admin/webhooks/{message.endpoint_id}/deliveries/{message.id}/redeliver"
    refused = post(admin, path)
    assert refused.status_code == 409
    assert "de persoon is gewist" in refused.get_data(as_text=True)
    [still] = messages(app)
    assert still.dead_at is not None and "email" not in still.payload["data"]


def test_a_given_up_mandate_event_gets_its_address_back_from_the_mandate(app, receiver):
    receiver.secret = register(app, receiver.url, events=["mandate.ended"])
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        paying = ledger.subject_for(db.session, library, "incasso@example.nl", "nl")
        colleague = staff.create(
            db.session, library, "kees@bibliotheek.example", "Kees", "desk", "x" * 12
        )
        ledger.record_mandate(
            db.session, paying,
            ledger.MandateInput("M-7", "NL28ZZZ401234560000", "NL91ABNA0417164300", "K. Kok",
                                "2026-01-05", "Borne", "paper"),
            staff=colleague, vault=iban.Vault(app.config["IBAN_KEY"]),
        )  # fmt: skip
        endpoint = db.session.scalar(select(outbox.WebhookEndpoint))
        dead = OutboxMessage(
            library_id=library.id, channel="webhook", endpoint_id=endpoint.id,
            event_type="mandate.ended", message_id="msg_mandate",
            payload={"type": "mandate.ended",
                     "data": {"library": "borne", "mandate_reference": "M-7"}},
            attempts=10, dead_at=utcnow(), last_status=500,
        )  # fmt: skip
        db.session.add(dead)
        db.session.commit()
        outbox.redeliver(db.session, dead)
        db.session.commit()
        assert dead.payload["data"]["email"] == "incasso@example.nl"
        assert (dead.dead_at, dead.attempts, dead.last_status) == (None, 0, None)
    assert deliver(app).delivered == 1
    [(_id, payload)] = receiver.received
    assert payload["data"]["email"] == "incasso@example.nl"
