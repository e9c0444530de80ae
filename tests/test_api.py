"""The JSON API for senders and websites: check, signups, events, subjects, isolation."""

import json
from pathlib import Path

import jsonschema_rs
import pytest
from sqlalchemy import func, select

from consentsvc import clients, ledger
from consentsvc.extensions import db
from consentsvc.models import ConsentDecision, DecisionRecipient, Library, Subject, Suppression

from .conftest import link_in, work_outbox

FIXTURES = Path(__file__).parent / "fixtures"
CHECK = "/api/v1/consent/check"


def make_key(app, library="borne", purposes=("newsletter", "acquisitions"), name="Laposta"):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        client, key = clients.create(db.session, lib, name, purposes)
        db.session.commit()
        return {"Authorization": f"Bearer {key}"}, client.id


@pytest.fixture
def key(app):
    return make_key(app)[0]


def subscribe(app, email, library="borne", codes=("newsletter",)):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        result = ledger.signup(db.session, lib, email, codes, language="nl", channel="web_form")
        ledger.confirm(db.session, result.subject, result.request_ids)
        db.session.commit()
        return result.subject.id


def status(app, email, code="newsletter", library="borne"):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        subject = ledger.find_subject(db.session, lib, email)
        return ledger.status_of(db.session, subject, ledger.purpose_by_code(lib, code))


# -- the consent check ------------------------------------------------------------------------


def test_check_answers_in_order_with_headers_for_the_allowed(app, client, key):
    subscribe(app, "jan@example.nl")
    subscribe(app, "piet@example.nl")
    with app.app_context():
        subject = db.session.scalar(select(Subject).where(Subject.email == "piet@example.nl"))
        ledger.withdraw(db.session, subject, "newsletter", channel="one_click")
        db.session.commit()
    recipients = [
        "Jan@Example.nl",
        "piet@example.nl",
        "nobody@example.nl",
        "nope",
        "jan@example.nl",
    ]
    response = client.post(
        CHECK, json={"purpose": "newsletter", "recipients": recipients}, headers=key
    )
    assert response.status_code == 200
    body = response.json
    assert body["purpose"] == "newsletter"
    assert body["checked_at"].endswith("Z")
    assert [(r["email"], r["allowed"], r["reason"]) for r in body["results"]] == [
        ("Jan@Example.nl", True, "granted"),
        ("piet@example.nl", False, "withdrawn"),
        ("nobody@example.nl", False, "no_consent"),
        ("nope", False, "invalid_address"),
        ("jan@example.nl", True, "granted"),
    ]
    first = body["results"][0]
    assert set(first) == {"email", "allowed", "reason", "headers", "preferences_url"}
    assert first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first["headers"]["List-Id"] == '"Nieuwsbrief" <newsletter.borne.lists.example.org>'
    unsubscribe = first["headers"]["List-Unsubscribe"]
    assert unsubscribe.startswith("<http://localhost/unsubscribe/") and unsubscribe.endswith(">")
    assert "headers" not in body["results"][1] and "preferences_url" not in body["results"][1]

    # The pasted header works as RFC 8058 one-click, and the preference link opens the page.
    path = unsubscribe[len("<http://localhost") : -1]
    one_click = app.test_client(use_cookies=False).post(
        path, data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data"
    )
    assert one_click.status_code == 200
    assert status(app, "jan@example.nl") == "withdrawn"
    prefs = client.get(first["preferences_url"][len("http://localhost") :])
    assert "Je mailinstellingen" in prefs.get_data(as_text=True)

    with app.app_context():
        decision = db.session.get(ConsentDecision, body["decision_id"])
        assert decision.recipients == 5
        assert decision.reasons == {
            "granted": 2, "withdrawn": 1, "no_consent": 1, "invalid_address": 1,
        }  # fmt: skip
        allowed = db.session.scalars(
            select(DecisionRecipient.subject_id).where(DecisionRecipient.decision_id == decision.id)
        ).all()
        jan = db.session.scalar(select(Subject.id).where(Subject.email == "jan@example.nl"))
        assert allowed == [jan]  # once, although jan was sent twice


def test_check_of_ten_thousand_recipients(app, client, key):
    subscribe(app, "reader9999@example.nl")
    recipients = [f"reader{i}@example.nl" for i in range(10_000)]
    response = client.post(
        CHECK, json={"purpose": "newsletter", "recipients": recipients}, headers=key
    )
    assert response.status_code == 200
    results = response.json["results"]
    assert len(results) == 10_000
    assert [r["email"] for r in results] == recipients
    assert [r["allowed"] for r in results].count(True) == 1 and results[-1]["allowed"]
    too_many = client.post(
        CHECK,
        json={"purpose": "newsletter", "recipients": [*recipients, "x@example.nl"]},
        headers=key,
    )
    assert too_many.status_code == 400
    assert too_many.json["error"]["field"] == "recipients"


def test_suppressed_addresses_are_refused_even_with_consent(app, client, key):
    subscribe(app, "jan@example.nl")
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        key_ = app.config["SUPPRESSION_KEY"]
        ledger.suppress(db.session, lib, "jan@example.nl", "hard_bounce", suppression_key=key_)
        db.session.commit()
    response = client.post(
        CHECK, json={"purpose": "newsletter", "recipients": ["jan@example.nl"]}, headers=key
    )
    assert response.json["results"][0] == {
        "email": "jan@example.nl", "allowed": False, "reason": "suppressed",
    }  # fmt: skip


def test_a_purpose_that_is_not_mail_gets_no_unsubscribe_headers(app, client):
    """Direct debit is allowed like any granted purpose, but a mailbox provider's one-click
    must never be able to end it: no List-Unsubscribe, no List-Id, no unsubscribe token."""
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        subject = ledger.subject_for(db.session, borne, "jan@example.nl", "nl")
        ledger.grant(db.session, subject, "direct_debit", channel="staff", actor="staff:1")
        db.session.commit()
    subscribe(app, "jan@example.nl")
    headers, _ = make_key(app, purposes=("newsletter", "direct_debit"), name="Incasso")
    answers = {
        code: client.post(
            CHECK, json={"purpose": code, "recipients": ["jan@example.nl"]}, headers=headers
        ).json
        for code in ("direct_debit", "newsletter")
    }
    [debit] = answers["direct_debit"]["results"]
    assert (debit["allowed"], debit["reason"], debit["headers"]) == (True, "granted", {})
    assert debit["preferences_url"].startswith("http://localhost/preferences/")
    assert "unsubscribe" not in json.dumps(answers["direct_debit"])
    # The same person's newsletter still carries the three headers.
    [newsletter] = answers["newsletter"]["results"]
    assert set(newsletter["headers"]) == {"List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"}
    # Both answers are what the OpenAPI document promises.
    spec = client.get("/api/openapi.json").json
    validator = jsonschema_rs.Draft202012Validator(
        {"$ref": "#/components/schemas/CheckResult", "components": spec["components"]}
    )
    for answer in answers.values():
        validator.validate(answer)


TEXT = "A text of 1 to 254 characters."
ADDRESSES = "A list of e-mail addresses."
COUNT = "Between 1 and 10000 recipients."


# The view takes the field and its message from msgspec's validation error (check_types.py):
# each kind of mistake must still name its field with the API's own words.
@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"recipients": ["a@example.nl"]}, "purpose", TEXT),
        ({"purpose": 7, "recipients": ["a@example.nl"]}, "purpose", TEXT),
        ({"purpose": "   ", "recipients": ["a@example.nl"]}, "purpose", TEXT),
        ({"purpose": "n" * 255, "recipients": ["a@example.nl"]}, "purpose", TEXT),
        ({"purpose": "newsletter"}, "recipients", ADDRESSES),
        ({"purpose": "newsletter", "recipients": "a@example.nl"}, "recipients", ADDRESSES),
        ({"purpose": "newsletter", "recipients": [1, 2]}, "recipients", ADDRESSES),
        ({"purpose": "newsletter", "recipients": []}, "recipients", COUNT),
        ({"purpose": "newsletter", "recipients": ["a@example.nl"] * 10_001}, "recipients", COUNT),
    ],
)
def test_malformed_check_names_the_field(client, key, body, field, message):
    response = client.post(CHECK, json=body, headers=key)
    assert response.status_code == 400
    assert response.json["error"] == {"code": "invalid_field", "field": field, "message": message}


def test_a_body_that_is_not_a_json_object(client, key):
    for data, kind in (
        ("not json", "application/json"),
        ("[1]", "application/json"),
        ("a=b", "text/plain"),
    ):
        response = client.post(CHECK, data=data, content_type=kind, headers=key)
        assert response.status_code == 400
        assert response.json["error"]["code"] == "invalid_body"


def test_keys_missing_wrong_revoked_or_out_of_scope(app, client):
    body = {"purpose": "newsletter", "recipients": ["a@example.nl"]}
    for headers in ({}, {"Authorization": "Bearer csk_wrong"}, {"Authorization": "Basic abc"}):
        response = client.post(CHECK, json=body, headers=headers)
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    headers, client_id = make_key(app, purposes=("acquisitions",))
    response = client.post(CHECK, json=body, headers=headers)
    assert response.status_code == 403
    assert response.json["error"] == {
        "code": "forbidden_purpose", "message": "This key may not use this purpose.",
        "field": "purpose",
    }  # fmt: skip
    with app.app_context():
        clients.revoke(db.session, db.session.get(clients.ApiClient, client_id))
        db.session.commit()
    assert (
        client.post(CHECK, json={**body, "purpose": "acquisitions"}, headers=headers).status_code
        == 401
    )


def test_rate_limit_per_key(app_factory):
    app = app_factory(RATELIMIT_ENABLED=True, API_RATE_LIMIT="2 per minute")
    key, _ = make_key(app)
    other, _ = make_key(app, name="Mailchimp")
    client = app.test_client()
    body = {"purpose": "newsletter", "recipients": ["a@example.nl"]}
    codes = [client.post(CHECK, json=body, headers=key).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = client.post(CHECK, json=body, headers=key)
    assert limited.json["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    # Another sender is not slowed down by the first.
    assert client.post(CHECK, json=body, headers=other).status_code == 200


# -- signups from a website backend -------------------------------------------------------------


def test_signup_starts_double_opt_in_like_the_form(app, client, key, outbox):
    response = client.post(
        "/api/v1/signups",
        json={
            "email": "Nieuw@Example.nl",
            "purposes": ["newsletter"],
            "language": "en",
            "text_versions": {"newsletter": 1},
            "evidence": {
                "ip_address": "198.51.100.7",
                "user_agent": "Firefox",
                "page_url": "https://www.bibliotheekborne.example/nieuws",
            },
        },
        headers=key,
    )
    assert response.status_code == 202 and response.json == {"status": "accepted"}
    with app.app_context():  # only recorded: the worker decides
        assert db.session.scalar(select(func.count()).select_from(Subject)) == 0
    work_outbox(app)
    assert status(app, "nieuw@example.nl") == "pending"
    [mail] = outbox
    assert mail.subject == "Confirm your subscription to Bibliotheek Borne"
    client.post(link_in(mail, "confirm"))
    assert status(app, "nieuw@example.nl") == "granted"
    with app.app_context():
        subject = db.session.scalar(select(Subject).where(Subject.email == "nieuw@example.nl"))
        request = ledger.history(db.session, subject)[-1]
        assert (request.action, request.channel, request.actor) == (
            "requested",
            "api",
            request.actor,
        )
        assert request.actor.startswith("client:")
        assert request.evidence.ip_address == "198.51.100.7"
        assert request.evidence.origin == "https://www.bibliotheekborne.example/nieuws"
        assert request.consent_text.language == "en"
    # The same answer for an address that is already subscribed.
    again = client.post(
        "/api/v1/signups",
        json={"email": "nieuw@example.nl", "purposes": ["newsletter"]},
        headers=key,
    )
    assert (again.status_code, again.json) == (202, {"status": "accepted"})


@pytest.mark.parametrize(
    ("body", "status_code", "field"),
    [
        ({"email": "x@example.nl", "purposes": []}, 400, "purposes"),
        ({"email": "x@example.nl", "purposes": ["direct_debit"]}, 403, "purposes"),
        ({"email": "nope", "purposes": ["newsletter"]}, 400, "email"),
        ({"email": "x@example.nl", "purposes": ["newsletter"], "language": "de"}, 400, "language"),
        (
            {
                "email": "x@example.nl",
                "purposes": ["newsletter"],
                "text_versions": {"newsletter": 99},
            },
            400,
            "text_versions",
        ),
        (
            {"email": "x@example.nl", "purposes": ["newsletter"], "evidence": {"ip_address": 5}},
            400,
            "evidence.ip_address",
        ),
    ],
)
def test_bad_signups_change_nothing(app, client, key, outbox, body, status_code, field):
    response = client.post("/api/v1/signups", json=body, headers=key)
    assert response.status_code == status_code
    assert response.json["error"]["field"] == field
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subject)) == 0
    assert len(outbox) == 0


# -- events from senders ------------------------------------------------------------------------


def post_event(client, key, **event):
    return client.post("/api/v1/events", json=event, headers=key)


def test_unsubscribe_event_withdraws_with_the_client_as_actor(app, client, key):
    subscribe(app, "jan@example.nl")
    response = post_event(
        client, key, id="evt-1", type="unsubscribe", email="jan@example.nl", purpose="newsletter"
    )
    assert response.json == {"status": "processed"}
    assert status(app, "jan@example.nl") == "withdrawn"
    with app.app_context():
        subject = db.session.scalar(select(Subject))
        last = ledger.history(db.session, subject)[0]
        assert last.channel == "provider_unsubscribe" and last.actor.startswith("client:")
    # The same event again: nothing new happens.
    again = post_event(
        client, key, id="evt-1", type="unsubscribe", email="jan@example.nl", purpose="newsletter"
    )
    assert again.json == {"status": "duplicate"}


def test_complaint_stops_all_mail_and_suppresses(app, client, key):
    subscribe(app, "jan@example.nl", codes=("newsletter", "acquisitions"))
    post_event(client, key, id="c-1", type="complaint", email="JAN@example.nl")
    assert (
        status(app, "jan@example.nl")
        == status(app, "jan@example.nl", "acquisitions")
        == "withdrawn"
    )
    check = client.post(
        CHECK, json={"purpose": "newsletter", "recipients": ["jan@example.nl"]}, headers=key
    )
    assert check.json["results"][0]["reason"] == "suppressed"
    with app.app_context():
        [row] = db.session.scalars(select(Suppression))
        assert (row.reason, row.actor.startswith("client:")) == ("complaint", True)


def test_hard_bounce_of_an_unknown_address_is_remembered(app, client, key):
    post_event(client, key, id="b-1", type="hard_bounce", email="ghost@example.nl")
    subscribe(app, "ghost@example.nl")
    check = client.post(
        CHECK, json={"purpose": "newsletter", "recipients": ["ghost@example.nl"]}, headers=key
    )
    assert check.json["results"][0]["reason"] == "suppressed"


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "unsubscribe", "email": "a@example.nl", "purpose": "newsletter"}, "id"),
        ({"id": "1", "type": "opened", "email": "a@example.nl"}, "type"),
        ({"id": "1", "type": "unsubscribe", "email": "a@example.nl"}, "purpose"),
        ({"id": "1", "type": "complaint", "email": "not-an-address"}, "email"),
    ],
)
def test_bad_events_are_refused(app, client, key, event, field):
    response = client.post("/api/v1/events", json=event, headers=key)
    assert response.status_code == 400
    assert response.json["error"]["field"] == field
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0


# -- processors' own webhook formats ----------------------------------------------------------


def provider_url(headers, provider, purpose="newsletter"):
    key = headers["Authorization"].split(" ", 1)[1]
    return f"/api/v1/providers/{provider}/{key}?purpose={purpose}"


def test_mailchimp_unsubscribe_and_cleaned(app, client, key):
    subscribe(app, "leaver@example.nl")
    subscribe(app, "bounced@example.nl")
    url = provider_url(key, "mailchimp")
    assert client.get(url).json == {"status": "ready"}
    form = {
        "type": "unsubscribe", "fired_at": "2026-11-20 10:15:00",
        "data[action]": "unsub", "data[reason]": "manual", "data[id]": "8a25ff1d98",
        "data[list_id]": "a6b5da1054", "data[email]": "leaver@example.nl",
        "data[email_type]": "html", "data[merges][EMAIL]": "leaver@example.nl",
        "data[ip_opt]": "10.20.10.30", "data[campaign_id]": "cb398d21d2",
    }  # fmt: skip
    assert client.post(url, data=form).json["results"] == ["processed"]
    assert client.post(url, data=form).json["results"] == ["duplicate"]
    assert status(app, "leaver@example.nl") == "withdrawn"
    cleaned = {
        "type": "cleaned", "fired_at": "2026-11-20 10:20:00", "data[list_id]": "a6b5da1054",
        "data[campaign_id]": "4fjk2ma9xd", "data[reason]": "hard",
        "data[email]": "bounced@example.nl",
    }  # fmt: skip
    client.post(url, data=cleaned)
    check = client.post(
        CHECK, json={"purpose": "newsletter", "recipients": ["bounced@example.nl"]}, headers=key
    )
    assert check.json["results"][0]["reason"] == "suppressed"


def test_postmark_bounce_complaint_and_subscription_change(app, client, key):
    for email in ("bounced@example.nl", "complainer@example.nl", "leaver@example.nl"):
        subscribe(app, email)
    url = provider_url(key, "postmark")
    for name in ("hard_bounce", "spam_complaint", "subscription_change"):
        payload = json.loads((FIXTURES / f"postmark_{name}.json").read_text())
        response = client.post(url, json=payload)
        assert response.json["results"] == ["processed"], name
    assert status(app, "complainer@example.nl") == "withdrawn"
    assert status(app, "leaver@example.nl") == "withdrawn"
    check = client.post(
        CHECK,
        json={
            "purpose": "newsletter",
            "recipients": ["bounced@example.nl", "complainer@example.nl"],
        },
        headers=key,
    )
    assert [r["reason"] for r in check.json["results"]] == ["suppressed", "suppressed"]


def test_postmark_subscription_changes_as_documented(app, client, key):
    """Postmark's own example (SuppressionReason HardBounce) suppresses; a spam complaint
    stops all mail and suppresses; a reactivation (SuppressSending false) changes nothing."""
    for email in ("gone@example.nl", "complainer@example.nl", "back@example.nl"):
        subscribe(app, email, codes=("newsletter", "acquisitions"))
    url = provider_url(key, "postmark")
    documented = json.loads(
        (FIXTURES / "postmark_subscription_change_hard_bounce.json").read_text()
    )
    assert client.post(url, json=documented).json["results"] == ["processed"]
    complaint = {
        **documented, "Recipient": "complainer@example.nl", "SuppressionReason": "SpamComplaint",
    }  # fmt: skip
    assert client.post(url, json=complaint).json["results"] == ["processed"]
    reactivation = {
        **documented, "Recipient": "back@example.nl", "MessageID": None,
        "SuppressSending": False, "SuppressionReason": None, "Tag": None, "Metadata": {},
    }  # fmt: skip
    assert client.post(url, json=reactivation).json == {
        "status": "processed", "events": 0, "results": [],
    }  # fmt: skip
    check = client.post(
        CHECK,
        json={
            "purpose": "newsletter",
            "recipients": ["gone@example.nl", "complainer@example.nl", "back@example.nl"],
        },
        headers=key,
    )
    assert [r["reason"] for r in check.json["results"]] == ["suppressed", "suppressed", "granted"]
    assert status(app, "complainer@example.nl", "acquisitions") == "withdrawn"
    with app.app_context():
        reasons = sorted(db.session.scalars(select(Suppression.reason)))
        assert reasons == ["complaint", "hard_bounce"]


def test_sendgrid_event_array(app, client, key):
    for email in (
        "leaver@example.nl",
        "complainer@example.nl",
        "bounced@example.nl",
        "full@example.nl",
    ):
        subscribe(app, email)
    payload = json.loads((FIXTURES / "sendgrid_events.json").read_text())
    response = client.post(provider_url(key, "sendgrid"), json=payload)
    # An open and a soft block do not concern consent and are left out.
    assert response.json == {"status": "processed", "events": 3, "results": ["processed"] * 3}
    recipients = [
        "leaver@example.nl",
        "complainer@example.nl",
        "bounced@example.nl",
        "full@example.nl",
    ]
    check = client.post(
        CHECK, json={"purpose": "newsletter", "recipients": recipients}, headers=key
    )
    assert [r["reason"] for r in check.json["results"]] == [
        "withdrawn",
        "suppressed",
        "suppressed",
        "granted",
    ]


def test_provider_urls_with_a_bad_key_or_payload(app, client, key):
    assert (
        client.post("/api/v1/providers/mailchimp/csk_nope", data={"type": "x"}).status_code == 404
    )
    assert client.post(provider_url(key, "hotmail"), json={}).status_code == 404
    response = client.post(provider_url(key, "postmark"), json=[1])
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_payload"


# -- one person's record ------------------------------------------------------------------------


def test_subject_shows_only_the_keys_purposes(app, client):
    subscribe(app, "jan@example.nl", codes=("newsletter", "acquisitions"))
    headers, _ = make_key(app, purposes=("newsletter",))
    response = client.get("/api/v1/subjects/Jan@Example.nl", headers=headers)
    assert response.status_code == 200
    assert [c["purpose"] for c in response.json["consents"]] == ["newsletter"]
    assert {e["purpose"] for e in response.json["events"]} == {"newsletter"}
    assert [e["action"] for e in response.json["events"]] == ["granted", "requested"]
    missing = client.get("/api/v1/subjects/nobody@example.nl", headers=headers)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


# -- tenant isolation ---------------------------------------------------------------------------


def test_a_key_of_one_library_reaches_nothing_of_another(app, client):
    subscribe(app, "jan@example.nl", library="borne", codes=("newsletter", "acquisitions"))
    zoetermeer, _ = make_key(app, library="zoetermeer", name="Spotler")

    check = client.post(
        CHECK, json={"purpose": "newsletter", "recipients": ["jan@example.nl"]}, headers=zoetermeer
    )
    assert check.json["results"][0] == {
        "email": "jan@example.nl",
        "allowed": False,
        "reason": "no_consent",
    }
    assert client.get("/api/v1/subjects/jan@example.nl", headers=zoetermeer).status_code == 404
    for event in (
        {"id": "x1", "type": "unsubscribe", "email": "jan@example.nl", "purpose": "newsletter"},
        {"id": "x2", "type": "complaint", "email": "jan@example.nl"},
        {"id": "x3", "type": "hard_bounce", "email": "jan@example.nl"},
    ):
        assert client.post("/api/v1/events", json=event, headers=zoetermeer).status_code == 200
    client.post(
        "/api/v1/signups",
        json={"email": "jan@example.nl", "purposes": ["newsletter"]},
        headers=zoetermeer,
    )
    work_outbox(app)
    key_url = provider_url(zoetermeer, "sendgrid")
    client.post(key_url, json=json.loads((FIXTURES / "sendgrid_events.json").read_text()))

    # Borne's member is untouched: still subscribed, not suppressed, one subject in Borne.
    assert (
        status(app, "jan@example.nl") == status(app, "jan@example.nl", "acquisitions") == "granted"
    )
    borne, _ = make_key(app)
    check = client.post(
        CHECK, json={"purpose": "newsletter", "recipients": ["jan@example.nl"]}, headers=borne
    )
    assert check.json["results"][0]["allowed"] is True
    with app.app_context():
        libraries = db.session.scalars(
            select(Library.slug)
            .join(Subject, Subject.library_id == Library.id)
            .where(Subject.email == "jan@example.nl")
        ).all()
        assert sorted(libraries) == ["borne", "zoetermeer"]


# -- input no database column can hold, and batches that are partly bad -------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/events", {"id": "e\x00", "type": "hard_bounce", "email": "a@example.nl"}, "id"),
        ("/api/v1/events", {"id": "e\ud800", "type": "hard_bounce", "email": "a@example.nl"}, "id"),
        (
            "/api/v1/signups",
            {
                "email": "a@example.nl",
                "purposes": ["newsletter"],
                "evidence": {"user_agent": "\x00"},
            },
            "evidence.user_agent",
        ),
        (
            "/api/v1/signups",
            {
                "email": "a@example.nl",
                "purposes": ["newsletter"],
                "text_versions": {"newsletter": 10**30},
            },
            "text_versions",
        ),
        (
            "/api/v1/signups",
            {"email": "a@example.nl", "purposes": ["newsletter"], "evidence": False},
            "evidence",
        ),
    ],
)
def test_unstorable_input_is_a_400_not_a_crash(app, client, key, path, body, field):
    response = client.post(
        path, data=json.dumps(body), content_type="application/json", headers=key
    )
    assert response.status_code == 400
    assert response.json["error"]["field"] == field
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subject)) == 0
        assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_one_bad_event_does_not_block_the_rest_of_a_batch(app, client):
    headers, _ = make_key(app)  # two purposes: an unsubscribe needs ?purpose=
    key = headers["Authorization"].split(" ", 1)[1]
    batch = [
        {"email": "complainer@example.nl", "event": "spamreport", "sg_event_id": "a"},
        {"email": "leaver@example.nl", "event": "unsubscribe", "sg_event_id": "b"},
        {
            "email": "bounced@example.nl",
            "event": "bounce",
            "type": "bounce",
            "sg_event_id": "c" * 500,
        },
    ]
    response = client.post(f"/api/v1/providers/sendgrid/{key}", json=batch)
    assert response.status_code == 200
    assert response.json["results"] == [
        "processed",
        "rejected: invalid_field (purpose)",
        "processed",
    ]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Suppression)) == 2


def test_mailchimp_reports_that_do_not_concern_consent_are_ignored(app, client, key):
    url = provider_url(key, "mailchimp")
    response = client.post(
        url, data={"type": "campaign", "data[id]": "5aa2102003", "data[status]": "sent"}
    )
    assert response.json == {"status": "processed", "events": 0, "results": []}


def test_last_use_of_a_key_is_recorded(app, client):
    headers, client_id = make_key(app)
    client.get("/api/v1/subjects/nobody@example.nl", headers=headers)
    with app.app_context():
        assert db.session.get(clients.ApiClient, client_id).last_used_at is not None
    hook_headers, hook_id = make_key(app, name="Mailchimp")
    client.get(provider_url(hook_headers, "mailchimp"))
    with app.app_context():
        assert db.session.get(clients.ApiClient, hook_id).last_used_at is not None


def test_the_rate_limit_is_one_budget_per_key(app_factory):
    app = app_factory(RATELIMIT_ENABLED=True, API_RATE_LIMIT="2 per minute")
    key, _ = make_key(app)
    client = app.test_client()
    client.post(CHECK, json={"purpose": "newsletter", "recipients": ["a@example.nl"]}, headers=key)
    client.get("/api/v1/subjects/a@example.nl", headers=key)
    response = client.post(
        "/api/v1/events",
        json={"id": "1", "type": "hard_bounce", "email": "a@example.nl"},
        headers=key,
    )
    assert response.status_code == 429


def test_long_or_odd_processor_ids_are_stored_safely(app, client, key):
    subscribe(app, "complainer@example.nl")
    payload = json.loads((FIXTURES / "postmark_spam_complaint.json").read_text())
    payload["ID"] = "9" * 300
    url = provider_url(key, "postmark")
    assert client.post(url, json=payload).json["results"] == ["processed"]
    assert client.post(url, json=payload).json["results"] == ["duplicate"]
    # Text no database can store is refused at the edge, as in every other body.
    payload["ID"] += "\x00"
    refused = client.post(url, json=payload)
    assert (refused.status_code, refused.json["error"]["field"]) == (400, "ID")


# -- the duplicate check of reported events -----------------------------------------------------


def suppressed(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Suppression))


def test_a_sendgrid_batch_whose_events_share_an_id_is_not_one_event(app, client, key):
    """Without sg_event_id, events of one message share its sg_message_id; each address
    and each kind is an event of its own, and only a true repeat is a duplicate."""
    subscribe(app, "b@example.nl")
    shared = "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"
    batch = [
        {"email": "a@example.nl", "event": "bounce", "type": "bounce", "sg_message_id": shared},
        {"email": "b@example.nl", "event": "bounce", "type": "bounce", "sg_message_id": shared},
        {"email": "c@example.nl", "event": "spamreport", "sg_message_id": shared},
        {"email": "b@example.nl", "event": "spamreport", "sg_message_id": shared},
    ]
    url = provider_url(key, "sendgrid")
    assert client.post(url, json=batch).json["results"] == ["processed"] * 4
    assert suppressed(app) == 3
    assert client.post(url, json=batch).json["results"] == ["duplicate"] * 4


def test_postmark_changes_without_a_message_id_are_kept_apart(app, client, key):
    """Manual suppressions have no MessageID; two at the same moment are two events."""
    url = provider_url(key, "postmark")
    base = json.loads((FIXTURES / "postmark_subscription_change_hard_bounce.json").read_text())
    changes = [{**base, "MessageID": None, "Recipient": f"r{n}@example.nl"} for n in range(3)]
    assert [client.post(url, json=c).json["results"] for c in changes] == [["processed"]] * 3
    assert suppressed(app) == 3
    assert client.post(url, json=changes[1]).json["results"] == ["duplicate"]


def test_mailchimp_reports_of_one_moment_are_kept_apart(app, client, key):
    url = provider_url(key, "mailchimp")
    for email in ("a@example.nl", "b@example.nl"):
        form = {
            "type": "cleaned", "fired_at": "2026-11-20 10:20:00", "data[list_id]": "a6b5da1054",
            "data[reason]": "hard", "data[email]": email,
        }  # fmt: skip
        assert client.post(url, data=form).json["results"] == ["processed"]
    assert suppressed(app) == 2


def test_api_events_with_one_id_for_several_addresses(app, client, key):
    """A sender's id names its report; the same id for another address or kind is new."""
    reports = [
        {"id": "campaign-7", "type": "hard_bounce", "email": "a@example.nl"},
        {"id": "campaign-7", "type": "hard_bounce", "email": "B@example.nl"},
        {"id": "campaign-7", "type": "complaint", "email": "a@example.nl"},
    ]
    assert [post_event(client, key, **r).json["status"] for r in reports] == ["processed"] * 3
    assert suppressed(app) == 2
    again = {"id": "campaign-7", "type": "hard_bounce", "email": "b@example.nl"}
    assert post_event(client, key, **again).json == {"status": "duplicate"}


def test_a_change_to_a_purpose_reaches_the_next_check_through_the_workers_copy(app, client, key):
    # The check keeps each library's purposes between requests (web/purpose_cache.py); a
    # new text, a retirement, made by anyone, must show in the very next answer.
    subscribe(app, "jan@example.nl")

    def check():
        body = {"purpose": "newsletter", "recipients": ["jan@example.nl"]}
        [result] = client.post(CHECK, json=body, headers=key).json["results"]
        return result

    def version():
        with app.app_context():
            return db.session.scalar(select(Library).where(Library.slug == "borne")).config_version

    first, before = check(), version()
    assert first["allowed"] and first["headers"]["List-Id"].startswith('"Nieuwsbrief"')
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        newsletter = ledger.purpose_by_code(lib, "newsletter")
        ledger.add_text(db.session, newsletter, "nl", "Nieuws uit Borne", "Elke maand ons nieuws.")
        db.session.commit()
    assert version() == before + 1
    assert check()["headers"]["List-Id"].startswith('"Nieuws uit Borne"')
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        ledger.retire_purpose(ledger.purpose_by_code(lib, "newsletter"))
        db.session.commit()
    assert version() == before + 2
    assert check() == {"email": "jan@example.nl", "allowed": False, "reason": "purpose_retired"}
    # Reading a library changes nothing, and leaves the version as it is.
    with app.app_context():
        db.session.scalar(select(Library).where(Library.slug == "borne")).purposes  # noqa: B018
        db.session.commit()
    assert version() == before + 2
