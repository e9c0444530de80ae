"""No API key reaches a log line, however the URL that carried it was misspelt.

A key in a provider webhook URL is a bearer secret. The URLs below are near misses a
processor's admin can type; each once went to the access log with the key in full.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from consentsvc import clients
from consentsvc.extensions import db
from consentsvc.models import Library
from consentsvc.web.security import redact

from . import servers
from .test_faults import BIN, service_env

NEAR_MISSES = [
    "/api/v1/providers/send-grid/{key}",
    "/api/v1/providers/sendgrid/v3/{key}",
    "/api/v1//providers/sendgrid/{key}",
    "/api/v1/providers/sendgrid%20/{key}",
    "/api/v1/providers/sendgrid/{key}?purpose=newsletter",
    "/api/v2/hooks?token={key}",
]


def new_key(app) -> str:
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        _client, key = clients.create(db.session, borne, "SendGrid", ["newsletter"])
        db.session.commit()
    return key


def spellings(key: str) -> list[str]:
    """The key as it can appear in a logged line: plain, percent-encoded in part or in
    full, encoded twice, and in upper case."""
    every = "".join(f"%{ord(c):02X}" for c in key)
    return [
        key,
        key.replace("_", "%5F"),
        key.replace("_", "%5f").replace("-", "%2D"),
        "%63%73%6B" + key[3:],
        every,
        every.replace("%", "%25"),
        key.upper(),
    ]


def secret_part(key: str) -> str:
    return key[len("csk_") :]


def test_redact_removes_a_key_in_any_position_and_spelling():
    key = "csk_ItWZC6r7Lp5RAwJ2Ywysfv_GiN14dpQUvUtZzR6K8R0"
    for spelt in spellings(key):
        for line in (
            f"{spelt}",
            f"GET /x/{spelt} HTTP/1.1",
            f'Authorization: Bearer {spelt}, "next"',
            f"key={spelt}&purpose=newsletter",
        ):
            cleaned = redact(line)
            decoded = unquote(unquote(cleaned)).lower()
            assert secret_part(key).lower() not in decoded, (spelt, cleaned)
            assert "csk_…" in cleaned, cleaned
    # Redacting twice changes nothing more, and ordinary text is left alone.
    once = redact(f"GET /api/v1/providers/send-grid/{key}")
    assert redact(once) == once == "GET /api/v1/providers/send-grid/csk_…"
    assert redact("csk_ alone, task_list and risk_score") == "csk_ alone, task_list and risk_score"


def test_redact_removes_signed_tokens_under_a_misspelt_path_too():
    token = "WzEsWzFdXQ.awJmYA.SBoAIQcoPT4nuTLiab8epKyyRL0"
    for path in (f"/confirm//{token}", f"/Confirm/{token}", f"/x?t={token}&y=1"):
        assert token not in redact(f"GET {path} HTTP/1.1"), path
    assert redact("consentsvc.web.errors") == "consentsvc.web.errors"


def test_any_logger_drops_keys(app, caplog):
    """Not only the service's own loggers: a library's, the root logger, a logger made
    after the app started, arguments and exceptions included."""
    key = new_key(app)
    caplog.set_level(logging.DEBUG)
    made_later = logging.getLogger("some.library.made.later")
    made_later.warning("calling %s", f"https://x.example/hook/{key}")
    logging.getLogger().error("key=%(k)s", {"k": key})
    logging.getLogger("httpx").info("HTTP Request: POST /api/v1/providers/send-grid/" + key)
    try:
        raise ValueError(f"bad url /api/v1//providers/sendgrid/{key}")
    except ValueError:
        logging.getLogger("gunicorn.error").exception("Error handling request")
    assert len(caplog.records) == 4
    for record in caplog.records:
        text = caplog.handler.format(record)
        assert secret_part(key) not in text, text
        assert "csk_…" in text


@pytest.fixture
def served(app):
    """The app behind Werkzeug's real server, whose request lines go through logging."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_werkzeug_request_lines_drop_keys(app, served, caplog):
    key = new_key(app)
    caplog.set_level(logging.DEBUG)
    with httpx.Client(timeout=10) as http:
        send_as_typed(http, served, key)
    logged = "\n".join(caplog.handler.format(r) for r in caplog.records)
    requests = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert sum("POST /api/v" in line for line in requests) == len(NEAR_MISSES), requests
    assert "/api/v1/providers/sendgrid%20/csk_…" in logged
    assert secret_part(key) not in logged


def send_as_typed(http: httpx.Client, base: str, key: str) -> None:
    """POST to each near miss as typed: httpx would tidy "%20" and "//" away."""
    for url in NEAR_MISSES:
        request = http.build_request("POST", base, json=[])
        request.url = request.url.copy_with(raw_path=url.format(key=key).encode())
        http.send(request)


def _lines(log: str) -> list[dict]:
    """The JSON lines of a log (gunicorn's arbiter writes its few start lines before any
    app is loaded, in its own format)."""
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_gunicorn_access_and_error_logs_drop_keys(tmp_path: Path, log_format: str):
    """A real gunicorn, as in production: access log, and its error log at debug level."""
    database = f"sqlite:///{tmp_path / 'logs.sqlite'}"
    env = service_env(database, tmp_path, LOG_FORMAT=log_format)
    for command in (
        ["db", "upgrade"],
        ["demo"],
        ["clients", "create", "--library", "borne", "--name", "SendGrid", "--purposes",
         "newsletter"],
    ):  # fmt: skip
        done = subprocess.run(  # noqa: S603 - the project's own command
            [BIN / "consentsvc", *command], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    key = done.stdout.split("key (shown only now): ")[1].strip()
    access, errors = tmp_path / "access.log", tmp_path / "error.log"
    with servers.gunicorn(
        "-w", "1", "--access-logfile", access, "--error-logfile", errors,
        "--log-level", "debug", env=env, log=tmp_path / "gunicorn.out", explains=errors,
    ) as served, httpx.Client(base_url=served.url, timeout=10) as http:  # fmt: skip
        send_as_typed(http, served.url, key)
        answer = http.get(f"/api/v1/providers/sendgrid/{key}")
        assert answer.json() == {"status": "ready"}
        signup = http.get("/borne/signup")
    access_log, error_log = access.read_text(), errors.read_text()
    assert "Booting worker" in error_log
    if log_format == "json":
        # Every line the worker wrote is JSON; the service's own say what was asked, by
        # route template, and carry the id the answer gave in X-Request-Id.
        records = _lines(error_log)
        requests = [r for r in records if r["logger"] == "consentsvc.request"]
        by_id = {r["request_id"]: r for r in requests}
        hook = by_id[answer.headers["X-Request-Id"]]
        assert hook["route"] == "/api/v1/providers/<provider>/<key>"
        page = by_id[signup.headers["X-Request-Id"]]
        assert (page["method"], page["status"], page["library"]) == ("GET", 200, "borne")
        assert page["route"] == "/<library>/signup" and page["duration_ms"] > 0
        assert {"debug", "info"} <= {r["level"] for r in records}
        misspelt = "POST /api/v1/providers/send-grid/csk_…"
        assert any(r["message"] == misspelt for r in records), error_log
        assert all(line.startswith("{") for line in access_log.splitlines())
        access_log = "\n".join(r["message"] for r in _lines(access_log))
    else:
        assert "[DEBUG] POST /api/v1/providers/send-grid/csk_…" in error_log
        assert "X-Request-Id" in answer.headers
    assert access_log.count('"POST /api/v') == len(NEAR_MISSES), access_log
    assert "/api/v1/providers/send-grid/csk_…" in access_log
    assert "/api/v1/providers/sendgrid%20/csk_…" in access_log
    for log in (access_log, error_log):
        assert secret_part(key) not in log
