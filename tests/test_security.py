"""Headers, third parties and logs: what makes the pages safe to trust."""

import logging
import re

import pytest
from sqlalchemy import select

from consentsvc import tokens
from consentsvc.extensions import db
from consentsvc.models import Subject
from consentsvc.web.security import RedactTokens

from .conftest import link_in, signup


@pytest.fixture
def token_urls(app, client, outbox):
    signup(client, "jan@example.nl")
    confirm = link_in(outbox[0], "confirm")
    with app.app_context():
        subject = db.session.scalar(select(Subject))
        return [
            confirm,
            f"/preferences/{tokens.make_preferences(subject.id)}",
            f"/unsubscribe/{tokens.make_unsubscribe(subject.id, subject.library.purposes[0].id)}",
        ]


def test_every_page_has_strict_headers(client, token_urls):
    for url in ["/borne/signup", "/borne/preferences", "/nowhere/signup", *token_urls]:
        response = client.get(url)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, url
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["Referrer-Policy"] == "no-referrer", url
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store", url


def test_pages_load_nothing_from_elsewhere_and_have_no_inline_script(client, token_urls):
    for url in ["/borne/signup", "/borne/preferences", *token_urls]:
        page = client.get(url).get_data(as_text=True)
        for attribute in re.findall(r'(?:src|href|action)="([^"]*)"', page):
            assert not re.match(r"(https?:)?//", attribute), (url, attribute)
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), url
        assert " style=" not in page and "<style" not in page, url
        assert not re.search(r"\son[a-z]+=", page), url


def test_cookies_are_secure_when_served_over_https(app_factory):
    app = app_factory(BASE_URL="https://consent.bibliotheek.example")
    client = app.test_client()
    response = client.get("/borne/signup?lang=en", base_url="https://localhost")
    cookies = response.headers.getlist("Set-Cookie")
    assert len(cookies) == 2  # the session (for the form token) and the language choice
    for cookie in cookies:
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_token_pages_set_no_session_cookie(client, token_urls):
    for url in token_urls:
        response = client.get(url)
        assert not [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]


def test_links_use_base_url_not_the_host_header(client, outbox):
    signup(client, "jan@example.nl")
    assert "http://localhost/confirm/" in outbox[0].body
    response = client.post(
        "/borne/signup",
        data={"email": "eve@example.nl", "purpose": "newsletter"},
        headers={"Host": "evil.example", "Origin": "http://127.0.0.1:8000"},
    )
    assert response.status_code == 200
    assert len(outbox) == 2
    assert "http://localhost/confirm/" in outbox[1].body
    assert "evil.example" not in outbox[1].body


def test_access_log_lines_hold_no_token():
    token = "WzEsWzFdXQ.awJmYA.SBoAIQcoPT4nuTLiab8epKyyRL0"
    record = logging.LogRecord(
        "werkzeug", logging.INFO, __file__, 1,
        '%s - - [%s] "%s" %s %s',
        ("127.0.0.1", "now", f"POST /unsubscribe/{token} HTTP/1.1", "200", "-"),
        None,
    )  # fmt: skip
    RedactTokens().filter(record)
    assert token not in record.getMessage()
    assert "/unsubscribe/…" in record.getMessage()
    gunicorn = logging.LogRecord(
        "gunicorn.access", logging.INFO, __file__, 1, "%(r)s", ({"r": f"GET /confirm/{token}"},),
        None,
    )  # fmt: skip
    RedactTokens().filter(gunicorn)
    assert token not in gunicorn.getMessage()


def test_a_crash_logs_neither_token_nor_address(app, client, token_urls, caplog, monkeypatch):
    app.testing = False  # log the exception as in production instead of raising it

    def crash(*args, **kwargs):
        raise RuntimeError("disk full while mailing jan@example.nl")

    monkeypatch.setattr("consentsvc.ledger.withdraw", crash)
    caplog.set_level(logging.INFO)
    response = client.post(token_urls[2])
    assert response.status_code == 500
    assert "Er ging bij ons iets mis" in response.get_data(as_text=True)
    logged = "\n".join(
        (r.getMessage() + (r.exc_text or "")) for r in caplog.records if r.name == app.logger.name
    )
    assert "Exception on /unsubscribe/… [POST]" in logged
    assert "disk full while mailing ***@example.nl" in logged
    assert token_urls[2].split("/")[2] not in logged
    assert "jan@example.nl" not in logged


def test_keys_that_are_too_short_or_given_as_one_string(app_factory):
    with pytest.raises(ValueError, match="at least 32"):
        app_factory(SECRET_KEY="short")
    app = app_factory(SECRET_KEY_FALLBACKS="an-old-key-given-without-brackets-0123")
    assert app.config["SECRET_KEY_FALLBACKS"] == ["an-old-key-given-without-brackets-0123"]
    with pytest.raises(ValueError, match="at least 32"):
        app_factory(SECRET_KEY_FALLBACKS="o")


def test_dev_mail_goes_to_files_and_a_short_line(app_factory, tmp_path, capsys):
    app = app_factory(MAIL_SERVER="")
    signup(app.test_client(), "jan.de.vries@example.nl")
    assert not (tmp_path / "mail").exists()  # queued, not yet sent
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert "outbox: 1 delivered, 0 to retry, 0 given up" in result.output
    line = [x for x in result.output.splitlines() if x.startswith("[mail]")][-1]
    assert line.startswith("[mail] confirm to j***@example.nl: http://localhost/confirm/")
    assert "jan.de.vries" not in line
    files = sorted(p.suffix for p in (tmp_path / "mail").iterdir())
    assert files == [".eml", ".html"]
    eml = next((tmp_path / "mail").glob("*.eml")).read_text()
    assert "To: jan.de.vries@example.nl" in eml
