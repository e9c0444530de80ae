import contextlib
import os
import re
import secrets
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql as psql
from sqlalchemy import inspect, select, text

from consentsvc import create_app
from consentsvc.demo import seed
from consentsvc.extensions import db, mail
from consentsvc.models import Library

# The suite runs on SQLite by default and on PostgreSQL when this names a database.
GIVEN_DATABASE_URL = os.environ.get("CONSENTSVC_TEST_DATABASE_URL")
# pytest-xdist's worker id (gw0, gw1, ...) in a parallel run (`make test` runs `-n auto`).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")


def _database_of_this_worker(given: str | None, worker: str | None) -> str | None:
    """The database this process tests on: the given one, or in a parallel run on
    PostgreSQL one per worker beside it (`test` -> `test_gw0`), since every app fixture
    drops and recreates all tables. SQLite runs use a file per test and need nothing."""
    if not given or not worker or not given.startswith("postgres"):
        return given
    parts = urlsplit(given)
    return parts._replace(path=f"{parts.path.rstrip('/') or '/test'}_{worker}").geturl()


TEST_DATABASE_URL = _database_of_this_worker(GIVEN_DATABASE_URL, XDIST_WORKER)


def pytest_sessionstart(session):
    """On PostgreSQL: make this worker's own database if it is not there yet (connecting to
    the given database to do so, which must exist), and empty it. The databases outlive a
    run, and drop_all only knows today's tables: one an older checkout made with a foreign
    key that the models no longer have could not be dropped in drop_all's order."""
    if not TEST_DATABASE_URL or not TEST_DATABASE_URL.startswith("postgres"):
        return
    name = urlsplit(TEST_DATABASE_URL).path.lstrip("/")
    given = urlsplit(GIVEN_DATABASE_URL)._replace(scheme="postgresql").geturl()  # for libpq
    if TEST_DATABASE_URL != GIVEN_DATABASE_URL:
        with psycopg.connect(given, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone() is None:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(psql.SQL("CREATE DATABASE {}").format(psql.Identifier(name)))
    mine = urlsplit(TEST_DATABASE_URL)._replace(scheme="postgresql").geturl()
    with psycopg.connect(mine, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


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


def empty_database() -> None:
    """Drop every table (inside an app context), also those and the keys an older revision
    made that today's models do not know, which drop_all cannot take in its order."""
    db.session.remove()
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
            return
    db.drop_all()
    with db.engine.begin() as connection:
        for table in inspect(connection).get_table_names():
            connection.execute(text(f'DROP TABLE IF EXISTS "{table}"'))


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
    # Post/Redirect/Get: the answer is the "check your mail" page the redirect leads to.
    return client.post(f"/{library}/signup", data=data, follow_redirects=True)


def switch_in(page, code):
    """The preference centre's switch of a purpose, as a screen reader gets it: whether it
    is on (aria-checked), its name (title and state in words) and the choice it posts."""
    card = re.search(rf'<li class="purpose" id="purpose-{code}".*?</li>', page, re.S)
    assert card, f"no card for {code}"
    form = re.search(r"<form[^>]*>(.*?)</form>", card.group(0), re.S)
    assert form, f"no switch for {code}"
    button = re.search(
        rf'<button type="submit" class="switch" role="switch" aria-checked="(true|false)" '
        rf'id="toggle-{code}">(.*?)</button>',
        form.group(1),
        re.S,
    )
    assert button, form.group(1)
    name = " ".join(re.sub(r"<[^>]+>", " ", button.group(2)).split())
    choice = re.search(r'name="choice" value="(\w+)"', form.group(1)).group(1)
    return button.group(1) == "true", name, choice


# .ci/run sets this: there a missing server or browser is a failure, never a skip.
REQUIRE_ALL = os.environ.get("CONSENTSVC_TEST_REQUIRE_ALL") == "1"


def needs(available: bool, what: str, how: str) -> None:
    """Skip, saying what is missing and how to get it, unless everything must run (CI)."""
    if available:
        return
    reason = f"{what} is not available: {how}"
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (CONSENTSVC_TEST_REQUIRE_ALL=1: nothing may be skipped)")
    pytest.skip(reason)


def postgres_answers(url: str) -> bool:
    """Whether a PostgreSQL server takes connections at this URL (within two seconds)."""
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


# The tests that need a database behind a network connection (an outage, several hosts)
# always use PostgreSQL, in a database of their own, also when the suite runs on SQLite.
POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_url() -> str:
    if TEST_DATABASE_URL and TEST_DATABASE_URL.startswith("postgres"):
        return urlsplit(TEST_DATABASE_URL)._replace(path="/postgres").geturl()
    return POSTGRES


@pytest.fixture
def own_postgres():
    """A fresh PostgreSQL database for one test: (host, port, user, name)."""
    admin = _admin_url()
    needs(
        postgres_answers(admin), "PostgreSQL at 127.0.0.1:5432",
        "the outage and several-hosts tests need it; see docs/testing.md to start it",
    )  # fmt: skip
    name = f"consentsvc_own_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psql.SQL("CREATE DATABASE {}").format(psql.Identifier(name)))
    parts = urlsplit(admin)
    yield parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres", name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            psql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psql.Identifier(name))
        )
