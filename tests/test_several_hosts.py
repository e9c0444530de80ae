"""Two gunicorn instances and two workers on one PostgreSQL, with Redis for rate limits:
signups, confirmations and one-click withdrawals through both, one instance and one worker
killed half-way. Every mail and webhook arrives under one id, limits count both instances,
and no state is lost or doubled (docs/operations.md: several hosts on one database)."""

from __future__ import annotations

import contextlib
import re
import secrets
import signal
import subprocess
import time
from email import message_from_bytes
from pathlib import Path

import httpx
import redis
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from consentsvc import create_app, ledger, outbox, tokens
from consentsvc.extensions import db
from consentsvc.models import Library, OutboxMessage, Subject, utcnow

from . import servers
from .conftest import TEST_CONFIG, needs
from .test_faults import BIN, Receiver, service_env

CONFIRM = re.compile(r"http://localhost(/confirm/[A-Za-z0-9_.\-]+)")


def _redis_answers() -> bool:
    with contextlib.suppress(redis.RedisError):
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping())
    return False


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603 - the project's own command
        [BIN / "consentsvc", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - the project's own command
            [BIN / "consentsvc", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _mails(folder: Path) -> list:
    return [message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]


def _text(mail) -> str:
    return "".join(
        part.get_payload(decode=True).decode()
        for part in mail.walk()
        if part.get_content_type() == "text/plain"
    )


def _confirm_links(folder: Path) -> dict[str, str]:
    """Each person's confirmation link, from the mails the workers wrote."""
    links = {}
    for mail in _mails(folder):
        found = CONFIRM.search(_text(mail))
        if found:
            links[mail["To"]] = found.group(1)
    return links


def _until(condition, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {condition.__doc__}")


def test_two_instances_and_two_workers_share_one_database(own_postgres, tmp_path):
    needs(_redis_answers(), "Redis at 127.0.0.1:6379", "this test shares rate limits in it")
    host, port, user, name = own_postgres
    url = f"postgresql://{user}@{host}:{port}/{name}"
    settings = {
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
        # A prefix of its own: parallel test runs share the one Redis.
        "RATELIMIT_KEY_PREFIX": f"test-{secrets.token_hex(6)}",
        "LINK_REQUEST_RATE_LIMIT": "4 per minute",
        "SIGNUP_RATE_LIMIT": "1000 per minute",
        "API_RATE_LIMIT": "10000 per minute",
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "WORKER_INTERVAL": "0.2",
    }
    env = service_env(url, tmp_path, **settings)
    mail = tmp_path / "mail"
    _run(env, "db", "upgrade")
    _run(env, "demo")
    created = _run(env, "clients", "create", "--library", "borne", "--name", "Website",
                   "--purposes", "newsletter")  # fmt: skip
    key = created.split("key (shown only now): ")[1].strip()
    receiver = Receiver()
    receiver.release.set()  # no delivery is held back here
    hook = _run(env, "webhooks", "add", "--library", "borne", "--url", receiver.url)
    receiver.verifier = Webhook(hook.split("secret (shown only now): ")[1].strip())
    app = create_app({**TEST_CONFIG, "DATABASE_URL": url, "TESTING": False})

    people = [f"p{n}@example.nl" for n in range(24)]
    with contextlib.ExitStack() as stack:
        stack.callback(receiver.close)
        a = stack.enter_context(servers.gunicorn("-w", "2", env=env, log=tmp_path / "a.log"))
        b = stack.enter_context(
            servers.gunicorn("-w", "2", env=env, log=tmp_path / "b.log", new_session=True)
        )
        workers = [_worker(env, tmp_path / f"worker{n}.log") for n in (1, 2)]
        for worker in workers:
            stack.callback(lambda w=worker: (w.kill(), w.wait(timeout=30)))
        http = stack.enter_context(httpx.Client(timeout=20))
        api = {"Authorization": f"Bearer {key}"}

        def sign_up(base: str, email: str) -> None:
            body = {"email": email, "purposes": ["newsletter"]}
            answer = http.post(f"{base}/api/v1/signups", json=body, headers=api)
            assert answer.status_code == 202, answer.text

        # Rate limits are kept in Redis: the two instances count together.
        page = http.get(f"{a.url}/borne/preferences").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        asked = [
            http.post(f"{base}/borne/preferences",
                      data={"email": "p0@example.nl", "csrf_token": token}).status_code
            for base in (a.url, b.url, a.url, b.url, a.url)
        ]  # fmt: skip
        assert asked == [303, 303, 303, 303, 429]  # taken (on to "check your mail"), then limited

        # The first half through both instances, both workers running.
        for n, email in enumerate(people[:12]):
            sign_up((a.url, b.url)[n % 2], email)
        links = _until(lambda: len(_confirm_links(mail)) >= 12 and _confirm_links(mail))
        for n, email in enumerate(people[:12]):
            base = (a.url, b.url)[n % 2]
            assert http.post(f"{base}{links[email]}").status_code == 200

        # One instance and one worker die without a word, half-way.
        b.kill()
        workers[1].send_signal(signal.SIGKILL)
        workers[1].wait(timeout=30)
        for email in people[12:]:
            sign_up(a.url, email)
        # The dead worker's leases would end after outbox.LEASE; end them now.
        with app.app_context():
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.delivered_at.is_(None))
                .values(leased_until=utcnow())
            )
            db.session.commit()
            db.session.remove()
        links = _until(lambda: len(_confirm_links(mail)) >= 24 and _confirm_links(mail))
        for email in people[12:]:
            assert http.post(f"{a.url}{links[email]}").status_code == 200
        # One-click withdrawals through the instance that is left, as a mailbox sends them.
        with app.app_context():
            borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
            newsletter = ledger.purpose_by_code(borne, "newsletter")
            stopped = people[::3]
            for email in stopped:
                person = ledger.find_subject(db.session, borne, email)
                link = tokens.make_unsubscribe(person.id, newsletter.id)
                click = http.post(
                    f"{a.url}/unsubscribe/{link}", data={"List-Unsubscribe": "One-Click"}
                )
                assert click.status_code == 200
            db.session.remove()

        def outbox_empty() -> bool:
            """every outbox message delivered"""
            with app.app_context():
                waiting = outbox.backlog(db.session)
                db.session.remove()
                return waiting.due == waiting.waiting == 0

        _until(outbox_empty)

    # No state lost or doubled: each person granted once, a third withdrawn, chains whole.
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        states = {}
        for email in people:
            person = db.session.scalar(select(Subject).where(Subject.email == email))
            status = {s.purpose.code: s.status for s in ledger.state_of(db.session, person)}
            states[email] = status["newsletter"]
            granted = [e for e in ledger.history(db.session, person) if e.action == "granted"]
            assert len(granted) == 1, email
        assert states == {e: "withdrawn" if e in stopped else "granted" for e in people}
        assert ledger.verify(db.session) == []
        delivered = {
            m.message_id: m.channel
            for m in db.session.scalars(select(OutboxMessage))
            if m.delivered_at is not None and m.channel in ("mail", "webhook")
        }
        dead = db.session.scalars(select(OutboxMessage).where(OutboxMessage.dead_at.is_not(None)))
        assert list(dead) == []
        db.session.remove()
        db.engine.dispose()
    # Every webhook under one id, processed once; one per change of state.
    webhooks = {i for i, channel in delivered.items() if channel == "webhook"}
    assert set(receiver.processed) == webhooks
    kinds = sorted(body["type"] for body in receiver.processed.values())
    assert kinds == ["consent.granted"] * 24 + ["consent.withdrawn"] * len(stopped)
    # Every mail under its outbox message's id (a mail sent again would keep it), and each
    # person's confirmation exactly once.
    mails = _mails(mail)
    ids = {m["Message-ID"].strip("<>").split("@")[0] for m in mails}
    assert ids == {i for i, channel in delivered.items() if channel == "mail"}
    confirmations: dict[str, set[str]] = {}
    for m in mails:
        if CONFIRM.search(_text(m)):
            confirmations.setdefault(m["To"], set()).add(m["Message-ID"])
    assert confirmations == {e: confirmations.get(e) for e in people}
    assert all(len(i) == 1 for i in confirmations.values())
