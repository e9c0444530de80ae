"""Nobody learns by timing whether an address is known: staff login does one argon2
verification whatever the account, and signups and link requests do the same database work
for every address (the outbox worker decides afterwards). bench/enumeration.py measures it."""

import json
import logging
import re
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from consentsvc import ledger, staff
from consentsvc.cli import deliver_once
from consentsvc.extensions import db
from consentsvc.models import (
    ConsentEvent,
    Evidence,
    Library,
    OutboxMessage,
    StaffUser,
    utcnow,
)

from .conftest import csrf_token
from .test_api import make_key

PASSWORD = "correct horse battery"


class CountingHasher:
    """The real argon2 hasher, counting how often it verifies and hashes."""

    def __init__(self, real):
        self.real, self.verified, self.hashed = real, 0, 0

    def verify(self, *args):
        self.verified += 1
        return self.real.verify(*args)

    def hash(self, *args):
        self.hashed += 1
        return self.real.hash(*args)

    def __getattr__(self, name):
        return getattr(self.real, name)


def _staff_accounts(app):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        for name in ("open", "locked", "closed"):
            staff.create(db.session, lib, f"{name}@bibliotheek.example", "Anna", "desk", PASSWORD)
        db.session.flush()
        users = {u.email: u for u in db.session.scalars(select(StaffUser))}
        users["locked@bibliotheek.example"].locked_until = utcnow() + timedelta(minutes=10)
        users["closed@bibliotheek.example"].active = False
        db.session.commit()


FAILURES = {
    "unknown": ("nobody@bibliotheek.example", "wrong password!"),
    "wrong password": ("open@bibliotheek.example", "wrong password!"),
    "locked": ("locked@bibliotheek.example", PASSWORD),
    "deactivated": ("closed@bibliotheek.example", PASSWORD),
}


def test_every_failed_login_costs_one_argon2_verification(app, monkeypatch):
    _staff_accounts(app)
    hasher = CountingHasher(staff._hasher)
    monkeypatch.setattr(staff, "_hasher", hasher)
    client = app.test_client()
    answers = {}
    for kind, (email, password) in FAILURES.items():
        hasher.verified = hasher.hashed = 0
        token = csrf_token(client, "/admin/login")
        response = client.post(
            "/admin/login", data={"email": email, "password": password, "csrf_token": token}
        )
        assert response.status_code == 401, kind
        assert (kind, hasher.verified, hasher.hashed) == (kind, 1, 0)
        answers[kind] = re.sub(r'value="[^"]*"', "", response.get_data(as_text=True))
    assert "even op slot" in answers["unknown"]
    assert len(set(answers.values())) == 1, "the answer tells the kinds of failure apart"
    # The right password still logs in, with one verification as well.
    hasher.verified = 0
    token = csrf_token(client, "/admin/login")
    response = client.post(
        "/admin/login",
        data={"email": "open@bibliotheek.example", "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 303
    assert hasher.verified == 1


@pytest.mark.parametrize("kind", ["locked", "deactivated"])
def test_a_locked_or_closed_account_is_refused_with_the_right_password(app, kind):
    """It costs a verification against a stand-in hash, and never lets anyone in."""
    _staff_accounts(app)
    email, password = FAILURES[kind]
    with app.app_context():
        assert staff.login(db.session, email, password) is None
        db.session.commit()


# -- signups and "mail me my link" ----------------------------------------------------------------

ORIGIN = "http://127.0.0.1:8000"  # an allowed origin of the demo libraries
KINDS = ("unknown", "known", "pending", "confirmed")


def _people(app, prefix):
    """One address per kind: never seen, known but subscribed to nothing, pending, confirmed."""
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        for kind in KINDS[1:]:
            result = ledger.signup(
                db.session, lib, f"{prefix}.{kind}@example.nl", ["newsletter"],
                language="nl", channel=ledger.Channel.WEB_FORM,
            )  # fmt: skip
            if kind != "pending":
                ledger.confirm(db.session, result.subject, result.request_ids)
            if kind == "known":
                ledger.withdraw(db.session, result.subject, "newsletter", channel="one_click")
        db.session.commit()
    return {kind: f"{prefix}.{kind}@example.nl" for kind in KINDS}


@contextmanager
def statements(app):
    """The SQL the app sends while the block runs, without the values."""
    seen = []

    def note(_conn, _cursor, statement, _parameters, _context, _executemany):
        seen.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def _web_signup(client, email):
    return client.post(
        "/borne/signup", data={"email": email, "purpose": "newsletter"}, headers={"Origin": ORIGIN}
    )


def _link_request(client, email):
    token = csrf_token(client, "/borne/preferences")
    with statements(client.application) as seen:
        response = client.post("/borne/preferences", data={"email": email, "csrf_token": token})
    return response, seen


def _api_signup(client, email, key):
    body = {
        "email": email,
        "purposes": ["newsletter"],
        "evidence": {"ip_address": "192.0.2.7", "user_agent": "Site/1", "page_url": ORIGIN},
    }
    return client.post("/api/v1/signups", json=body, headers=key)


def _same_work(app, send):
    """Send one request per kind of address; the SQL must be the same statements each time."""
    send("warm-up@example.nl")  # first requests load and cache what later ones reuse
    shapes = {}
    for kind, email in _people(app, "p").items():
        with statements(app) as seen:
            response = send(email)
        # The page repeats the address typed, whoever it belongs to; the rest must not differ.
        page = response.get_data(as_text=True).replace(email, "<typed address>")
        shapes[kind] = (response.status_code, page, list(seen))
    first = shapes["unknown"]
    assert first[2], "no SQL seen"
    assert any(s.startswith("INSERT INTO outbox_message") for s in first[2])
    for kind in KINDS[1:]:
        assert shapes[kind] == first, f"{kind} differs from unknown"


def test_web_signup_does_the_same_work_for_every_address(app, client):
    _same_work(app, lambda email: _web_signup(client, email))


def test_link_request_does_the_same_work_for_every_address(app, client):
    token = csrf_token(client, "/borne/preferences")
    _same_work(
        app,
        lambda email: client.post("/borne/preferences", data={"email": email, "csrf_token": token}),
    )


def test_api_signup_does_the_same_work_for_every_address(app, client):
    key = make_key(app)[0]
    _same_work(app, lambda email: _api_signup(client, email, key))


def _run_worker(app):
    with app.app_context():
        while deliver_once().handled:
            pass
        db.session.remove()


def _state(app, email):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        subject = ledger.find_subject(db.session, lib, email)
        if subject is None:
            return None
        return ledger.status_of(db.session, subject, ledger.purpose_by_code(lib, "newsletter"))


@pytest.mark.parametrize("via", ["web", "api"])
def test_the_worker_decides_each_signup(app, client, outbox, via):
    people = _people(app, via)
    key = make_key(app)[0]
    for email in people.values():
        if via == "web":
            assert _web_signup(client, email).status_code == 303
        else:
            assert _api_signup(client, email, key).status_code == 202
    # Nothing is decided yet: the request only wrote its outbox row.
    assert _state(app, people["unknown"]) is None
    assert _state(app, people["known"]) == "withdrawn"
    _run_worker(app)
    assert [_state(app, people[kind]) for kind in KINDS] == [
        "pending", "pending", "pending", "granted",
    ]  # fmt: skip
    mails = {m.recipients[0]: m for m in outbox}
    assert set(mails) == set(people.values())
    for kind in ("unknown", "known", "pending"):
        assert "/confirm/" in mails[people[kind]].body, kind
    confirmed = mails[people["confirmed"]]
    assert "/confirm/" not in confirmed.body and "/preferences/" in confirmed.body
    assert confirmed.subject == "Je bent al aangemeld bij Bibliotheek Borne"


def test_the_worker_mails_a_link_to_known_addresses_only(app, client, outbox):
    people = _people(app, "link")
    for email in [*people.values(), people["confirmed"]]:  # the second one is in the cool-down
        response, _seen = _link_request(client, email)
        assert response.status_code == 303
    _run_worker(app)
    assert sorted(m.recipients[0] for m in outbox) == sorted(
        people[kind] for kind in ("known", "pending", "confirmed")
    )
    assert all("/preferences/" in m.body for m in outbox)
    assert _state(app, people["unknown"]) is None  # nobody is created by asking
    with app.app_context():
        assert ledger.find_subject(
            db.session,
            db.session.scalar(select(Library).where(Library.slug == "borne")),
            people["unknown"],
        ) is None  # fmt: skip


def test_a_decided_signup_keeps_the_time_wording_and_evidence_of_the_request(
    app, client, outbox, caplog
):
    caplog.set_level(logging.DEBUG)
    email = "bewijs@example.nl"
    response = client.post(
        "/borne/signup",
        data={"email": email, "purpose": "newsletter"},
        headers={"Origin": ORIGIN, "User-Agent": "Firefox/140"},
        environ_base={"REMOTE_ADDR": "198.51.100.4"},
    )
    assert response.status_code == 303
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        newsletter = ledger.purpose_by_code(lib, "newsletter")
        shown = ledger.current_text(newsletter, "nl")
        shown_id = shown.id
        [waiting] = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.channel == "request")
        ).all()
        requested_at = datetime.fromisoformat(waiting.payload["requested_at"])
        waiting_id = waiting.id
        # The library changes its wording before the worker gets to the signup.
        ledger.add_text(db.session, newsletter, "nl", shown.title, shown.body + " Nieuw.")
        db.session.commit()
    _run_worker(app)
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        subject = ledger.find_subject(db.session, lib, email)
        [requested] = ledger.history(db.session, subject)
        assert requested.action == "requested"
        assert requested.occurred_at == requested_at
        assert requested.consent_text_id == shown_id
        evidence = requested.evidence
        assert (evidence.ip_address, evidence.user_agent, evidence.origin) == (
            "198.51.100.4", "Firefox/140", ORIGIN,
        )  # fmt: skip
        assert evidence.created_at == requested_at
        # Decided, the row keeps what kind of request it was, not whose.
        done = db.session.get(OutboxMessage, waiting_id)
        assert done.delivered_at is not None
        assert email not in json.dumps(done.payload) and "198.51.100.4" not in json.dumps(
            done.payload
        )
        assert done.payload["request"] == "signup"
    assert "/confirm/" in outbox[0].body
    assert email not in caplog.text


def test_a_refused_signup_leaves_nothing_behind(app, client, outbox):
    """A restricted person's signup is refused by the worker, not by the answer."""
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        subject = ledger.subject_for(db.session, lib, "bevroren@example.nl", "nl")
        ledger.restrict(db.session, subject)
        db.session.commit()
    assert _web_signup(client, "bevroren@example.nl").status_code == 303
    _run_worker(app)
    assert len(outbox) == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 0
        assert db.session.scalar(select(func.count()).select_from(Evidence)) == 0
        [message] = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.channel == "request")
        ).all()
        assert message.dead_at is not None and "restricted" in message.last_error
        assert "bevroren" not in json.dumps(message.payload)


def test_erasure_drops_a_signup_still_waiting(app, client, outbox):
    people = _people(app, "wis")
    assert _web_signup(client, people["confirmed"]).status_code == 303
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        subject = ledger.find_subject(db.session, lib, people["confirmed"])
        ledger.erase(
            db.session, subject, suppression_key=app.config["SUPPRESSION_KEY"],
            actor="staff:1", identification="paspoort",
        )  # fmt: skip
        db.session.commit()
    _run_worker(app)
    assert [m.recipients[0] for m in outbox] == []
    assert _state(app, people["confirmed"]) is None
