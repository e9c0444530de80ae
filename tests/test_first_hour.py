"""A newcomer's first hour: the demo's console login, its sample newsletter with the
headers a processor uses, and staff accounts made without a terminal."""

import re

from sqlalchemy import select

from consentsvc import ledger
from consentsvc.extensions import db, mail
from consentsvc.models import Library, StaffUser, Subject

from .conftest import csrf_token
from .test_security import PRODUCTION

LOGIN = re.compile(r"console: (\S+)/admin/login as (\S+), password (\S+)")


def _log_in(app, email, password):
    client = app.test_client()
    data = {"email": email, "password": password, "csrf_token": csrf_token(client, "/admin/login")}
    return client, client.post("/admin/login", data=data)


def test_the_demo_prints_a_console_login_that_works_until_the_next_demo(app, runner):
    first = LOGIN.search(runner.invoke(args=["demo"]).output)
    assert first is not None
    base, email, password = first.groups()
    assert base == app.config["BASE_URL"]
    client, response = _log_in(app, email, password)
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin/")
    # An admin of both demo libraries.
    with app.app_context():
        user = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
        assert user.role == "admin"
        assert {lib.slug for lib in user.libraries} == {"borne", "zoetermeer"}
    again = LOGIN.search(runner.invoke(args=["demo"]).output)
    assert again is not None and again.group(3) != password
    assert _log_in(app, email, password)[1].status_code == 401
    assert _log_in(app, email, again.group(3))[1].status_code == 303
    # The new password also ended the session the old one began.
    assert client.get("/admin/").status_code == 302


def test_the_demo_and_its_newsletter_refuse_in_production(app_factory):
    app = app_factory(**PRODUCTION)
    for args in (["demo"], ["demo", "send", "--library", "borne"]):
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 1
        assert "demo data is for trying the service out" in result.output
    with app.app_context():
        assert db.session.scalar(select(StaffUser)) is None


def test_the_sample_newsletter_goes_only_to_those_the_check_allows_and_unsubscribes(app, runner):
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        for email, confirm in (("ja@example.nl", True), ("wacht@example.nl", False)):
            result = ledger.signup(
                db.session, borne, email, ["newsletter"], language="nl",
                channel=ledger.Channel.WEB_FORM,
            )  # fmt: skip
            if confirm:
                ledger.confirm(db.session, result.subject, result.request_ids)
        db.session.commit()
    with mail.record_messages() as sent:
        result = runner.invoke(args=["demo", "send", "--library", "borne"])
    assert result.exit_code == 0, result.output
    assert "borne: checked 2, sent 1; not sent: 1 pending_confirmation" in result.output
    assert [m.recipients for m in sent] == [["ja@example.nl"]]
    message = sent[0]
    assert message.subject == "Nieuws van Bibliotheek Borne"
    headers = message.extra_headers
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Auto-Submitted" not in headers
    link = re.fullmatch(r"<http://localhost(/unsubscribe/[^>]+)>", str(headers["List-Unsubscribe"]))
    assert link is not None
    assert "Wil je deze mail niet meer? Stop hem met één klik." in message.body
    # The mail program's one-click, as a member's would send it.
    answer = app.test_client().post(link.group(1), data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    with app.app_context():
        person = db.session.scalar(select(Subject).where(Subject.email == "ja@example.nl"))
        states = {s.purpose.code: s.status for s in ledger.state_of(db.session, person)}
        assert states["newsletter"] == "withdrawn"


def test_the_sample_refuses_a_purpose_that_is_not_mail(runner):
    result = runner.invoke(args=["demo", "send", "--library", "borne", "--purpose", "direct_debit"])
    assert result.exit_code == 1 and "direct_debit is not a kind of mail" in result.output


def test_staff_create_reads_the_password_from_standard_input(app, runner):
    args = ["staff", "create", "--library", "borne", "--email", "fg@bibliotheek.example",
            "--name", "Femke", "--role", "privacy_officer"]  # fmt: skip
    made = runner.invoke(args=[*args, "--password-stdin"], input="a long enough secret\n")
    assert made.exit_code == 0, made.output
    assert _log_in(app, "fg@bibliotheek.example", "a long enough secret")[1].status_code == 303
    # No terminal to ask at, and no password given: a clear error, and nobody is made.
    other = [*args[:5], "b@bibliotheek.example", *args[6:]]
    asked = runner.invoke(args=other, input="")
    assert asked.exit_code == 2 and "use --password-stdin" in asked.output
    both = runner.invoke(args=[*other, "--password", "x" * 12, "--password-stdin"], input="y\n")
    assert both.exit_code == 2 and "not both" in both.output
    with app.app_context():
        assert db.session.scalars(select(StaffUser.email)).all() == ["fg@bibliotheek.example"]
