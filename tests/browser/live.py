"""The service on a real port, with its outbox worker and a real SMTP server beside it.

Used by the browser tests and by bench/console_walkthrough.py, so both see the service as
a member or a staff member would: over HTTP, with mails that really leave over SMTP.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from flask import Flask
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from playwright.sync_api import Page
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from consentsvc import clients, create_app, ledger, staff, tokens
from consentsvc.cli import deliver_once
from consentsvc.demo import seed, seed_people
from consentsvc.extensions import db
from consentsvc.models import Library, OutboxMessage, StaffRole, StaffUser, Subject

from ..conftest import TEST_CONFIG
from ..test_smtp import Inbox, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
STAFF_PASSWORD = "correct horse battery staple"
DEMO_PEOPLE = 40


@dataclass(frozen=True)
class Member:
    subject_id: int
    email: str


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without a log line per request (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class LiveService:
    """The app served by werkzeug in a thread, its outbox worker in another, an SMTP sink."""

    def __init__(self, folder: Path, people: int = DEMO_PEOPLE) -> None:
        self.inbox = Inbox()
        self._smtp = Controller(self.inbox, hostname="127.0.0.1", port=free_port())
        self._smtp.start()
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        # Always a SQLite file of its own: the shared PostgreSQL test database is dropped and
        # made anew by the other tests' app fixtures, which would pull it from under a server
        # that lives as long as the session.
        self.app: Flask = create_app(
            {
                **TEST_CONFIG,
                "TESTING": False,
                "BASE_URL": self.base_url,
                "DATABASE_URL": f"sqlite:///{folder / 'live.sqlite'}",
                "MAIL_DIR": str(folder / "mail"),
                "MAIL_SERVER": "127.0.0.1",
                "MAIL_PORT": self._smtp.port,
                "MAIL_SUPPRESS_SEND": False,
                "MAIL_TIMEOUT": 5,
                "MAIL_DEFAULT_SENDER": "Bibliotheek Borne <nieuwsbrief@bibliotheek.example>",
            }
        )
        with self.session() as session:
            db.create_all()
            for library in seed(session):
                seed_people(session, library, people)
            borne = self.library(session)
            self.staff = {
                role: staff.create(
                    session, borne, f"{role}@borne.example", role.title(), role, STAFF_PASSWORD
                ).email
                for role in StaffRole.ALL
            }
        self._unique = itertools.count(1)
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="live-http", daemon=True),
            threading.Thread(target=self._deliver, name="live-outbox", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        for thread in self._threads:
            thread.join(timeout=10)
        self._server.server_close()
        self._smtp.stop()
        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()

    def _deliver(self) -> None:
        # The `consentsvc worker` loop, with a short pause so a test never waits long.
        while not self._stopping.is_set():
            with self.app.app_context():
                handled = deliver_once().handled
                db.session.remove()
            if not handled:
                self._stopping.wait(0.05)

    # -- the database, for setting up and checking -------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A committed unit of work on the live database (rolled back on an exception).

        Never nest two: on SQLite each takes the write lock, so the inner one would wait
        for the outer one until its busy timeout ends.
        """
        with self.app.app_context():
            try:
                yield db.session
                db.session.commit()
            finally:
                db.session.remove()

    @staticmethod
    def library(session: Session, slug: str = "borne") -> Library:
        found = session.scalar(select(Library).where(Library.slug == slug))
        assert found is not None
        return found

    def decided(self, timeout: float = 15) -> None:
        """Wait until the worker has decided every signup and link request the pages recorded
        (a request only records the attempt; see consentsvc/intake.py)."""
        waiting = (
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.channel == "request",
                OutboxMessage.delivered_at.is_(None),
                OutboxMessage.dead_at.is_(None),
            )
        )
        deadline = time.monotonic() + timeout
        while True:
            with self.session() as session:
                if not session.scalar(waiting):
                    return
            assert time.monotonic() < deadline, "the worker left requests undecided"
            time.sleep(0.05)

    def states(self, email_address: str) -> dict[str, str | None]:
        """The member's current state per purpose code, as a sender's check would read it
        once the worker has decided what the pages recorded."""
        self.decided()
        with self.session() as session:
            subject = ledger.find_subject(session, self.library(session), email_address)
            assert subject is not None, f"{email_address} is not known"
            return {s.purpose.code: s.status for s in ledger.state_of(session, subject)}

    def states_of(self, subject_id: int) -> dict[str, str | None]:
        with self.session() as session:
            subject = session.get(Subject, subject_id)
            assert subject is not None
            return {s.purpose.code: s.status for s in ledger.state_of(session, subject)}

    def unique_email(self, name: str = "lid") -> str:
        return f"{name}{next(self._unique)}@example.nl"

    def new_member(
        self,
        name: str = "lid",
        purposes: tuple[str, ...] = ("newsletter",),
        confirmed: bool = True,
        language: str = "nl",
    ) -> tuple[Member, list[int]]:
        """A member who signed up (and confirmed), made without the browser; and the ids of
        the requests a confirmation link answers."""
        address = self.unique_email(name)
        with self.session() as session:
            result = ledger.signup(
                session, self.library(session), address, list(purposes),
                language=language, channel=ledger.Channel.WEB_FORM,
            )  # fmt: skip
            if confirmed:
                ledger.confirm(session, result.subject, result.request_ids)
            session.flush()
            return Member(result.subject.id, address), list(result.request_ids)

    def token(self, kind: str, *args: object) -> str:
        """A signed link token, made as the service makes it (tokens.make_<kind>)."""
        with self.app.app_context():
            return getattr(tokens, f"make_{kind}")(*args)

    def backdated_token(self, kind: str, payload: object, age: int) -> str:
        """A token of a kind signed `age` seconds ago, to see what an old link does."""
        signed_at = int(time.time()) - age

        class Backdated(TimestampSigner):
            def get_timestamp(self) -> int:
                return signed_at

        key = self.app.config["SECRET_KEY"]
        return URLSafeTimedSerializer(key, salt=tokens.SALTS[kind], signer=Backdated).dumps(payload)

    def staff_with_login_code(self) -> str:
        """The address of a staff account that logs in with a code (TOTP) after the password."""
        address = "code@borne.example"
        with self.session() as session:
            if session.scalar(select(StaffUser.id).where(StaffUser.email == address)) is None:
                user = staff.create(
                    session, self.library(session), address, "Code", StaffRole.DESK,
                    STAFF_PASSWORD,
                )  # fmt: skip
                user.totp_secret = staff.new_totp_secret()
        return address

    def purpose_id(self, code: str) -> int:
        with self.session() as session:
            return ledger.purpose_by_code(self.library(session), code).id

    def subject(self, subject_id: int) -> Subject:
        """The person's row as it is now (detached; read its columns only)."""
        with self.session() as session:
            found = session.get(Subject, subject_id)
            assert found is not None
            session.expunge(found)
            return found

    # -- mail ----------------------------------------------------------------------------------

    def link_from_mail(self, address: str, kind: str, timeout: float = 15) -> str:
        """The link of a kind (confirm, preferences, download, email) in the newest mail to
        this address that has one, waiting for the outbox worker to send it over SMTP."""
        pattern = re.compile(rf"{re.escape(self.base_url)}/{kind}/[A-Za-z0-9_.\-]+")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for envelope in reversed(self.inbox.messages):
                if address in envelope.rcpt_tos:
                    match = pattern.search(plain_text(envelope.content))
                    if match:
                        return match.group(0)
            time.sleep(0.05)
        raise AssertionError(f"no mail with a {kind} link to {address} within {timeout} s")

    def api_key(self, purposes: list[str]) -> str:
        """The key of a new API client of the demo library, as a mailing processor holds it."""
        with self.session() as session:
            _client, key = clients.create(session, self.library(session), "sender", purposes)
            return key


def plain_text(raw: bytes) -> str:
    """The text part of a mail as received, with its transfer encoding undone."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


# -- in the browser ---------------------------------------------------------------------------


def log_in(page: Page, email: str, password: str = STAFF_PASSWORD) -> None:
    """Log in on the console's login page and wait for the search page."""
    page.goto("/admin/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form[action='/admin/login'] button[type=submit]")
    page.wait_for_selector("#q")


def open_action(page: Page, name: str) -> None:
    """Unfold one of the actions on a person's page (each is folded away until needed)."""
    page.click(f"#act-{name} > summary")
    page.wait_for_selector(f"#act-{name}[open]")


def submit(page: Page, form: str, until: str) -> None:
    """Press the submit button of a form and wait for the element that shows it worked."""
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector(until)
