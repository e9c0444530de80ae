"""Bad input at the edges: too large, wrongly typed, wrongly encoded, odd addresses, and line
breaks that try to become mail headers. Each is refused with a clear answer, never a 500."""

from __future__ import annotations

import contextlib
import email
import io
import json
import socket
import threading
from email import policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from consentsvc import clients, ledger, tokens
from consentsvc.extensions import db
from consentsvc.models import ConsentEvent, Library, Purpose, Subject
from consentsvc.web.edge import nesting_too_deep

from . import servers
from .conftest import csrf_token, link_in, signup, work_outbox
from .test_faults import service_env
from .test_smtp import mail_app, run_worker, smtp  # noqa: F401 - smtp is a fixture

TOO_LARGE = "Te veel gegevens"
INVALID_ADDRESS = "Vul een geldig e-mailadres in"


@pytest.fixture
def key(app):
    """An API key of Borne for the newsletter."""
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        _client, secret = clients.create(db.session, borne, "Input tests", ["newsletter"])
        db.session.commit()
    return secret


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def subjects(app):
    with app.app_context():
        return db.session.scalars(select(Subject.email).order_by(Subject.id)).all()


# -- size ------------------------------------------------------------------------------------


def test_limits_are_set(app):
    assert app.config["MAX_CONTENT_LENGTH"] == 64 * 1024
    assert app.config["API_MAX_CONTENT_LENGTH"] == 4 * 1024 * 1024
    # Werkzeug's own limits on form parsing stay in force (they protect the API's forms).
    assert app.config.get("MAX_FORM_MEMORY_SIZE", 500_000) <= 500_000


@pytest.mark.parametrize(
    "url",
    ["/borne/signup", "/borne/preferences", "/admin/login", "unsubscribe", "confirm"],
)
def test_an_oversized_member_form_is_refused_with_413(app, client, url, outbox):
    if not url.startswith("/"):
        # A genuine link: the body is read only after the token passed.
        with app.app_context():
            borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
            result = ledger.signup(db.session, borne, "jan@example.nl", ["newsletter"],
                                   language="nl", channel="web_form")  # fmt: skip
            db.session.commit()
            subject_id, purpose_id = result.subject.id, borne.purposes[0].id
            with app.test_request_context():
                url = (
                    f"/unsubscribe/{tokens.make_unsubscribe(subject_id, purpose_id)}"
                    if url == "unsubscribe"
                    else f"/confirm/{tokens.make_confirm(subject_id, result.request_ids)}"
                )
    body = {"email": "jan@example.nl", "purpose": "newsletter", "filler": "x" * 70_000}
    response = client.post(url, data=body)
    assert response.status_code == 413, url
    assert TOO_LARGE in response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    assert len(outbox) == 0
    with app.app_context():
        # Nothing happened: no confirmation, no withdrawal.
        assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) <= 1


def test_an_oversized_api_body_is_refused_with_413_json(client, key):
    recipients = [f"person{i}@example.nl" for i in range(10_000)]
    fits = {"purpose": "newsletter", "recipients": recipients}
    assert 64 * 1024 < len(json.dumps(fits)) < 4 * 1024 * 1024
    response = client.post("/api/v1/consent/check", json=fits, headers=bearer(key))
    assert response.status_code == 200  # larger than any form, within the API's own limit
    assert len(response.json["results"]) == 10_000

    huge = {"purpose": "newsletter", "recipients": ["x" * 500] * 9_000}
    response = client.post("/api/v1/consent/check", json=huge, headers=bearer(key))
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_large"


def test_a_body_larger_than_it_says_is_cut_at_the_limit(client):
    """A lying Content-Length cannot smuggle in more than the limit either."""
    body = b"email=jan%40example.nl&purpose=newsletter&filler=" + b"x" * 100_000
    response = client.post(
        "/borne/signup",
        input_stream=io.BytesIO(body),
        content_type="application/x-www-form-urlencoded",
        headers={"Content-Length": str(len(body))},
    )
    assert response.status_code == 413


def chunked(client, url, body, content_type, **headers):
    """POST as a server hands on a chunked upload: decoded, no Content-Length, and the
    stream marked as ending where the body ends."""
    return client.post(
        url,
        data=body,
        content_type=content_type,
        headers={"Transfer-Encoding": "chunked", **headers},
        environ_overrides={"wsgi.input_terminated": True},
    )


def granted_member(app):
    """Jan, granted the newsletter at the desk; his one-click unsubscribe URL."""
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        subject = ledger.subject_for(db.session, borne, "jan@example.nl", "nl")
        ledger.grant(db.session, subject, "newsletter", channel="staff")
        db.session.commit()
        with app.test_request_context():
            return f"/unsubscribe/{tokens.make_unsubscribe(subject.id, borne.purposes[0].id)}"


def newsletter_status(app):
    with app.app_context():
        [subject] = db.session.scalars(select(Subject)).all()
        states = {s.purpose.code: s.status for s in ledger.state_of(db.session, subject)}
        return states["newsletter"]


@pytest.mark.parametrize("size", [4 * 1024 * 1024, 64 * 1024 * 1024])
def test_a_chunked_form_over_the_limit_is_refused_not_cut(app, client, outbox, size):
    token = csrf_token(client, "/borne/signup")
    fields = f"email=jan%40example.nl&purpose=newsletter&csrf_token={token}&filler=".encode()
    body = fields + b"x" * (size - len(fields))
    response = chunked(client, "/borne/signup", body, "application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert TOO_LARGE in response.get_data(as_text=True)
    work_outbox(app)  # a recorded attempt would be decided here
    assert subjects(app) == []
    assert len(outbox) == 0
    # The same form within the limit, sent the same way, goes through.
    fits = chunked(
        client, "/borne/signup", fields + b"x" * 1000, "application/x-www-form-urlencoded"
    )
    assert fits.status_code == 303  # to the "check your mail" page
    work_outbox(app)
    assert subjects(app) == ["jan@example.nl"]


def test_a_chunked_one_click_over_the_limit_withdraws_nothing(app, client):
    url = granted_member(app)
    body = b"List-Unsubscribe=One-Click&filler=" + b"x" * 160 * 1024
    response = chunked(client, url, body, "application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert newsletter_status(app) == "granted"
    # A bodiless POST with nothing past the limit still unsubscribes.
    one_click = chunked(
        client, url, b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"
    )
    assert one_click.status_code == 200
    assert newsletter_status(app) == "withdrawn"


def test_a_chunked_api_body_over_the_api_limit_is_413(client, key):
    recipients = [f"person{i}@example.nl" for i in range(10_000)]
    fits = json.dumps({"purpose": "newsletter", "recipients": recipients}).encode()
    response = chunked(client, "/api/v1/consent/check", fits, "application/json", **bearer(key))
    assert response.status_code == 200  # over the forms' limit, within the API's
    assert len(response.json["results"]) == 10_000
    padding = " " * (4_900_000 - len(fits))
    huge = fits[:-1] + padding.encode() + b"}"
    response = chunked(client, "/api/v1/consent/check", huge, "application/json", **bearer(key))
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_large"


@pytest.fixture
def gunicorn(app, tmp_path):
    """The app under gunicorn, as in production, on the test database; its port."""
    log = tmp_path / "gunicorn.log"
    env = service_env(app.config["DATABASE_URL"], tmp_path)
    with servers.gunicorn(env=env, log=log) as served:
        yield served.port
    assert "Traceback" not in log.read_text()


def raw_chunked_post(port, path, body, content_type, **headers):
    """Send body over a socket in 64 KiB chunks without Content-Length; status, headers
    and body of the answer. The server may answer and close before it has read it all."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n"
            f"Transfer-Encoding: chunked\r\n{head}\r\n".encode()
        )

        def send():
            with contextlib.suppress(OSError):  # the server stopped reading: refused
                for start in range(0, len(body), 64 * 1024):
                    chunk = body[start : start + 64 * 1024]
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sock.sendall(b"0\r\n\r\n")

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answer = b""
        while chunk := sock.recv(64 * 1024):
            answer += chunk
        sender.join(timeout=30)
    head_part, _, content = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head_part.decode("latin-1").split("\r\n")
    found = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), found, content


def test_gunicorn_refuses_chunked_bodies_over_the_limits(app, gunicorn, key):
    form = "application/x-www-form-urlencoded"
    site = {"Origin": "http://127.0.0.1:8000"}  # Borne's website, allowed to post the form
    fields = b"email=jan%40example.nl&purpose=newsletter&filler="
    status, headers, page = raw_chunked_post(
        gunicorn, "/borne/signup", fields + b"x" * 4 * 1024 * 1024, form, **site
    )
    assert status == 413
    assert TOO_LARGE in page.decode()
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"
    work_outbox(app)
    assert subjects(app) == []
    status, _headers, page = raw_chunked_post(
        gunicorn, "/borne/signup", fields + b"x", form, **site
    )
    assert status == 303 and _headers["Location"].endswith("/borne/signup/sent")
    work_outbox(app)
    assert subjects(app) == ["jan@example.nl"]

    recipients = [f"person{i}@example.nl" for i in range(10_000)]
    fits = json.dumps({"purpose": "newsletter", "recipients": recipients}).encode()
    huge = fits[:-1] + b" " * (4_900_000 - len(fits)) + b"}"
    status, headers, answer = raw_chunked_post(
        gunicorn, "/api/v1/consent/check", huge, "application/json", **bearer(key)
    )
    assert status == 413
    assert json.loads(answer)["error"]["code"] == "too_large"
    assert headers["Content-Type"] == "application/json"
    status, _headers, answer = raw_chunked_post(
        gunicorn, "/api/v1/consent/check", fits, "application/json", **bearer(key)
    )
    assert status == 200 and len(json.loads(answer)["results"]) == 10_000


# -- content types and encodings -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b'{"purpose": "newsletter", "recipients": ["jan@example.nl"]}'),
        ("application/xml", b"<check><purpose>newsletter</purpose></check>"),
        ("application/x-www-form-urlencoded", b"purpose=newsletter&recipients=jan%40example.nl"),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nbroken"),
        ("application/json", b'{"purpose": "newsletter", "recipients": ['),
        ("application/json", b"\xff\xfe\x00{not utf-8"),
        ("application/json", b'["a list, not an object"]'),
        ("application/json", b""),
        (None, b""),
    ],
)
def test_the_api_answers_400_json_to_a_body_that_is_not_a_json_object(
    client, key, content_type, body
):
    for url in ("/api/v1/consent/check", "/api/v1/signups", "/api/v1/events"):
        response = client.post(url, data=body, content_type=content_type, headers=bearer(key))
        assert response.status_code == 400, (url, content_type)
        assert response.json["error"]["code"] == "invalid_body", (url, content_type)


def json_routes(app, key):
    """Every URL of the map that reads a JSON body, with sample arguments."""
    urls = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or "POST" not in (rule.methods or ()):
            continue
        if rule.endpoint == "api.provider_webhook":
            # Mailchimp posts forms; the other processors JSON.
            urls += [f"/api/v1/providers/{p}/{key}" for p in ("postmark", "sendgrid")]
        else:
            urls.append(rule.rule)
    assert len(urls) >= 5, urls
    return urls


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5_000 + "]" * 5_000,  # Python's decoder gives up near 1,000 levels
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        "[{" * 17 + "}]" * 17,  # one level past the limit of 32
        '{"purpose": "newsletter", "recipients": ["jan@example.nl"], "x": '
        + "[" * 40
        + "]" * 40
        + "}",
    ],
    ids=["5000 arrays", "100000 objects", "33 levels", "too deep inside a good body"],
)
def test_json_nested_too_deep_is_400_on_every_json_route(app, client, key, body):
    for url in json_routes(app, key):
        response = client.post(url, data=body, content_type="application/json", headers=bearer(key))
        assert response.status_code == 400, url
        assert response.json["error"] == {
            "code": "invalid_body",
            "message": "JSON may nest at most 32 levels deep.",
        }, url


def test_json_up_to_the_depth_limit_is_read(client, key):
    deep = "[" * 31 + "]" * 31  # with the body's own object: 32 levels
    # Brackets inside strings are text, not nesting.
    strings = "[{" * 100
    body = (
        '{"purpose": "newsletter", "recipients": ["jan@example.nl"], '
        f'"x": {deep}, "y": "{strings}"}}'
    )
    response = client.post(
        "/api/v1/consent/check", data=body, content_type="application/json", headers=bearer(key)
    )
    assert response.status_code == 200
    assert response.json["results"][0]["email"] == "jan@example.nl"


def depth(value):
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\u00e9'),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\a', max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, limit=st.integers(min_value=0, max_value=6))
def test_the_depth_found_without_decoding_is_the_real_depth(value, limit):
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
        assert nesting_too_deep(text, limit) == (depth(value) > limit), text


def test_provider_webhooks_refuse_bodies_they_cannot_read(client, key):
    for provider in ("postmark", "sendgrid", "mailchimp"):
        response = client.post(
            f"/api/v1/providers/{provider}/{key}?purpose=newsletter",
            data=b"\xff\xfe{<not json>",
            content_type="application/json",
        )
        assert response.status_code == 400, provider
        assert response.json["error"]["code"] == "invalid_payload", provider


def test_form_bodies_that_are_not_utf8(app, client, outbox):
    token = csrf_token(client, "/borne/signup")

    def post(raw):
        body = raw + b"&purpose=newsletter&csrf_token=" + token.encode()
        return client.post(
            "/borne/signup", data=body, content_type="application/x-www-form-urlencoded"
        )

    # Raw bytes that are not UTF-8: Werkzeug cannot read the form at all, so neither the
    # address nor the form token arrives: the "send it again" page, nothing stored.
    for raw in (b"email=j\xe9n%40example.nl", b"email=\xff\xfe"):
        response = post(raw)
        assert response.status_code == 400, raw
        assert "Dit formulier is verlopen" in response.get_data(as_text=True)
    assert subjects(app) == []
    # A percent-escape that is not UTF-8 is kept as typed ("%" is allowed before the @),
    # never turned into a replacement character that no mail server would accept.
    assert post(b"email=j%E9n%40example.nl").status_code == 303
    work_outbox(app)
    assert subjects(app) == ["j%e9n@example.nl"]
    assert len(outbox) == 1


def test_query_strings_and_paths_that_are_not_utf8(client, key):
    for query in ("lang=%FF%FE&x=%C0%AF", "lang=en%0D%0ABcc:x"):
        page = client.get(f"/borne/signup?{query}")
        assert page.status_code == 200, query
        assert '<html lang="nl"' in page.get_data(as_text=True), query  # not understood: Dutch
        assert "Set-Cookie" not in page.headers or "lang=" not in page.headers["Set-Cookie"]
    lookup = client.get("/api/v1/subjects/%FF%FE%40example.nl", headers=bearer(key))
    assert lookup.status_code == 400
    assert lookup.json["error"]["code"] == "invalid_address"
    assert client.get("/%FF/signup").status_code == 404
    nul = client.post(
        "/api/v1/events",
        json={"id": "e\u0000", "type": "hard_bounce", "email": "jan@example.nl"},
        headers=bearer(key),
    )
    assert nul.status_code == 400 and nul.json["error"]["field"] == "id"


def test_text_ids_that_only_look_like_numbers(client, outbox):
    """ "²" passes str.isdigit() but not int(): it used to crash the signup."""
    token = csrf_token(client, "/borne/signup")
    for odd in ("²", "١٢", "9" * 30, "-1", "1e3"):
        response = client.post(
            "/borne/signup",
            data={
                "email": "jan@example.nl",
                "purpose": "newsletter",
                "text_newsletter": odd,
                "csrf_token": token,
            },
            follow_redirects=True,
        )
        assert response.status_code == 200, odd
        assert "Kijk in je mail" in response.get_data(as_text=True), odd
    # Proof falls back to the wording on the page today; the unreadable ids were ignored.
    assert len(outbox) == 1


# -- addresses --------------------------------------------------------------------------------


def test_an_idn_address_is_one_person_in_either_spelling(app, client, key, outbox):
    signup(client, "Jan@Bücher.example")
    signup(client, "jan@xn--bcher-kva.example")
    work_outbox(app)
    # One person, stored in the Unicode form that email-validator gives for both spellings.
    assert subjects(app) == ["jan@bücher.example"]
    confirm = link_in(outbox[0], "confirm")
    client.post(confirm)
    check = client.post(
        "/api/v1/consent/check",
        json={
            "purpose": "newsletter",
            "recipients": ["jan@xn--bcher-kva.example", "JAN@bücher.example"],
        },
        headers=bearer(key),
    )
    assert [r["reason"] for r in check.json["results"]] == ["granted", "granted"]
    for spelling in ("jan@xn--bcher-kva.example", "jan@bücher.example"):
        found = client.get(f"/api/v1/subjects/{spelling}", headers=bearer(key))
        assert found.json["email"] == "jan@bücher.example", spelling


def test_an_idn_address_is_mailed_in_punycode(app_factory, smtp):  # noqa: F811
    inbox, port = smtp()
    app = mail_app(app_factory, port)
    signup(app.test_client(), "jan@bücher.example")
    assert run_worker(app).delivered == 1
    [envelope] = inbox.messages
    # Plain SMTP without SMTPUTF8: the domain travels as punycode, in envelope and header.
    assert envelope.rcpt_tos == ["jan@xn--bcher-kva.example"]
    parsed = email.message_from_bytes(envelope.content, policy=policy.default)
    assert parsed["To"].addresses[0].domain in ("xn--bcher-kva.example", "bücher.example")
    assert envelope.content.isascii()


@pytest.mark.parametrize(
    "address",
    [
        '"jan de vries"@example.nl',
        '"jan"@example.nl',
        "jän@example.nl",  # needs SMTPUTF8, which the mail path cannot do
        "jan@example.nl\r\nBcc: eve@example.com",
        "jan@example.nl\nbcc:eve@example.com",
        "jan@example.nl, eve@example.com",
        "Jan <jan@example.nl>",
    ],
)
def test_odd_addresses_are_refused_the_same_way_everywhere(app, client, key, outbox, address):
    form = signup(client, address)
    assert form.status_code == 400
    assert INVALID_ADDRESS in form.get_data(as_text=True)
    token = csrf_token(client, "/borne/preferences")
    link = client.post("/borne/preferences", data={"email": address, "csrf_token": token})
    assert link.status_code == 400
    assert INVALID_ADDRESS in link.get_data(as_text=True)
    api = client.post(
        "/api/v1/signups",
        json={"email": address, "purposes": ["newsletter"]},
        headers=bearer(key),
    )
    assert (api.status_code, api.json["error"]["code"]) == (400, "invalid_address")
    check = client.post(
        "/api/v1/consent/check",
        json={"purpose": "newsletter", "recipients": [address]},
        headers=bearer(key),
    )
    assert check.json["results"][0]["reason"] == "invalid_address"
    assert subjects(app) == []
    assert len(outbox) == 0


# -- header injection -----------------------------------------------------------------------

SERVICE_HEADERS = {
    "Auto-Submitted", "Content-Language", "Content-Type", "Date", "From", "MIME-Version",
    "Message-ID", "Reply-To", "Subject", "To",
}  # fmt: skip


def assert_only_our_headers(raw: bytes):
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert set(parsed.keys()) <= SERVICE_HEADERS | {"Content-Transfer-Encoding"}, parsed.keys()
    assert len(parsed.get_all("To")) == 1
    assert len(parsed["To"].addresses) == 1
    # The library's own sender (docs/libraries.md): one From, at most one Reply-To.
    assert len(parsed["From"].addresses) == 1
    assert parsed["Reply-To"] is None or len(parsed["Reply-To"].addresses) == 1
    assert "\n" not in str(parsed["Subject"])
    return parsed


def test_a_line_break_in_a_library_name_never_becomes_a_header(app, runner, outbox):
    result = runner.invoke(
        args=["library", "create", "delft", "--name", "DOK Delft\r\nBcc: eve@example.com"]
    )
    assert result.exit_code == 0, result.output
    client = app.test_client()
    assert signup(client, "jan@example.nl", library="delft").status_code == 200
    [message] = outbox
    with app.app_context():
        parsed = assert_only_our_headers(message.as_bytes())
    assert parsed["Subject"] == "Bevestig je aanmelding bij DOK Delft Bcc: eve@example.com"
    assert message.recipients == ["jan@example.nl"]
    assert not message.has_bad_headers()  # Flask-Mail would refuse to send it over SMTP


def test_the_same_over_smtp(app_factory, smtp):  # noqa: F811
    inbox, port = smtp()
    app = mail_app(app_factory, port)
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        borne.name = "Borne\nBcc: eve@example.com\nX-Evil: 1"
        db.session.commit()
    signup(app.test_client(), "jan@example.nl", language="en")
    assert run_worker(app).delivered == 1
    [envelope] = inbox.messages
    assert envelope.rcpt_tos == ["jan@example.nl"]
    parsed = assert_only_our_headers(envelope.content)
    assert "X-Evil" not in parsed and "Bcc" not in parsed


def test_a_line_break_in_a_purpose_title_stays_out_of_the_list_id_header(app, client, key):
    with app.app_context():
        purpose = db.session.scalar(
            select(Purpose)
            .join(Library)
            .where(Library.slug == "borne", Purpose.code == "newsletter")
        )
        ledger.add_text(
            db.session, purpose, "nl", 'Nieuws\r\nBcc: eve@example.com\\" <x>', "Ja, mail mij."
        )
        subject = ledger.subject_for(db.session, purpose.library, "jan@example.nl", "nl")
        ledger.grant(db.session, subject, "newsletter", channel="staff")
        db.session.commit()
    check = client.post(
        "/api/v1/consent/check",
        json={"purpose": "newsletter", "recipients": ["jan@example.nl"]},
        headers=bearer(key),
    )
    headers = check.json["results"][0]["headers"]
    for name, value in headers.items():
        assert "\r" not in value and "\n" not in value, name
    list_id = headers["List-Id"]
    assert list_id.startswith('"Nieuws Bcc: eve@example.com <x>" <')
    # The whole value parses as one header, the quoted name included.
    parsed = email.message_from_string(f"List-Id: {list_id}\n\n", policy=policy.default)
    assert list(parsed.keys()) == ["List-Id"]


def test_language_and_names_cannot_carry_headers_in_through_the_api(app, client, key, outbox):
    response = client.post(
        "/api/v1/signups",
        json={"email": "jan@example.nl", "purposes": ["newsletter"], "language": "nl\r\nBcc: x"},
        headers=bearer(key),
    )
    assert (response.status_code, response.json["error"]["field"]) == (400, "language")
    url = "/borne/signup?lang=en%0D%0ABcc:%20x"
    data = {
        "email": "jan@example.nl",
        "purpose": "newsletter",
        "csrf_token": csrf_token(client, url),
    }
    page = client.post(url, data=data)
    assert page.status_code == 303
    assert page.headers.get("Bcc") is None
    [message] = outbox
    with app.app_context():
        parsed = assert_only_our_headers(message.as_bytes())
    assert parsed["Content-Language"] == "nl"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subject)) == 1
