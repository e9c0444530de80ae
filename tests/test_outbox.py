"""Webhooks and mails leave through the outbox: signed, retried, and delivered once."""

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from consentsvc import ledger, outbox
from consentsvc.cli import deliver_once
from consentsvc.extensions import db
from consentsvc.models import Library, OutboxMessage, Subject, WebhookEndpoint, utcnow

LOCAL = {"WEBHOOK_ALLOW_HTTP": True, "WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"]}


class Receiver:
    """A small webhook receiver on 127.0.0.1 that checks every signature it gets."""

    def __init__(self, status=204, port=0):
        self.status, self.received, self.rejected = status, [], 0
        self.secret = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    payload = Webhook(receiver.secret).verify(body, dict(self.headers))
                except Exception:
                    receiver.rejected += 1
                    self.send_response(400)
                else:
                    receiver.received.append((self.headers["webhook-id"], payload))
                    self.send_response(receiver.status)
                    if receiver.status in (301, 302):
                        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app(app_factory):
    return app_factory(**LOCAL)


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


def register(app, url, events=outbox.EVENT_TYPES):
    result = app.test_cli_runner().invoke(
        args=["webhooks", "add", "--library", "borne", "--url", url, "--events", ",".join(events)]
    )
    assert result.exit_code == 0, result.output
    return result.output.split("secret (shown only now): ")[1].strip()


def change_something(app, email="jan@example.nl"):
    """Sign someone up and confirm: one consent.granted event."""
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        result = ledger.signup(
            db.session, library, email, ["newsletter"], language="nl", channel="x"
        )
        ledger.confirm(db.session, result.subject, result.request_ids)
        db.session.commit()
        return result.subject.id


def deliver(app):
    with app.app_context():
        report = deliver_once()
        db.session.remove()
        return report


def webhooks(app):
    with app.app_context():
        rows = db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.channel == "webhook")
            .order_by(OutboxMessage.id)
        ).all()
        db.session.expunge_all()
        return rows


def make_due(app):
    """Let time pass: every waiting message is due now."""
    with app.app_context():
        db.session.execute(
            update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()


def test_signed_webhook_reaches_a_real_receiver(app, receiver):
    receiver.secret = register(app, receiver.url)
    assert receiver.secret.startswith("whsec_")
    change_something(app)
    report = deliver(app)
    assert report.delivered == 1
    [(webhook_id, payload)] = receiver.received
    assert receiver.rejected == 0
    assert webhook_id.startswith("msg_")
    assert payload["type"] == "consent.granted"
    assert payload["data"]["email"] == "jan@example.nl"
    assert payload["data"]["purpose"] == "newsletter"
    assert payload["data"]["channel"] == "email_link"
    assert payload["data"]["library"] == "borne"
    assert deliver(app).handled == 0  # delivered once, not again


def test_only_subscribed_events_are_sent(app, receiver):
    receiver.secret = register(app, receiver.url, events=["consent.withdrawn"])
    subject_id = change_something(app)
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        ledger.withdraw(db.session, subject, "newsletter", channel="one_click")
        db.session.commit()
    deliver(app)
    assert [p["type"] for _, p in receiver.received] == ["consent.withdrawn"]


def test_receiver_down_then_up_gets_it_once(app):
    down = Receiver()
    url, port = down.url, down.server.server_address[1]
    down.stop()  # nothing listens on that port now
    secret = register(app, url)
    change_something(app)
    report = deliver(app)
    assert (report.delivered, report.retried) == (0, 1)
    [message] = webhooks(app)
    assert message.attempts == 1 and message.last_error == "ConnectError"
    wait = (message.next_attempt_at - utcnow()).total_seconds()
    assert 3.5 < wait <= 5.5  # the first retry comes after about 5 seconds, with jitter
    assert deliver(app).handled == 0  # not due yet

    up = Receiver(port=port)
    up.secret = secret
    try:
        make_due(app)
        assert deliver(app).delivered == 1
        assert len(up.received) == 1 and up.received[0][0] == message.message_id
        make_due(app)
        assert deliver(app).handled == 0
    finally:
        up.stop()


def test_retries_follow_the_schedule_then_give_up(app):
    failing = Receiver(status=500)
    failing.secret = register(app, failing.url)
    try:
        change_something(app)
        waits = []
        for _ in range(len(outbox.RETRY_DELAYS)):
            deliver(app)
            [message] = webhooks(app)
            waits.append((message.next_attempt_at - utcnow()).total_seconds())
            make_due(app)
        for wait, planned in zip(waits, outbox.RETRY_DELAYS, strict=True):
            assert planned * 0.85 < wait <= planned * 1.1 + 1
        deliver(app)
        [message] = webhooks(app)
        assert message.dead_at is not None and message.last_error == "HTTP 500"
        assert len(failing.received) == len(outbox.RETRY_DELAYS) + 1
    finally:
        failing.stop()


def test_gone_disables_the_endpoint(app):
    gone = Receiver(status=410)
    gone.secret = register(app, gone.url)
    try:
        change_something(app)
        assert deliver(app).dead == 1
        with app.app_context():
            endpoint = db.session.scalar(select(WebhookEndpoint))
            assert endpoint.active is False and endpoint.disabled_reason.startswith("410 Gone")
        change_something(app, "piet@example.nl")
        assert len(webhooks(app)) == 1  # nothing new queued for a disabled endpoint
    finally:
        gone.stop()


def test_redirects_are_not_followed(app):
    moved = Receiver(status=302)
    moved.secret = register(app, moved.url)
    try:
        change_something(app)
        assert deliver(app).retried == 1
        [message] = webhooks(app)
        assert message.last_error == "HTTP 302"
    finally:
        moved.stop()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.nl/x", "only https"),
        ("https://user:pw@hooks.example.nl/x", "no user name"),
        ("https://127.0.0.1/x", "non-public"),
        ("https://10.1.2.3/x", "non-public"),
        ("https://169.254.169.254/latest", "non-public"),
        ("https://[::1]/x", "non-public"),
        ("https://[::ffff:10.0.0.1]/x", "non-public"),
        ("https://[64:ff9b::a9fe:a9fe]/x", "non-public"),  # NAT64 of 169.254.169.254
        ("https://[2002:a9fe:a9fe::]/x", "non-public"),  # 6to4
        ("https://[::127.0.0.1]/x", "non-public"),  # IPv4-compatible
    ],
)
def test_unsafe_urls_are_refused_at_registration(app_factory, url, message):
    app = app_factory()  # production settings: https only, no private networks
    result = app.test_cli_runner().invoke(
        args=["webhooks", "add", "--library", "borne", "--url", url]
    )
    assert result.exit_code == 1
    assert message in result.output
    with app.app_context():
        assert db.session.scalar(select(WebhookEndpoint)) is None


def test_private_addresses_are_refused_again_at_connect_time(app, receiver):
    receiver.secret = register(app, receiver.url)
    app.config["WEBHOOK_ALLOWED_NETWORKS"] = []  # as if the name now pointed inside
    change_something(app)
    assert deliver(app).retried == 1
    assert receiver.received == []
    [message] = webhooks(app)
    assert message.last_error == "ConnectError"


def test_two_workers_deliver_each_message_exactly_once(app, receiver):
    receiver.secret = register(app, receiver.url)
    with app.app_context():
        for i in range(40):
            outbox.enqueue_event(db.session, 1, "consent.granted", {"n": i})
        db.session.commit()

    def work():
        with app.app_context():
            while deliver_once(limit=5).handled:
                pass
            db.session.remove()

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ids = [webhook_id for webhook_id, _ in receiver.received]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert sorted(p["data"]["n"] for _, p in receiver.received) == list(range(40))


def test_the_outbox_holds_no_address_or_link_for_mails(app, client, monkeypatch):
    from consentsvc import mailer

    from .conftest import signup

    def server_down(outgoing):
        raise ConnectionRefusedError

    monkeypatch.setattr(mailer, "send", server_down)  # so the mail stays in the outbox
    signup(client, "secret.person@example.nl")
    deliver(app)  # decides the signup (see intake.py) and tries its mail
    with app.app_context():
        [message] = db.session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "mail"))
        text = json.dumps(message.payload)
        assert "secret.person" not in text and "confirm/" not in text
        assert message.payload["mail"] == "confirm" and message.delivered_at is None
        # The signup request held the address only until it was decided.
        [request] = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.channel == "request")
        )
        assert request.delivered_at is not None
        assert "secret.person" not in json.dumps(request.payload)


def test_one_bad_message_does_not_stop_the_others(app, client, outbox, monkeypatch):
    from consentsvc import mailer

    from .conftest import signup

    real_send = mailer.send

    def send(outgoing):
        if outgoing.message.recipients == ["broken@example.nl"]:
            raise ValueError("something nobody expected")
        real_send(outgoing)

    monkeypatch.setattr(mailer, "send", send)
    signup(client, "broken@example.nl")
    signup(client, "fine@example.nl")
    report = deliver(app)
    assert (report.delivered, report.retried) == (1, 1)
    assert [m.recipients for m in outbox.recorded] == [["fine@example.nl"]]
    with app.app_context():
        broken = db.session.scalar(
            select(OutboxMessage).where(OutboxMessage.delivered_at.is_(None))
        )
        assert (broken.attempts, broken.last_error) == (1, "ValueError")


def test_a_worker_stops_before_its_lease_can_run_out(app, monkeypatch):
    slow = Receiver()
    slow.secret = register(app, slow.url)
    original = slow.server.RequestHandlerClass.do_POST

    def do_post(handler):
        time.sleep(0.6)
        original(handler)

    slow.server.RequestHandlerClass.do_POST = do_post
    monkeypatch.setattr(outbox, "LEASE", timedelta(seconds=2))
    monkeypatch.setattr(outbox, "SEND_BUDGET", timedelta(seconds=1))
    try:
        for email in ("a@example.nl", "b@example.nl", "c@example.nl"):
            change_something(app, email)
        report = deliver(app)
        assert report.delivered < 3
        waiting = [m for m in webhooks(app) if m.delivered_at is None]
        # What it did not try, it gave back untouched, for the next worker.
        assert waiting and all(m.leased_until is None and m.attempts == 0 for m in waiting)
        while deliver(app).handled:
            pass
        assert len({webhook_id for webhook_id, _ in slow.received}) == 3
    finally:
        slow.stop()


def test_a_slow_body_does_not_hold_the_worker(app):
    trickle = Receiver()
    trickle.secret = register(app, trickle.url)
    left_early, finished = [], threading.Event()

    def do_post(handler):
        handler.rfile.read(int(handler.headers["Content-Length"]))
        handler.send_response(200)
        handler.send_header("Content-Length", "40")
        handler.end_headers()
        try:
            for _ in range(40):
                handler.wfile.write(b".")
                handler.wfile.flush()
                time.sleep(0.1)
        except OSError:
            left_early.append(True)
        finally:
            finished.set()

    trickle.server.RequestHandlerClass.do_POST = do_post
    try:
        change_something(app)
        assert deliver(app).delivered == 1
        assert finished.wait(10)
        assert left_early == [True]  # the worker hung up once it had the status
    finally:
        trickle.stop()


def test_delivered_webhooks_keep_no_address(app, receiver):
    receiver.secret = register(app, receiver.url)
    change_something(app)
    deliver(app)
    [message] = webhooks(app)
    assert message.delivered_at is not None
    assert "email" not in message.payload["data"]
    assert message.payload["data"]["purpose"] == "newsletter"
