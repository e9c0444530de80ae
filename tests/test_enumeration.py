"""Nobody learns by timing whether an address is known: staff login does one argon2
verification whatever the account, and signups and link requests do the same database work
for every address (the outbox worker decides afterwards). bench/enumeration.py measures it."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from consentsvc import staff
from consentsvc.extensions import db
from consentsvc.models import Library, StaffUser, utcnow

from .conftest import csrf_token

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
