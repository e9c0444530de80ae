"""Headers, third parties and logs: what makes the pages safe to trust."""

import logging
import re
import threading
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from consentsvc import (
    anchors,
    clients,
    create_app,
    iban,
    intake,
    ledger,
    library_face,
    outbox,
    receipts,
    tokens,
)
from consentsvc.cli import deliver_once
from consentsvc.extensions import db, mail
from consentsvc.models import Library, StaffUser, Subject, utcnow
from consentsvc.web.security import PUBLIC, RedactTokens

from .conftest import csrf_token, link_in, signup
from .test_admin import log_in
from .test_outbox import Receiver

# The only addresses elsewhere a member page names: links in the library's footer.
OUTBOUND_LINKS = {"https://www.bibliotheekborne.nl", library_face.COMPLAINT_URL}


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
            # A link a member may follow to the library's own website or to the Autoriteit
            # Persoonsgegevens (the footer) is no load; anything the page loads is its own.
            if attribute in OUTBOUND_LINKS:
                assert re.search(rf'<a href="{re.escape(attribute)}">', page), (url, attribute)
                continue
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
    assert response.status_code == 303
    assert response.headers["Location"] == "/borne/signup/sent"  # relative, never evil.example
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


@pytest.mark.parametrize("path", ["/borne/signup", "/api/v1/signups"])
def test_a_database_error_on_a_write_gives_the_services_own_500(app, client, monkeypatch, path):
    """A failed flush leaves the session unusable until it is rolled back: the error page
    must not need it, or the server sends its bare page without any of the headers."""
    app.testing = False  # answer as in production instead of raising
    real_signup = intake.record_signup

    def signup_then_fail(session, *args, **kwargs):
        result = real_signup(session, *args, **kwargs)
        session.add(Library(slug="borne", name="A second Borne"))  # the slug is unique
        session.flush()
        return result

    monkeypatch.setattr("consentsvc.intake.record_signup", signup_then_fail)
    if path.startswith("/api/"):
        with app.app_context():
            borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
            _client, key = clients.create(db.session, borne, "Crash", ["newsletter"])
            db.session.commit()
        response = client.post(
            path,
            json={"email": "jan@example.nl", "purposes": ["newsletter"]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.json == {
            "error": {"code": "server_error", "message": "Something went wrong on our side"}
        }
    else:
        response = signup(client, "jan@example.nl")
        page = response.get_data(as_text=True)
        assert "Er ging bij ons iets mis" in page
        assert "Bibliotheek Borne" in page  # the library's page, read again after the rollback
    assert response.status_code == 500
    assert_strict_headers(response, path)
    assert response.headers["Cache-Control"] == "no-store"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subject)) == 0


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
    # The member's confirmation, and the day's head statement to each library's FG.
    assert "outbox: 3 delivered, 0 to retry, 0 given up, 1 signups" in result.output
    lines = [x for x in result.output.splitlines() if x.startswith("[mail]")]
    line = next(x for x in lines if x.startswith("[mail] confirm"))
    assert line.startswith("[mail] confirm to j***@example.nl: http://localhost/confirm/")
    assert "jan.de.vries" not in line
    assert any(x.startswith("[mail] ledger_head to f***@") for x in lines)
    files = sorted(p.suffix for p in (tmp_path / "mail").iterdir() if "-confirm." in p.name)
    assert files == [".eml", ".html"]
    eml = next((tmp_path / "mail").glob("*-confirm.eml")).read_text()
    assert "To: jan.de.vries@example.nl" in eml


# -- every route --------------------------------------------------------------------------------


@pytest.fixture
def every_url(app, token_urls):
    """Each rule of the app with sample arguments that reach the view itself, its methods,
    and a logged-in admin to ask them with."""
    staff = {role: log_in(app, role) for role in ("admin", "privacy_officer")}
    with app.app_context():
        subject = db.session.scalar(select(Subject).where(Subject.email == "jan@example.nl"))
        library = subject.library
        purpose = library.purposes[0]
        _client, key = clients.create(db.session, library, "Headers", ["newsletter"])
        endpoint = outbox.add_endpoint(
            db.session, library.id, "http://127.0.0.1:9/hook", ["consent.granted"],
            allow_http=True, allowed_networks=["127.0.0.0/8"],
        )  # fmt: skip
        # A message in the receiver's delivery log (its "send again" address).
        logged = outbox.enqueue_test(db.session, endpoint)
        subject.pending_email = "jan.nieuw@example.nl"
        # A desk colleague: an account the admin may close (the confirmation step is a page).
        colleague = StaffUser(
            library_id=library.id, email="kees@bibliotheek.example", name="Kees", role="desk",
            password_hash="-",
        )  # fmt: skip
        # And an admin of another library who also looks after this one.
        helper = StaffUser(
            library=db.session.scalar(select(Library).where(Library.id != library.id)),
            email="ilse@regio.example", name="Ilse", role="admin",
            password_hash="-", other_libraries=[library],
        )  # fmt: skip
        db.session.add_all([colleague, helper])
        # A family member who asked to manage jan's mail settings: the answer page's link.
        asker = ledger.subject_for(db.session, library, "piet@example.nl", "nl")
        family_request = ledger.request_family_access(
            db.session, asker, subject.email, per_day=5, max_age=3600
        )
        # A young member whose signup waits for the guardian (docs/minors.md).
        minor = ledger.subject_for(db.session, library, "noor@example.nl", "nl")
        minor.marked_minor, minor.guardian_email = True, "ouder@example.nl"
        waiting = ledger.signup(
            db.session, library, minor.email, ["newsletter"], language="nl", channel="web_form"
        )
        db.session.flush()
        # A direct-debit mandate recorded by the colleague (its pages, and its member links).
        mandate = ledger.record_mandate(
            db.session, subject,
            ledger.MandateInput("M-1", "NL28ZZZ401234560000", "NL91ABNA0417164300", "J. Jan",
                                "2026-01-05", "Borne", "paper"),
            staff=colleague, vault=iban.Vault(app.config["IBAN_KEY"]),
        )  # fmt: skip
        # A check the key made: what it answered can be read back.
        decision = ledger.record_decision(
            db.session, library.id, ledger.purpose_by_code(library, "newsletter").id,
            ledger.check_many(db.session, library, "newsletter", [subject.email],
                              suppression_key=app.config["SUPPRESSION_KEY"]),
            client_id=_client.id,
        )  # fmt: skip
        # Consent given at the desk: an event with a receipt (its page and its file).
        granted = ledger.grant(
            db.session, subject, "acquisitions", channel="staff", actor="staff:1"
        )
        # The day's signed head statement (published at /.well-known/consent-ledger/…).
        anchors.anchor_daily(db.session, utcnow(), ZoneInfo("Europe/Amsterdam"))
        db.session.commit()
        staff_id, helper_id, mandate_id = colleague.id, helper.id, mandate.id
        receipt = receipts.receipt_id(granted)
        with app.test_request_context():
            tokens_by_prefix = {
                "confirm": token_urls[0].split("/")[2],
                "preferences": tokens.make_preferences(subject.id),
                "unsubscribe": tokens.make_unsubscribe(subject.id, purpose.id),
                "download": tokens.make_download(subject.id),
                "email": tokens.make_email_change(
                    subject.id, ledger.email_fingerprint("jan.nieuw@example.nl")
                ),
                "family": tokens.make_family(family_request.id, subject.id),
                "guardian": tokens.make_guardian_confirm(
                    minor.id, waiting.request_ids, ledger.email_fingerprint("ouder@example.nl")
                ),
                "mandate": tokens.make_mandate(subject.id, mandate_id),
            }
        values = {
            "library": library.slug, "subject_id": subject.id, "purpose_id": purpose.id,
            "client_id": _client.id, "staff_id": staff_id, "endpoint_id": endpoint.id,
            "provider": "postmark", "key": key, "email": subject.email,
            "filename": "css/site.css", "mandate_id": mandate_id, "receipt": receipt,
            "decision_id": decision.id, "report": "signups", "message_id": logged.id,
        }  # fmt: skip
    urls = []
    for rule in app.url_map.iter_rules():
        args = dict(values)
        if "token" in rule.arguments:
            args["token"] = tokens_by_prefix[rule.rule.split("/")[1]]
        if rule.rule.endswith("/access/remove"):
            args["staff_id"] = helper_id
        path = rule.rule
        for name in rule.arguments:
            path = re.sub(rf"<(?:[^<>:]+:)?{name}>", str(args[name]), path)
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            urls.append((method, path, rule.endpoint))
    return staff, {"Authorization": f"Bearer {key}"}, urls


def assert_strict_headers(response, label, public=False):
    headers = response.headers
    csp = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'none'", label
    assert csp["frame-ancestors"] == "'none'", label
    for directive, sources in csp.items():
        assert "unsafe-" not in sources and "*" not in sources, (label, directive)
        assert "data:" not in sources and "http:" not in sources, (label, directive)
    assert headers["X-Content-Type-Options"] == "nosniff", label
    assert headers["X-Frame-Options"] == "DENY", label
    # Token pages must not hand their URL to another site; every page follows the same rule.
    assert headers["Referrer-Policy"] == "no-referrer", label
    if public and response.status_code < 400:
        # The same for everyone (static files, theme.css): cached as its view says.
        assert "no-store" not in headers["Cache-Control"], label
    else:
        # Pages, JSON and errors: they show one person's data or carry their links.
        assert headers["Cache-Control"] == "no-store", label


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_every_route_answers_with_strict_headers(every_url, scheme):
    staff, auth, urls = every_url
    methods = {method for method, _path, _endpoint in urls}
    assert methods == {"GET", "POST"} and len(urls) > 50  # the whole map, not a sample
    for method, path, endpoint in urls:
        label = f"{scheme} {method} {path}"
        # POSTs go without a form token or body: refused, but refusals need the headers too.
        base_url = f"{scheme}://localhost"
        response = staff["admin"].open(path, method=method, headers=auth, base_url=base_url)
        if method == "GET" and response.status_code == 403:
            response.close()  # a page for the privacy officer only (the audit log)
            response = staff["privacy_officer"].get(path, headers=auth, base_url=base_url)
        response.close()
        # /readyz says 503 by design here: this database was never migrated, no worker runs.
        unready = endpoint == "health.readyz" and response.status_code == 503
        assert response.status_code < 500 or unready, label
        if method == "GET" and not unready:
            assert response.status_code < 400, label  # the page itself, not an error page
        assert_strict_headers(response, label, public=endpoint in PUBLIC)
        hsts = response.headers.get("Strict-Transport-Security")
        if scheme == "https":
            assert hsts == "max-age=31536000", label
        else:
            assert hsts is None, label  # over plain HTTP it is meaningless (RFC 6797, 8.1)


NOT_USABLE = "Dit kunnen we niet gebruiken"


def row_counts(app):
    with app.app_context():
        return {
            table.name: db.session.scalar(select(func.count()).select_from(table))
            for table in db.metadata.sorted_tables
        }


def assert_refused(response, label, field=None):
    assert response.status_code == 400, label
    assert_strict_headers(response, label)
    if response.mimetype == "application/json":
        error = response.json["error"]
        assert error["code"] == "invalid_field", label
        assert error["message"] == "Text may not contain NUL characters or lone surrogates."
        if field:
            assert error["field"] == field, label
    else:
        page = response.get_data(as_text=True)
        assert NOT_USABLE in page and "NUL-teken" in page, label


def test_text_a_database_cannot_store_is_refused_on_every_route(app, every_url):
    """PostgreSQL text cannot hold NUL: refused at the edge, in every input of every route,
    before any view runs, and nothing changes."""
    staff, auth, urls = every_url
    admin = staff["admin"]
    token = csrf_token(admin, "/admin/account")
    before = row_counts(app)
    for method, path, endpoint in urls:
        label = f"{method} {path}"
        response = admin.get(f"{path}?q=abc%00", headers=auth)
        assert_refused(response, f"{label}?q", field="query.q")
        if method != "POST":
            continue
        if endpoint.startswith("api."):
            body = {"id": "e\u0000", "type": "complaint", "email": "jan@example.nl"}
            response = admin.post(path, json=body, headers=auth)
            assert_refused(response, f"{label} json", field="id")
        else:
            form = {"csrf_token": token, "note": "Aan de balie\x00", "email": "jan@example.nl"}
            response = admin.post(path, data=form, headers=auth)
            assert_refused(response, f"{label} form")
    # No library, token, address or key holds a NUL: such a path names no page.
    for path in (
        "/bor%00ne/signup",
        "/bor%00ne/preferences",
        "/bor%00ne/theme.css",
        "/confirm/abc%00def",
        "/admin/subjects/1%00",
        "/api/v1/subjects/jan%00@example.nl",
        f"/api/v1/providers/postmark/{auth['Authorization'][7:]}%00",
    ):
        response = admin.post(path, headers=auth) if "/providers/" in path else admin.get(
            path, headers=auth
        )  # fmt: skip
        assert response.status_code == 404, path
        assert_strict_headers(response, path)
        if path.startswith("/api/"):
            assert response.json["error"]["code"] == "not_found", path
        else:
            assert "Pagina niet gevonden" in response.get_data(as_text=True), path
    # Headers that are kept as proof of a signup, and every other.
    for name in ("User-Agent", "Origin", "Referer", "Accept-Language"):
        response = admin.post(
            "/borne/signup",
            data={"email": "piet@example.nl", "purpose": "newsletter", "csrf_token": token},
            headers={name: "Mozilla/5.0\x00"},
        )
        assert_refused(response, name)
    response = admin.post("/api/v1/signups", headers={**auth, "User-Agent": "x\x00"}, json={})
    assert_refused(response, "api header", field="headers.User-Agent")
    assert row_counts(app) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"purpose": "newsletter", "recipients": ["jan@example.nl", "\\ud800@example.nl"]}',
         "recipients[1]"),
        ('{"email": "jan@example.nl", "purposes": ["newsletter"], '
         '"evidence": {"user_agent": "Mozilla\\u0000"}}', "evidence.user_agent"),
        ('{"email": "jan@example.nl", "purposes": ["newsletter"], "\\udfff": 1}', "body"),
        (b'{"email": "jan@example.nl", "purposes": ["newsletter\xed\xa0\x80"]}',
         "purposes[0]"),
    ],
    ids=["lone surrogate", "NUL", "surrogate name", "surrogate in UTF-8"],
)  # fmt: skip
def test_json_text_a_database_cannot_store_is_refused(app, client, body, field):
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        _client, key = clients.create(db.session, library, "NUL", ["newsletter"])
        db.session.commit()
    before = row_counts(app)
    for url in ("/api/v1/consent/check", "/api/v1/signups"):
        response = client.post(
            url, data=body, content_type="application/json",
            headers={"Authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert_refused(response, url, field)
    assert row_counts(app) == before


def test_calls_without_a_valid_key_are_limited_per_address(app_factory):
    app = app_factory(RATELIMIT_ENABLED=True, API_AUTH_FAILURE_RATE_LIMIT="5 per minute")
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        _client, key = clients.create(db.session, library, "Laposta", ["newsletter"])
        db.session.commit()
    good = {"Authorization": f"Bearer {key}"}
    check = {"purpose": "newsletter", "recipients": ["jan@example.nl"]}
    # Every /api/v1 route, the provider webhook URLs (key in the path) included.
    calls = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule.replace("<path:email>", "jan@example.nl")
        path = path.replace("<provider>", "postmark").replace("<key>", "csk_" + "x" * 43)
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            calls.append((method, path))
    assert len(calls) >= 6, calls
    attacker = app.test_client()
    wrong = [{"Authorization": "Bearer csk_guess"}, {}, {"Authorization": "Basic eDp5"}]

    def fail(number):
        method, path = calls[number % len(calls)]
        return attacker.open(path, method=method, json=check, headers=wrong[number % 3])

    first = [fail(number) for number in range(5)]
    assert [r.status_code for r in first] == [401 if "/providers/" not in r.request.path
                                              else 404 for r in first]  # fmt: skip
    # From here on, every route answers this address 429 with Retry-After.
    for number in range(5, 5 + len(calls)):
        response = fail(number)
        assert response.status_code == 429, calls[number % len(calls)]
        assert response.json == {"error": {"code": "rate_limited", "message": "Too many attempts"}}
        assert 0 < int(response.headers["Retry-After"]) <= 60
        assert response.headers["Cache-Control"] == "no-store"
    # A valid key is not slowed down by these failures, from this address or any other.
    assert attacker.post("/api/v1/consent/check", json=check, headers=good).status_code == 200
    assert attacker.get(f"/api/v1/providers/postmark/{key}").json == {"status": "ready"}
    # Another address has its own count.
    elsewhere = app.test_client()
    response = elsewhere.post(
        "/api/v1/consent/check",
        json=check,
        headers=wrong[0],
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert response.status_code == 401


def test_hsts_follows_the_proxy_only_when_the_proxy_is_trusted(app_factory):
    behind_proxy = app_factory(PROXY_COUNT=1, BASE_URL="https://consent.example").test_client()
    secure = behind_proxy.get("/borne/signup", headers={"X-Forwarded-Proto": "https"})
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
    plain = behind_proxy.get("/borne/signup", base_url="http://localhost")
    assert "Strict-Transport-Security" not in plain.headers
    # Without a trusted proxy, anyone could send the header: it is ignored.
    direct = app_factory(PROXY_COUNT=0).test_client()
    spoofed = direct.get(
        "/borne/signup", headers={"X-Forwarded-Proto": "https"}, base_url="http://localhost"
    )
    assert "Strict-Transport-Security" not in spoofed.headers


# -- keys in production -------------------------------------------------------------------------


PRODUCTION = {
    "TESTING": False,
    "BASE_URL": "https://toestemming.bibliotheek.example",
    "SECRET_KEY": "a-production-secret-key-0123456789abcdef",
    "SUPPRESSION_KEY": "a-production-suppression-key-0123456789",
    "IBAN_KEY": "cHJvZHVjdGlvbi1pYmFuLWtleS0wMTIzNDU2Nzg5YWI=",
    "SIGNING_KEY": "cHJvZHVjdGlvbi1zaWduaW5nLWtleS0wMTIzNDU2Nzg=",
}


def test_production_needs_keys_of_its_own(tmp_path, monkeypatch):
    # Where a generated key is allowed, it must not be written into the checkout's instance/.
    generated = "generated-into-the-instance-folder-0123456789"
    monkeypatch.setattr("consentsvc.config._instance_secret", lambda path: generated)

    def start(**changes):
        config = {**PRODUCTION, "DATABASE_URL": f"sqlite:///{tmp_path / 'p.sqlite'}", **changes}
        return create_app(config)

    app = start()
    assert app.config["SECRET_KEY"] == PRODUCTION["SECRET_KEY"]
    with pytest.raises(ValueError, match="set CONSENTSVC_SECRET_KEY in production"):
        start(SECRET_KEY="")  # the default: a key generated into the instance folder
    with pytest.raises(ValueError, match="set CONSENTSVC_SUPPRESSION_KEY in production"):
        start(SUPPRESSION_KEY="")
    # The IBANs of mandates have a key of their own, also never generated in production.
    with pytest.raises(ValueError, match="set CONSENTSVC_IBAN_KEY in production"):
        start(IBAN_KEY="")
    with pytest.raises(ValueError, match="CONSENTSVC_IBAN_KEY is a published example key"):
        start(IBAN_KEY="dGVzdC1pYmFuLWtleS1wdWJsaXNoZWQtaW4tdGVzdHM=")
    with pytest.raises(ValueError, match="CONSENTSVC_IBAN_KEY must be a Fernet key"):
        start(IBAN_KEY="not-a-fernet-key")
    # So does the key that signs receipts: a generated one would be lost with the folder.
    with pytest.raises(ValueError, match="set CONSENTSVC_SIGNING_KEY in production"):
        start(SIGNING_KEY="")
    with pytest.raises(ValueError, match="CONSENTSVC_SIGNING_KEY is a published example key"):
        start(SIGNING_KEY="dGVzdC1zaWduaW5nLWtleS1wdWJsaXNoZWQtdGVzdHM=")
    with pytest.raises(ValueError, match="CONSENTSVC_SIGNING_KEY must be an Ed25519 key"):
        start(SIGNING_KEY="c2hvcnQ=")
    with pytest.raises(ValueError, match="at least 32"):
        start(SECRET_KEY="too-short")
    with pytest.raises(ValueError, match="published example key"):
        start(SECRET_KEY="test-secret-key-that-is-long-enough-0123")
    with pytest.raises(ValueError, match="at least 32"):
        start(SECRET_KEY_FALLBACKS=["old"])
    # A plain-http address elsewhere is production too.
    with pytest.raises(ValueError, match="set CONSENTSVC_SECRET_KEY"):
        start(SECRET_KEY="", BASE_URL="http://consent.example")
    # Trying it out on one's own machine, debugging or testing: a generated key is fine.
    local = start(SECRET_KEY="", BASE_URL="http://127.0.0.1:5000")
    assert local.config["SECRET_KEY"] == generated
    assert start(SECRET_KEY="", DEBUG=True).config["SECRET_KEY"] == generated
    assert start(SECRET_KEY="", TESTING=True).config["SECRET_KEY"] == generated


def test_production_keys_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSENTSVC_BASE_URL", "https://toestemming.bibliotheek.example")
    monkeypatch.setenv("CONSENTSVC_DATABASE_URL", f"sqlite:///{tmp_path / 'e.sqlite'}")
    monkeypatch.delenv("CONSENTSVC_SECRET_KEY", raising=False)
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    with pytest.raises(ValueError, match="set CONSENTSVC_SECRET_KEY in production"):
        create_app()
    monkeypatch.setenv("CONSENTSVC_SECRET_KEY", PRODUCTION["SECRET_KEY"])
    monkeypatch.setenv("CONSENTSVC_SUPPRESSION_KEY", PRODUCTION["SUPPRESSION_KEY"])
    monkeypatch.setenv("CONSENTSVC_IBAN_KEY", PRODUCTION["IBAN_KEY"])
    monkeypatch.setenv("CONSENTSVC_SIGNING_KEY", PRODUCTION["SIGNING_KEY"])
    assert create_app().config["SECRET_KEY"] == PRODUCTION["SECRET_KEY"]


# -- secrets and logs ---------------------------------------------------------------------------


@pytest.fixture
def served(app_factory):
    """The app behind Werkzeug's real server, whose access log lines go through logging."""
    app = app_factory(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_ALLOWED_NETWORKS=["127.0.0.0/8"])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def form_token(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_a_full_run_logs_no_key_secret_token_password_or_address(served, caplog):
    app, base = served
    caplog.set_level(logging.DEBUG)
    runner = app.test_cli_runner()
    created = runner.invoke(
        args=["clients", "create", "--library", "borne", "--name", "Laposta",
              "--purposes", "newsletter"]
    )  # fmt: skip
    key = created.output.split("key (shown only now): ")[1].strip()
    receiver = Receiver()
    added = runner.invoke(args=["webhooks", "add", "--library", "borne", "--url", receiver.url])
    secret = added.output.split("secret (shown only now): ")[1].strip()
    receiver.secret = secret
    password = "a staff password nobody may read"
    runner.invoke(
        args=["staff", "create", "--library", "borne", "--email", "femke.fg@bibliotheek.example",
              "--name", "Femke", "--role", "privacy_officer", "--password", password]
    )  # fmt: skip
    member = "jan.geheim@example.nl"
    auth = {"Authorization": f"Bearer {key}"}
    secrets = {"key": key, "webhook secret": secret, "password": password, "address": member}

    try:
        with mail.record_messages() as mails, httpx.Client(base_url=base) as web:
            page = web.get("/borne/signup")
            web.post(
                "/borne/signup",
                data={"email": member, "purpose": "newsletter", "csrf_token": form_token(page)},
            )
            with app.app_context():
                deliver_once()
            confirm = link_in(mails[0], "confirm")
            assert web.get(confirm).status_code == 200
            done = web.post(confirm)
            preferences = re.search(r'href="(/preferences/[^"?]+)', done.text).group(1)
            assert web.get(preferences).status_code == 200
            check = web.post(
                "/api/v1/consent/check",
                json={"purpose": "newsletter", "recipients": [member, "nobody@example.nl"]},
                headers=auth,
            )
            unsubscribe = check.json()["results"][0]["headers"]["List-Unsubscribe"].strip("<>")
            unsubscribe = unsubscribe.replace("http://localhost", "")
            # An address in a path, as it is and percent-encoded as most HTTP clients send it.
            assert web.get(f"/api/v1/subjects/{member}", headers=auth).status_code == 200
            encoded = quote(member, safe="")
            assert web.get(f"/api/v1/subjects/{encoded}", headers=auth).status_code == 200
            assert (
                web.get(
                    f"/api/v1/subjects/{member}?x=1", headers={"Authorization": "Bearer csk_wrong"}
                ).status_code
                == 401
            )
            hook = f"/api/v1/providers/postmark/{key}"
            assert web.get(hook).status_code == 200
            bounce = {"RecordType": "Bounce", "Type": "HardBounce", "ID": 1, "Email": member}
            assert web.post(f"{hook}?purpose=newsletter", json=bounce).status_code in (200, 400)
            assert web.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200
            login = web.get("/admin/login")
            signed_in = web.post(
                "/admin/login",
                data={"email": "femke.fg@bibliotheek.example", "password": password,
                      "csrf_token": form_token(login)},
            )  # fmt: skip
            assert signed_in.status_code == 303
            wrong = web.post(
                "/admin/login",
                data={"email": "femke.fg@bibliotheek.example", "password": password + "x",
                      "csrf_token": form_token(login)},
            )  # fmt: skip
            assert wrong.status_code == 401
            with app.app_context():
                report = deliver_once()
                db.session.remove()
            assert report.delivered >= 1 and receiver.received  # signed webhooks went out
    finally:
        receiver.stop()

    secrets.update(
        confirm=confirm.split("/")[2],
        preferences=preferences.split("/")[2],
        unsubscribe=unsubscribe.split("/")[2],
        encoded_address=encoded,
        local_part="jan.geheim",
    )
    # Leave out what this test's own HTTP client logs about its requests (the service's worker
    # uses httpx too: its lines about webhook deliveries stay in).
    port = base.rsplit(":", 1)[1]
    logged = "\n".join(
        record.getMessage() + "\n" + (record.exc_text or "")
        for record in caplog.records
        if not (record.name.startswith("httpcore") or port in record.getMessage())
        or record.name == "werkzeug"
    )
    assert "HTTP Request: POST http://127.0.0.1:" in logged  # a webhook delivery
    # The run did log, access lines included, so that silence is not mistaken for safety.
    assert '"POST /api/v1/providers/postmark/…?purpose=newsletter HTTP/1.1" 200' in logged
    assert '"GET /confirm/… HTTP/1.1" 200' in logged
    assert "/api/v1/subjects/***@example.nl" in logged
    for name, value in secrets.items():
        assert value not in logged, f"{name} in the logs"


def test_gunicorn_lines_lose_encoded_addresses_and_keys_too(app):
    """gunicorn logs the request line as it came: percent-encoded, query string included."""
    key = "csk_" + "k" * 43
    atoms = {
        "r": "GET /api/v1/subjects/Jan.de%2BVries%40b%C3%BCcher.example?x=1 HTTP/1.1",
        "U": f"/api/v1/providers/sendgrid/{key}",
        "q": "email=jan%40example.nl",
        "f": "-",
    }
    record = logging.LogRecord(
        "gunicorn.access", logging.INFO, __file__, 1, "%(r)s %(U)s %(q)s", (atoms,), None
    )
    for log_filter in logging.getLogger("gunicorn.access").filters:
        log_filter.filter(record)
    line = record.getMessage()
    assert "Jan.de" not in line and "Vries" not in line and "jan%40" not in line, line
    assert key not in line and "/api/v1/providers/sendgrid/…" in line
    assert "***@b%C3%BCcher.example" in line


def test_the_services_own_module_loggers_are_redacted(app, caplog):
    token = "WzEsWzFdXQ.awJmYA.SBoAIQcoPT4nuTLiab8epKyyRL0"
    caplog.set_level(logging.INFO)
    logging.getLogger("consentsvc.outbox").warning(
        "failed for jan@example.nl at /confirm/%s", token
    )
    [record] = [r for r in caplog.records if r.name == "consentsvc.outbox"]
    assert record.getMessage() == "failed for ***@example.nl at /confirm/…"
