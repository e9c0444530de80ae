import os
import re

import pytest
from sqlalchemy import select

from consentsvc import create_app
from consentsvc.demo import seed
from consentsvc.extensions import db, mail
from consentsvc.models import Library

# The suite runs on SQLite by default and on PostgreSQL when this names a database.
TEST_DATABASE_URL = os.environ.get("CONSENTSVC_TEST_DATABASE_URL")

TEST_CONFIG = {
    "TESTING": True,
    "SECRET_KEY": "test-secret-key-that-is-long-enough-0123",
    "SUPPRESSION_KEY": "test-suppression-key",
    "IBAN_KEY": "dGVzdC1pYmFuLWtleS1wdWJsaXNoZWQtaW4tdGVzdHM=",
    "SIGNING_KEY": "dGVzdC1zaWduaW5nLWtleS1wdWJsaXNoZWQtdGVzdHM=",
    "BASE_URL": "http://localhost",
    # A server name makes Flask-Mail send (suppressed while testing, and recorded).
    "MAIL_SERVER": "localhost",
    "RATELIMIT_ENABLED": False,
}


def make_app(tmp_path, **overrides):
    url = TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'test.sqlite'}"
    config = {**TEST_CONFIG, "DATABASE_URL": url, "MAIL_DIR": str(tmp_path / "mail"), **overrides}
    app = create_app(config)
    with app.app_context():
        db.drop_all()
        db.create_all()
        seed(db.session)
        db.session.commit()
    return app


@pytest.fixture
def app_factory(tmp_path):
    """make_app for tests that need their own configuration; closes every pool afterwards."""
    made = []

    def factory(**overrides):
        made.append(make_app(tmp_path, **overrides))
        return made[-1]

    yield factory
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Mailbox:
    """The mails the service sent, read like a list; reading first runs the outbox worker."""

    def __init__(self, app, recorded):
        self.app, self.recorded = app, recorded

    def _drain(self):
        from consentsvc.cli import deliver_once

        with self.app.app_context():
            while deliver_once().handled:
                pass
            db.session.remove()
        return self.recorded

    def __len__(self):
        return len(self._drain())

    def __getitem__(self, index):
        return self._drain()[index]

    def __iter__(self):
        return iter(self._drain())

    def __eq__(self, other):
        return self._drain() == other


@pytest.fixture
def outbox(app):
    with mail.record_messages() as messages:
        yield Mailbox(app, messages)


@pytest.fixture
def session(app):
    """A database session inside an app context, for ledger-level tests."""
    with app.app_context():
        yield db.session


@pytest.fixture
def borne(session):
    return session.scalar(select(Library).where(Library.slug == "borne"))


def csrf_token(client, url):
    """The form token of a page, as a browser would send it back."""
    page = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def link_in(message, kind):
    """The first link of a kind (confirm, preferences, unsubscribe) in a mail's text body."""
    match = re.search(rf"http://localhost(/{kind}/[A-Za-z0-9_.\-]+)", message.body)
    assert match, f"no {kind} link in mail"
    return match.group(1)


def work_outbox(app):
    """Run the outbox worker until nothing is due: it decides the signups and link requests
    that requests only recorded, and sends what they queue."""
    from consentsvc.cli import deliver_once

    with app.app_context():
        while deliver_once().handled:
            pass
        db.session.remove()


def signup(client, email="jan@example.nl", purposes=("newsletter",), library="borne", **extra):
    data = {"email": email, "purpose": list(purposes), **extra}
    data["csrf_token"] = csrf_token(client, f"/{library}/signup")
    return client.post(f"/{library}/signup", data=data)
