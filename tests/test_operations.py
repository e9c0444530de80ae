"""What an operator watches: /readyz, the workers' heartbeats and `consentsvc worker status`."""

import re
import socket
import time
from datetime import timedelta

import pytest
from flask_migrate import stamp
from sqlalchemy import select

from consentsvc import clients, create_app, heartbeat, ledger, mailer
from consentsvc.extensions import db
from consentsvc.models import Library, OutboxMessage, WorkerHeartbeat, utcnow

from .conftest import TEST_CONFIG, csrf_token


def test_readyz_names_what_is_not_ready_until_migrations_and_a_worker_are_there(app, client):
    fresh = client.get("/readyz")
    assert fresh.status_code == 503
    checks = fresh.get_json()["checks"]
    assert checks["database"] == "ok" and checks["catalogues"] == "ok"
    assert checks["migrations"].endswith("run consentsvc db upgrade")
    assert checks["worker"] == "no worker seen in the last 300 s: start consentsvc worker"
    with app.app_context():
        stamp()  # the schema of the fixture is the models' own, i.e. the head
        heart = heartbeat.Heart("web-1:42")
        assert heart.beat(db.session) is True
        assert heart.beat(db.session) is False  # not again within BEAT_EVERY
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "worker": "ok", "catalogues": "ok"},
    }
    assert ready.headers["Cache-Control"] == "no-store"
    # A worker that stopped beating five minutes ago no longer counts.
    with app.app_context():
        row = db.session.get(WorkerHeartbeat, "web-1:42")
        row.seen_at = utcnow() - timedelta(seconds=301)
        db.session.commit()
    assert client.get("/readyz").get_json()["checks"]["worker"].startswith("no worker seen")
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_a_heartbeat_forgets_workers_gone_for_a_day(app):
    with app.app_context():
        now = utcnow()
        old = WorkerHeartbeat(name="gone:1", started_at=now, seen_at=now - timedelta(days=2))
        db.session.add(old)
        db.session.commit()
        heartbeat.Heart("here:2").beat(db.session, now)
        assert [w.name for w in heartbeat.workers(db.session)] == ["here:2"]


def _sign_up(library: Library, email: str) -> None:
    """A signup on the website, its confirmation mail queued in the outbox; committed."""
    result = ledger.signup(
        db.session, library, email, ["newsletter"], language="nl", channel=ledger.Channel.WEB_FORM
    )
    mailer.after_signup(db.session, result.subject, result)
    db.session.commit()


def test_worker_status_lists_workers_and_the_outbox(app, runner):
    with app.app_context():
        heartbeat.Heart("host-a:7").beat(db.session)
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        _sign_up(borne, "jan@example.nl")
        due = db.session.scalars(select(OutboxMessage)).all()
        assert due
        for message in due:
            message.next_attempt_at = utcnow() - timedelta(seconds=90)
        db.session.commit()
    output = runner.invoke(args=["worker", "status"]).output
    assert "worker host-a:7: seen 0 s ago, running since" in output
    assert f"outbox: {len(due)} due (oldest waiting 9" in output
    assert "0 to retry later, 0 given up" in output


def test_a_worker_that_stops_cleanly_takes_its_heartbeat_with_it(app, runner):
    done = runner.invoke(args=["worker", "--once"])
    assert done.exit_code == 0, done.output
    with app.app_context():
        assert db.session.scalars(select(WorkerHeartbeat)).all() == []
    output = runner.invoke(args=["worker", "status"]).output
    assert "no worker seen in the last day: nobody gets signed up or mailed" in output


def test_every_answer_has_a_request_id_and_only_a_trusted_proxy_may_give_one(app_factory):
    direct = app_factory().test_client()
    own = direct.get("/healthz").headers["X-Request-Id"]
    assert len(own) == 32 and own != direct.get("/healthz").headers["X-Request-Id"]
    # A client's own id is not taken: a log line never carries what a client wrote.
    told = direct.get("/healthz", headers={"X-Request-Id": "from-the-client-1"})
    assert told.headers["X-Request-Id"] != "from-the-client-1"
    proxied = app_factory(PROXY_COUNT=1).test_client()
    kept = proxied.get("/healthz", headers={"X-Request-Id": "lb-7f3a9c01"})
    assert kept.headers["X-Request-Id"] == "lb-7f3a9c01"
    odd = proxied.get("/healthz", headers={"X-Request-Id": "a b\tc<script>"})
    assert (
        odd.headers["X-Request-Id"] != "a b\tc<script>" and len(odd.headers["X-Request-Id"]) == 32
    )


def test_an_unknown_log_format_stops_the_service_at_start(app_factory):
    with pytest.raises(ValueError, match='CONSENTSVC_LOG_FORMAT must be "text" or "json"'):
        app_factory(LOG_FORMAT="xml")


def _metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from the exposition text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(rf"^{pattern}$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_metrics_answer_allowed_networks_and_the_token_only(app_factory):
    app = app_factory(METRICS_TOKEN="metrics-token-for-the-test-0123456789")
    client = app.test_client()
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    refused = client.get("/metrics", environ_base=outside)
    assert refused.status_code == 404 and b"consentsvc_" not in refused.data
    wrong = {"Authorization": "Bearer not-the-token"}
    assert client.get("/metrics", environ_base=outside, headers=wrong).status_code == 404
    right = {"Authorization": "Bearer metrics-token-for-the-test-0123456789"}
    allowed = client.get("/metrics", environ_base=outside, headers=right)
    assert allowed.status_code == 200 and b"consentsvc_outbox_due " in allowed.data
    inside = app_factory(METRICS_ALLOWED_NETWORKS=["10.0.0.0/8"]).test_client()
    assert inside.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    assert inside.get("/metrics").status_code == 404


def test_metrics_count_requests_checks_logins_and_the_outbox_without_personal_data(
    app, client, runner
):
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        _c, key = clients.create(db.session, borne, "Laposta", ["newsletter"])
        _sign_up(borne, "jan@example.nl")
    before = client.get("/metrics").get_data(as_text=True)
    pending = {"reason": "pending_confirmation"}
    answer = client.post(
        "/api/v1/consent/check", headers={"Authorization": f"Bearer {key}"},
        json={"purpose": "newsletter", "recipients": ["jan@example.nl", "nobody@example.nl"]},
    )  # fmt: skip
    assert answer.status_code == 200
    client.get("/borne/signup")
    wrong = {"email": "x@example.nl", "password": "wrong password"}
    login = client.post(
        "/admin/login", data={**wrong, "csrf_token": csrf_token(client, "/admin/login")}
    )
    assert login.status_code == 401
    due = _metric(client.get("/metrics").get_data(as_text=True), "consentsvc_outbox_due")
    assert due >= 1
    assert runner.invoke(args=["worker", "--once"]).exit_code == 0
    after = client.get("/metrics").get_data(as_text=True)

    def grew(name: str, **labels: str) -> float:
        return _metric(after, name, **labels) - _metric(before, name, **labels)

    assert grew("consentsvc_check_recipients_total", **pending) == 1
    assert grew("consentsvc_check_recipients_total", reason="no_consent") == 1
    page = {"route": "/<library>/signup", "method": "GET", "status": "200"}
    assert grew("consentsvc_http_requests_total", **page) == 1
    latency = {"route": "/api/v1/consent/check", "method": "POST"}
    assert grew("consentsvc_http_request_duration_seconds_count", **latency) == 1
    assert grew("consentsvc_staff_logins_total", result="password_wrong") == 1
    assert _metric(after, "consentsvc_outbox_due") == 0
    assert grew("consentsvc_outbox_deliveries_total", channel="mail", result="delivered") >= 1
    for secret in ("jan@example.nl", "nobody", key, "csk_"):
        assert secret not in after


def _levels(findings) -> dict[str, str]:
    return {f.what: f.level for f in findings}


def test_check_config_names_what_to_fix_before_going_live(app_factory):
    from consentsvc.check_config import check

    from .servers import free_port
    from .test_security import PRODUCTION

    closed = free_port()
    app = app_factory(
        **{**PRODUCTION, "BASE_URL": "http://toestemming.bibliotheek.example"},
        MAIL_SERVER="127.0.0.1", MAIL_PORT=closed, MAIL_DEFAULT_SENDER="Borne <n@borne.example>",
        RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0",
    )  # fmt: skip
    with app.app_context():
        stamp()
    found = check(app)
    says = {f.what: f.says for f in found}
    assert _levels(found) == {
        "BASE_URL": "fail", "database": "ok", "mail": "fail", "rate limits": "fail",
        "proxies": "warn", "metrics": "ok",
    }  # fmt: skip
    assert "is not https://" in says["BASE_URL"]
    assert says["mail"].startswith(f"127.0.0.1:{closed}: ConnectionRefusedError")
    assert says["rate limits"] == "Redis does not answer (ConnectionError)"
    ready = app_factory(
        **PRODUCTION, MAIL_SERVER="smtp.example", MAIL_DEFAULT_SENDER="Borne <n@borne.example>",
        PROXY_COUNT=1, RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/0",
    )  # fmt: skip
    with ready.app_context():
        stamp()
    levels = _levels(check(ready, smtp=lambda cfg: None))
    assert levels == dict.fromkeys(levels, "ok")


def test_check_config_reports_a_service_that_will_not_start(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from consentsvc.cli import main

    monkeypatch.setenv("CONSENTSVC_BASE_URL", "https://toestemming.bibliotheek.example")
    monkeypatch.setenv("CONSENTSVC_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite'}")
    for name in ("SECRET_KEY", "SUPPRESSION_KEY", "IBAN_KEY", "SIGNING_KEY"):
        monkeypatch.delenv(f"CONSENTSVC_{name}", raising=False)
    result = CliRunner().invoke(main, ["check-config"])
    assert result.exit_code == 1
    assert result.output.startswith(
        "fail  settings: the service refuses to start: set CONSENTSVC_SECRET_KEY"
    )


def test_a_worker_stopped_by_sigterm_finishes_and_takes_its_heartbeat(tmp_path):
    import signal
    import subprocess

    from .test_faults import BIN, service_env

    database = f"sqlite:///{tmp_path / 'w.sqlite'}"
    env = service_env(database, tmp_path, WORKER_INTERVAL="0.2")
    subprocess.run([BIN / "consentsvc", "db", "upgrade"], env=env, check=True, capture_output=True)  # noqa: S603
    worker = subprocess.Popen([BIN / "consentsvc", "worker"], env=env)  # noqa: S603
    app = create_app({**TEST_CONFIG, "DATABASE_URL": database})

    def names() -> list[str]:
        with app.app_context():
            found = [w.name for w in heartbeat.workers(db.session)]
            db.session.remove()
            return found

    try:
        for _ in range(100):
            if names():
                break
            time.sleep(0.1)
        assert names() == [f"{socket.gethostname()}:{worker.pid}"]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
        assert names() == []
    finally:
        worker.kill()
        with app.app_context():
            db.engine.dispose()


def test_refused_requests_odd_methods_and_odd_tokens_stay_in_bounds(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=100, METRICS_TOKEN="a-metrics-token-long-enough-0123")
    client = app.test_client()
    # Refused at the edge, before any view: still an id, and still counted.
    big = client.post("/borne/signup", data="x" * 500, content_type="text/plain")
    assert big.status_code == 413 and len(big.headers["X-Request-Id"]) == 32
    assert client.open("/borne/signup", method="BREW").status_code == 405
    text = client.get("/metrics").get_data(as_text=True)
    assert _metric(text, "consentsvc_http_requests_total", method="other", route="unmatched",
                   status="405") == 1  # fmt: skip
    assert "BREW" not in text
    odd = {"Authorization": "Bearer pässwörd"}
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", headers=odd, environ_base=outside).status_code == 404


def test_readyz_can_leave_the_worker_out(app_factory):
    app = app_factory(READY_WORKER_SECONDS=0)
    with app.app_context():
        stamp()
    assert app.test_client().get("/readyz").get_json()["checks"]["worker"] == "ok"
