"""Faults: a worker killed mid-delivery, and a database that is away for a moment."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import event, func, select, update
from standardwebhooks.webhooks import Webhook

from consentsvc import clients, create_app, ledger, outbox, tokens
from consentsvc.demo import seed
from consentsvc.extensions import db
from consentsvc.models import ConsentEvent, Library, OutboxMessage, utcnow
from consentsvc.web.errors import MESSAGES

from .conftest import TEST_CONFIG

BIN = Path(sys.executable).parent


def service_env(database_url: str, tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of a consentsvc process (worker, gunicorn) started by a test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTSVC_")}
    env.update(
        {
            "CONSENTSVC_DATABASE_URL": database_url,
            "CONSENTSVC_SECRET_KEY": TEST_CONFIG["SECRET_KEY"],
            "CONSENTSVC_SUPPRESSION_KEY": TEST_CONFIG["SUPPRESSION_KEY"],
            "CONSENTSVC_BASE_URL": "http://localhost",
            "CONSENTSVC_MAIL_DIR": str(tmp_path / "mail"),
            "CONSENTSVC_RATELIMIT_ENABLED": "false",
        }
    )
    env.update({f"CONSENTSVC_{key}": value for key, value in settings.items()})
    return env


# -- a worker killed while a webhook is on its way ------------------------------------------------


class Receiver:
    """A library's webhook endpoint that checks signatures and dedupes on webhook-id.

    The first delivery is held until the test releases it, so the worker can be killed
    while it waits for the answer.
    """

    def __init__(self) -> None:
        self.verifier: Webhook | None = None
        self.arrivals: list[str] = []
        self.processed: dict[str, dict] = {}
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                assert receiver.verifier is not None
                receiver.verifier.verify(body, dict(self.headers.items()))
                webhook_id = self.headers["webhook-id"]
                with receiver.lock:
                    receiver.arrivals.append(webhook_id)
                    first = len(receiver.arrivals) == 1
                if first:
                    receiver.first_arrived.set()
                    receiver.release.wait(timeout=30)
                with receiver.lock:
                    # What a receiver is told to do: a message it has seen is not acted
                    # on again.
                    receiver.processed.setdefault(webhook_id, json.loads(body))
                with contextlib.suppress(OSError):
                    # The sender of the first delivery may be dead by now.
                    self.send_response(204)
                    self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/consent"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_worker_killed_mid_delivery_redelivers_and_receiver_dedupes(app, tmp_path):
    settings = {
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "WORKER_INTERVAL": "0.2",
    }
    env = service_env(app.config["DATABASE_URL"], tmp_path, **settings)
    receiver = Receiver()
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        endpoint = outbox.add_endpoint(
            db.session, lib.id, receiver.url, ["consent.granted"],
            allow_http=True, allowed_networks=["127.0.0.0/8"],
        )  # fmt: skip
        receiver.verifier = Webhook(endpoint.secret)
        subject = ledger.subject_for(db.session, lib, "wachten@example.nl", "nl")
        ledger.grant(db.session, subject, "newsletter", channel=ledger.Channel.STAFF)
        db.session.commit()
        message = db.session.scalar(select(OutboxMessage))
        message_row, webhook_id = message.id, message.message_id
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        db.session.remove()

    def state():
        with app.app_context():
            row = db.session.get(OutboxMessage, message_row)
            result = (row.delivered_at, row.leased_until, row.dead_at)
            db.session.remove()
            return result

    try:
        with open(tmp_path / "worker.log", "wb") as log:
            worker = subprocess.Popen(  # noqa: S603 - the project's own command
                [BIN / "consentsvc", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                assert receiver.first_arrived.wait(timeout=60), "the worker never delivered"
            finally:
                worker.kill()
                worker.wait(timeout=10)
        # The receiver finishes the request it had; the worker never heard the 204.
        receiver.release.set()
        delivered_at, leased_until, dead_at = state()
        assert delivered_at is None and dead_at is None
        assert leased_until is not None and leased_until > utcnow()

        # While the dead worker's lease runs, another worker leaves the message alone: it
        # cannot tell a dead worker from a slow one.
        again = subprocess.run(  # noqa: S603 - the project's own command
            [BIN / "consentsvc", "worker", "--once"], env=env, capture_output=True, timeout=60
        )
        assert again.returncode == 0, again.stderr
        assert receiver.arrivals == [webhook_id]
        assert state()[0] is None

        # Let the lease run out (outbox.LEASE, five minutes) without waiting for it.
        with app.app_context():
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_row)
                .values(leased_until=utcnow() - timedelta(seconds=1))
            )
            db.session.commit()
            db.session.remove()
        last = subprocess.run(  # noqa: S603 - the project's own command
            [BIN / "consentsvc", "worker", "--once"], env=env, capture_output=True, timeout=60
        )
        assert last.returncode == 0, last.stderr
        assert b"1 delivered" in last.stdout
    finally:
        receiver.close()

    assert receiver.arrivals == [webhook_id, webhook_id]
    assert list(receiver.processed) == [webhook_id]
    assert receiver.processed[webhook_id]["type"] == "consent.granted"
    assert receiver.processed[webhook_id]["data"]["purpose"] == "newsletter"
    delivered_at, leased_until, dead_at = state()
    assert delivered_at is not None and leased_until is None and dead_at is None


# -- the database away for a moment ---------------------------------------------------------------


class Proxy:
    """A TCP relay to the database that the test can cut and restore, like a network
    that drops for a moment."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.up = True
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _address = self.listener.accept()
            except OSError:
                return
            if not self.up:
                # Down: every new connection is dropped at once.
                conn.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.open += [conn, upstream]
            for source, target in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            dropped, self.open = self.open, []
        for sock in dropped:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def _subscriber_and_key(email: str) -> tuple[int, str]:
    """A confirmed newsletter subscriber of Borne and a sender's key (inside an app context)."""
    lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
    result = ledger.signup(
        db.session, lib, email, ["newsletter"], language="nl", channel="web_form"
    )
    ledger.confirm(db.session, result.subject, result.request_ids)
    _client, key = clients.create(db.session, lib, "Laposta", ["newsletter"])
    db.session.commit()
    return result.subject.id, key


def _translated(app, language: str) -> tuple[str, str]:
    with app.test_request_context(f"/?lang={language}"):
        title, message = MESSAGES[503]
        return str(title), str(message)


def test_database_away_answers_503_fails_closed_and_recovers(own_postgres, tmp_path, caplog):
    host, port, user, name = own_postgres
    proxy = Proxy(host, port)
    url = f"postgresql://{user}@127.0.0.1:{proxy.port}/{name}?connect_timeout=5"
    app = create_app({**TEST_CONFIG, "DATABASE_URL": url, "MAIL_DIR": str(tmp_path / "mail")})
    email = "storing@example.nl"
    try:
        with app.app_context():
            db.create_all()
            seed(db.session)
            subject_id, key = _subscriber_and_key(email)
            token = tokens.make_preferences(subject_id)
        api = {"Authorization": f"Bearer {key}"}
        check = {"purpose": "newsletter", "recipients": [email]}
        member = app.test_client()

        def allowed():
            response = member.post("/api/v1/consent/check", json=check, headers=api)
            assert response.status_code == 200, response.get_data(as_text=True)
            return response.get_json()["results"][0]["allowed"]

        assert member.get(f"/preferences/{token}").status_code == 200
        assert allowed() is True

        caplog.set_level(logging.INFO)
        proxy.cut()

        page = member.get(f"/preferences/{token}")
        assert page.status_code == 503
        assert page.headers["Retry-After"].isdigit()
        html = page.get_data(as_text=True)
        nl_title, nl_message = _translated(app, "nl")
        en_title, en_message = _translated(app, "en")
        assert '<html lang="nl">' in html
        assert nl_title in html and nl_message in html
        # Really in Dutch, not the English source text.
        assert (nl_title, nl_message) != (en_title, en_message)
        english = member.get(f"/preferences/{token}?lang=en").get_data(as_text=True)
        assert en_title in english and en_message in english

        switch_off = member.post(
            f"/preferences/{token}", data={"purpose": "newsletter", "choice": "off"}
        )
        assert switch_off.status_code == 503
        # The member chose English a moment ago (a cookie): the error page keeps to it.
        assert en_title in switch_off.get_data(as_text=True)
        assert member.post("/borne/signup", data={"email": "x@example.nl"}).status_code == 503

        answer = member.post("/api/v1/consent/check", json=check, headers=api)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"].isdigit()
        body = answer.get_json()
        # Fails closed: an error, never a list of decisions a sender could act on.
        assert body == {"error": {"code": "unavailable", "message": en_title}}
        assert "allowed" not in answer.get_data(as_text=True)

        logged = "\n".join(
            record.getMessage() + (record.exc_text or "") for record in caplog.records
        )
        assert "database unavailable" in logged
        for secret in (email, token, key, key[:10]):
            assert secret not in logged

        proxy.restore()
        # The same app, no restart: pages, the check and changes work again.
        assert member.get(f"/preferences/{token}").status_code == 200
        assert allowed() is True
        switch_off = member.post(
            f"/preferences/{token}", data={"purpose": "newsletter", "choice": "off"}
        )
        assert switch_off.status_code == 303
        assert allowed() is False
        with app.app_context():
            actions = db.session.scalars(
                select(ConsentEvent.action)
                .where(ConsentEvent.subject_id == subject_id)
                .order_by(ConsentEvent.id)
            ).all()
            # The switch-off during the outage saved nothing; the one after it did.
            assert actions == ["requested", "granted", "withdrawn"]
            assert ledger.verify(db.session) == []
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        proxy.close()


def test_503_page_is_plain_and_names_no_library(own_postgres, tmp_path):
    """The error page must not need the database itself (it would fail a second time)."""
    host, port, user, name = own_postgres
    proxy = Proxy(host, port)
    url = f"postgresql://{user}@127.0.0.1:{proxy.port}/{name}?connect_timeout=5"
    app = create_app({**TEST_CONFIG, "DATABASE_URL": url, "MAIL_DIR": str(tmp_path / "mail")})
    try:
        with app.app_context():
            db.create_all()
            seed(db.session)
            db.session.commit()
        client = app.test_client()
        assert "Bibliotheek Borne" in client.get("/borne/signup").get_data(as_text=True)
        proxy.cut()
        page = client.get("/borne/signup")
        assert page.status_code == 503
        html = page.get_data(as_text=True)
        assert "Bibliotheek Borne" not in html
        assert re.search(r"<h1>[^<]+</h1>", html)
        health = client.get("/healthz")
        assert health.status_code == 503
        proxy.restore()
        assert client.get("/healthz").get_json() == {"status": "ok"}
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        proxy.close()


def test_sqlite_write_lock_held_too_long_answers_503_and_recovers(app_factory, tmp_path, caplog):
    """SQLite's outage is another process holding the write lock (a backup, a long
    migration) past the busy timeout: writes answer 503, the check fails closed, reading
    pages still work, and the same app goes on once the lock is gone."""
    path = tmp_path / "busy.sqlite"
    app = app_factory(DATABASE_URL=f"sqlite:///{path}")
    email = "wacht@example.nl"
    with app.app_context():
        subject_id, key = _subscriber_and_key(email)
        token = tokens.make_preferences(subject_id)

        # Wait 0.3 s for the lock instead of the service's 10 s, to keep the test short.
        @event.listens_for(db.engine, "connect")
        def _short_wait(dbapi_connection, _record):
            dbapi_connection.execute("PRAGMA busy_timeout=300")

        db.session.remove()
        db.engine.dispose()
    api = {"Authorization": f"Bearer {key}"}
    check = {"purpose": "newsletter", "recipients": [email]}
    member = app.test_client()
    caplog.set_level(logging.INFO)

    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        page = member.get(f"/preferences/{token}")
        assert page.status_code == 200  # WAL: readers are not blocked by the writer
        off = member.post(f"/preferences/{token}", data={"purpose": "newsletter", "choice": "off"})
        assert off.status_code == 503
        assert off.headers["Retry-After"].isdigit()
        assert _translated(app, "nl")[0] in off.get_data(as_text=True)
        answer = member.post("/api/v1/consent/check", json=check, headers=api)
        assert answer.status_code == 503
        assert answer.get_json()["error"]["code"] == "unavailable"
        assert "allowed" not in answer.get_data(as_text=True)
    finally:
        holder.rollback()
        holder.close()

    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert "SQLITE_BUSY" in logged
    for secret in (email, token, key):
        assert secret not in logged
    answer = member.post("/api/v1/consent/check", json=check, headers=api)
    assert answer.status_code == 200
    assert answer.get_json()["results"][0]["allowed"] is True
    off = member.post(f"/preferences/{token}", data={"purpose": "newsletter", "choice": "off"})
    assert off.status_code == 303
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 3
        assert ledger.verify(db.session) == []
