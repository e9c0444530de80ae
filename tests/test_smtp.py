"""The service's own mails through a real SMTP server, including one that refuses at first."""

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from consentsvc.cli import deliver_once
from consentsvc.extensions import db
from consentsvc.models import OutboxMessage, utcnow

from .conftest import signup
from .servers import free_port


class Inbox:
    """An aiosmtpd handler that refuses the first `refusals` messages with a 451."""

    def __init__(self, refusals=0):
        self.refusals, self.messages = refusals, []

    async def handle_DATA(self, server, session, envelope):
        if self.refusals:
            self.refusals -= 1
            return "451 4.3.0 Try again later"
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp():
    def start(refusals=0):
        inbox = Inbox(refusals)
        port = free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        servers.append(controller)
        return inbox, port

    servers = []
    yield start
    for controller in servers:
        controller.stop()


def mail_app(app_factory, port):
    return app_factory(
        MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_SUPPRESS_SEND=False,
        MAIL_DEFAULT_SENDER="Bibliotheek Borne <nieuwsbrief@bibliotheek.example>",
    )  # fmt: skip


def run_worker(app):
    with app.app_context():
        report = deliver_once()
        db.session.remove()
        return report


def test_confirmation_mail_over_smtp(app_factory, smtp):
    inbox, port = smtp()
    app = mail_app(app_factory, port)
    signup(app.test_client(), "jan@example.nl")
    assert inbox.messages == []  # queued with the signup, sent by the worker
    assert run_worker(app).delivered == 1
    [envelope] = inbox.messages
    assert envelope.rcpt_tos == ["jan@example.nl"]
    text = envelope.content.decode()
    assert "Subject: Bevestig je aanmelding bij Bibliotheek Borne" in text
    assert "multipart/alternative" in text and "text/html" in text
    assert "http://localhost/confirm/" in text


def test_a_refusing_server_is_retried_and_the_mail_arrives_once(app_factory, smtp):
    inbox, port = smtp(refusals=1)
    app = mail_app(app_factory, port)
    signup(app.test_client(), "jan@example.nl")
    report = run_worker(app)
    assert (report.delivered, report.retried) == (0, 1)
    assert inbox.messages == []
    with app.app_context():
        [message] = db.session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "mail"))
        assert message.last_error == "mail: SMTPDataError"
        db.session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
        db.session.commit()
    assert run_worker(app).delivered == 1
    assert len(inbox.messages) == 1
    assert run_worker(app).handled == 0


def test_server_down_keeps_the_mail_waiting(app_factory):
    app = mail_app(app_factory, free_port())  # nothing listens there
    signup(app.test_client(), "jan@example.nl")
    assert run_worker(app).retried == 1
    with app.app_context():
        [message] = db.session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "mail"))
        assert message.delivered_at is None and message.dead_at is None
        assert message.last_error == "mail: ConnectionRefusedError"
