"""Laposta and Brevo webhooks: the processors Dutch libraries use besides Mailchimp,
Postmark and SendGrid. Payloads are written from the processors' documented shapes."""

import copy
import json
import logging
from pathlib import Path

import jsonschema_rs
import pytest
from sqlalchemy import func, select

from consentsvc import clients, ledger
from consentsvc.extensions import db
from consentsvc.models import ApiClient, InboundEvent, Library, Suppression
from consentsvc.web.openapi import document

from .test_api import CHECK, make_key, provider_url, status, subscribe

FIXTURES = Path(__file__).parent / "fixtures"
IGNORED_BY_BREVO = (
    "list_addition", "contact_deleted", "contact_updated", "opened", "click", "soft_bounce",
    "blocked", "invalid_email", "delivered", "something_new",
)  # fmt: skip
PEOPLE = ("leaver@example.nl", "bounced@example.nl", "removed@example.nl", "newcomer@example.nl")


@pytest.fixture
def key(app):
    return make_key(app)[0]


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def reasons(client, key, recipients, purpose="newsletter"):
    check = client.post(CHECK, json={"purpose": purpose, "recipients": recipients}, headers=key)
    return [r["reason"] for r in check.json["results"]]


def channels(app, email, library="borne"):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        person = ledger.find_subject(db.session, lib, email)
        return sorted(
            (e.purpose.code, e.action, e.channel) for e in ledger.history(db.session, person)
        )


def counts(app):
    with app.app_context():
        return (
            db.session.scalar(select(func.count()).select_from(Suppression)),
            db.session.scalar(select(func.count()).select_from(InboundEvent)),
        )


def laposta_event(email, action="unsubscribed", state="unsubscribed", member_id="m1", when=None):
    return {
        "type": "member",
        "event": "deactivated",
        "data": {"member_id": member_id, "list_id": "BaImMu3JZA", "email": email, "state": state},
        "info": {"source": "app", "action": action, "date_event": when or "2026-11-20 10:15:02"},
        "date_fired": "2026-11-20 10:15:07",
    }


# -- Laposta ------------------------------------------------------------------------------------


def test_laposta_deactivations_in_one_batch(app, client, key):
    for email in PEOPLE:
        subscribe(app, email, codes=("newsletter", "acquisitions"))
    url = provider_url(key, "laposta")
    response = client.post(url, json=fixture("laposta_deactivated.json"))
    # The unsubscribe and the hard bounce count; staff's removal and the signup do not.
    assert response.status_code == 200
    assert response.json == {"status": "processed", "events": 2, "results": ["processed"] * 2}
    assert status(app, "leaver@example.nl") == "withdrawn"
    assert status(app, "leaver@example.nl", "acquisitions") == "granted"  # only ?purpose=
    assert ("newsletter", "withdrawn", "provider_unsubscribe") in channels(app, "leaver@example.nl")
    assert reasons(client, key, list(PEOPLE)) == ["withdrawn", "suppressed", "granted", "granted"]
    assert status(app, "bounced@example.nl", "acquisitions") == "withdrawn"
    assert ("acquisitions", "withdrawn", "provider_bounce") in channels(app, "bounced@example.nl")
    with app.app_context():
        assert list(db.session.scalars(select(Suppression.reason))) == ["hard_bounce"]


def test_laposta_without_info_action_reads_the_members_state(app, client, key):
    subscribe(app, "leaver@example.nl")
    subscribe(app, "bounced@example.nl")
    batch = [
        laposta_event("leaver@example.nl"),
        laposta_event("bounced@example.nl", state="cleaned"),
    ]
    for event in batch:
        del event["info"]["action"]
    response = client.post(provider_url(key, "laposta"), json={"data": batch})
    assert response.json["results"] == ["processed", "processed"]
    assert reasons(client, key, ["leaver@example.nl", "bounced@example.nl"]) == [
        "withdrawn", "suppressed",
    ]  # fmt: skip


def test_laposta_redelivery_is_a_duplicate_and_a_batch_does_not_collapse(app, client, key):
    for email in ("a@example.nl", "b@example.nl"):
        subscribe(app, email)
    url = provider_url(key, "laposta")
    # Two members of one list unsubscribing in the same second: two events, not one.
    batch = {
        "data": [
            laposta_event("a@example.nl", member_id="ma"),
            laposta_event("b@example.nl", member_id="mb"),
        ],
        "date_requested": "2026-11-20 10:15:08",
    }
    assert client.post(url, json=batch).json["results"] == ["processed", "processed"]
    # Laposta's retry is fired again later: the event itself happened once.
    retry = copy.deepcopy(batch)
    retry["date_requested"] = "2026-11-20 10:20:00"
    for event in retry["data"]:
        event["date_fired"] = "2026-11-20 10:19:58"
    assert client.post(url, json=retry).json["results"] == ["duplicate", "duplicate"]
    assert counts(app) == (0, 2)
    assert (
        channels(app, "a@example.nl").count(("newsletter", "withdrawn", "provider_unsubscribe"))
        == 1
    )
    # After a new signup, a later unsubscribe of the same member is an event of its own.
    subscribe(app, "a@example.nl")
    later = {"data": [laposta_event("a@example.nl", member_id="ma", when="2026-12-01 08:00:00")]}
    assert client.post(url, json=later).json["results"] == ["processed"]
    assert status(app, "a@example.nl") == "withdrawn"


def test_laposta_testing_the_url_is_answered(app, client, key):
    url = provider_url(key, "laposta")
    assert client.get(url).json == {"status": "ready"}
    for body in (b"", b'{"data": []}'):
        response = client.post(url, data=body, content_type="application/json")
        assert response.status_code == 200
        assert response.json == {"status": "processed", "events": 0, "results": []}
    assert client.post(url).json["events"] == 0  # no body and no content type at all
    # An empty form is no test call but the wrong format (Laposta posts JSON).
    form = client.post(url, data=b"", content_type="application/x-www-form-urlencoded")
    assert (form.status_code, form.json["error"]["code"]) == (400, "invalid_payload")
    assert counts(app) == (0, 0)


def test_laposta_events_of_another_kind_are_acknowledged_and_ignored(app, client, key):
    subscribe(app, "jan@example.nl")
    modified = laposta_event("jan@example.nl")
    modified["event"] = "modified"
    unknown = laposta_event("jan@example.nl", action="something_new", state="active")
    other_type = {**laposta_event("jan@example.nl"), "type": "campaign"}
    response = client.post(
        provider_url(key, "laposta"), json={"data": [modified, unknown, other_type]}
    )
    assert response.json == {"status": "processed", "events": 0, "results": []}
    assert status(app, "jan@example.nl") == "granted"


def bad_laposta_bodies():
    good = laposta_event("jan@example.nl")

    def changed(path, value):
        event = copy.deepcopy(good)
        target = event
        for part in path[:-1]:
            target = target[part]
        if value is None:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return {"data": [event]}

    return [
        pytest.param(b"\xff\xfe{<not json>", id="not json"),
        pytest.param(b"[]", id="an array"),
        pytest.param(b'"data"', id="a string"),
        pytest.param(b"{}", id="no data"),
        pytest.param(b'{"data": {"event": "deactivated"}}', id="data not a list"),
        pytest.param(json.dumps({"data": [good, 5]}).encode(), id="an event not an object"),
        pytest.param(json.dumps(changed(["event"], None)).encode(), id="no event"),
        pytest.param(json.dumps(changed(["event"], 7)).encode(), id="event not text"),
        pytest.param(json.dumps(changed(["type"], ["member"])).encode(), id="type not text"),
        pytest.param(json.dumps(changed(["data"], None)).encode(), id="no member"),
        pytest.param(json.dumps(changed(["data"], "jan@example.nl")).encode(), id="member text"),
        pytest.param(json.dumps(changed(["data", "email"], None)).encode(), id="no email"),
        pytest.param(json.dumps(changed(["data", "email"], ["x"])).encode(), id="email a list"),
        pytest.param(json.dumps(changed(["data", "state"], 1)).encode(), id="state a number"),
        pytest.param(json.dumps(changed(["data", "member_id"], {})).encode(), id="member_id"),
        pytest.param(json.dumps(changed(["info"], "unsubscribed")).encode(), id="info text"),
        pytest.param(json.dumps(changed(["info", "action"], True)).encode(), id="action"),
        pytest.param(json.dumps(changed(["info", "date_event"], 3)).encode(), id="date_event"),
    ]


# -- Brevo --------------------------------------------------------------------------------------


def test_brevo_transactional_events_batched(app, client, key):
    people = ["bounced@example.nl", "complainer@example.nl", "leaver@example.nl", "full@example.nl"]
    for email in people:
        subscribe(app, email, codes=("newsletter", "acquisitions"))
    response = client.post(provider_url(key, "brevo"), json=fixture("brevo_transactional.json"))
    # A soft bounce, a block and a delivery do not concern consent and are left out.
    assert response.json == {"status": "processed", "events": 3, "results": ["processed"] * 3}
    assert reasons(client, key, people) == ["suppressed", "suppressed", "withdrawn", "granted"]
    assert status(app, "leaver@example.nl", "acquisitions") == "granted"
    assert status(app, "complainer@example.nl", "acquisitions") == "withdrawn"
    assert ("newsletter", "withdrawn", "provider_complaint") in channels(
        app, "complainer@example.nl"
    )
    with app.app_context():
        assert sorted(db.session.scalars(select(Suppression.reason))) == [
            "complaint",
            "hard_bounce",
        ]


def test_brevo_marketing_events_one_a_call(app, client, key):
    subscribe(app, "leaver@example.nl")
    subscribe(app, "complainer@example.nl")
    url = provider_url(key, "brevo")
    for name in ("brevo_marketing_unsubscribe.json", "brevo_marketing_spam.json"):
        assert client.post(url, json=fixture(name)).json["results"] == ["processed"], name
    assert ("newsletter", "withdrawn", "provider_unsubscribe") in channels(app, "leaver@example.nl")
    assert reasons(client, key, ["leaver@example.nl", "complainer@example.nl"]) == [
        "withdrawn", "suppressed",
    ]  # fmt: skip
    hard = {**fixture("brevo_marketing_spam.json"), "event": "hard_bounce", "email": "x@example.nl"}
    assert client.post(url, json=hard).json["results"] == ["processed"]
    assert reasons(client, key, ["x@example.nl"]) == ["suppressed"]


def test_brevo_events_that_do_not_concern_consent_are_ignored(app, client, key):
    subscribe(app, "jan@example.nl")
    url = provider_url(key, "brevo")
    base = fixture("brevo_marketing_unsubscribe.json")
    for kind in IGNORED_BY_BREVO:
        response = client.post(url, json={**base, "email": "jan@example.nl", "event": kind})
        assert response.json == {"status": "processed", "events": 0, "results": []}, kind
    assert status(app, "jan@example.nl") == "granted"
    assert counts(app) == (0, 0)


def test_brevo_redelivery_is_a_duplicate_and_recipients_of_one_campaign_stay_apart(
    app, client, key
):
    for email in ("a@example.nl", "b@example.nl"):
        subscribe(app, email)
    url = provider_url(key, "brevo")
    # Brevo's "id" is the same for every event of the webhook; camp_id for the whole campaign.
    first = {**fixture("brevo_marketing_unsubscribe.json"), "email": "a@example.nl"}
    second = {**first, "email": "b@example.nl"}
    assert client.post(url, json=[first, second]).json["results"] == ["processed", "processed"]
    assert client.post(url, json=first).json["results"] == ["duplicate"]
    assert client.post(url, json=[second]).json["results"] == ["duplicate"]
    # The same person complaining about the same campaign is another event.
    spam = {**first, "event": "spam"}
    assert client.post(url, json=spam).json["results"] == ["processed"]
    assert counts(app) == (1, 3)
    assert reasons(client, key, ["a@example.nl", "b@example.nl"]) == ["suppressed", "withdrawn"]


def bad_brevo_bodies():
    good = fixture("brevo_marketing_unsubscribe.json")
    return [
        pytest.param(b"\xff\xfe{<not json>", id="not json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"42", id="a number"),
        pytest.param(b'"unsubscribe"', id="a string"),
        pytest.param(json.dumps([good, "x"]).encode(), id="an item not an object"),
        pytest.param(json.dumps({**good, "event": None}).encode(), id="no event"),
        pytest.param(json.dumps({**good, "event": ["spam"]}).encode(), id="event a list"),
        pytest.param(
            json.dumps({k: v for k, v in good.items() if k != "email"}).encode(), id="no email"
        ),
        pytest.param(json.dumps({**good, "email": 12}).encode(), id="email a number"),
        pytest.param(json.dumps({**good, "camp_id": {"id": 42}}).encode(), id="camp_id object"),
        pytest.param(json.dumps({**good, "ts_event": True}).encode(), id="ts_event boolean"),
        pytest.param(json.dumps({**good, "message-id": [1]}).encode(), id="message-id a list"),
        pytest.param(json.dumps({**good, "id": 1.5}).encode(), id="id a fraction"),
    ]


@pytest.mark.parametrize(
    ("provider", "body"),
    [pytest.param("laposta", *p.values, id=f"laposta {p.id}") for p in bad_laposta_bodies()]
    + [pytest.param("brevo", *p.values, id=f"brevo {p.id}") for p in bad_brevo_bodies()],
)
def test_bodies_it_cannot_read_are_refused_and_change_nothing(app, client, key, provider, body):
    # Every fixture's address is one of these; none may change.
    for email in ("jan@example.nl", "leaver@example.nl"):
        subscribe(app, email)
    response = client.post(provider_url(key, provider), data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_payload"
    assert response.json["error"]["message"]
    assert status(app, "jan@example.nl") == status(app, "leaver@example.nl") == "granted"
    assert counts(app) == (0, 0)


# -- both: keys, purposes, addresses, logs, the document ------------------------------------------


@pytest.mark.parametrize("provider", ["laposta", "brevo"])
def test_a_key_of_another_library_or_a_revoked_key_changes_nothing_here(app, client, provider):
    subscribe(app, "bounced@example.nl", library="borne")
    body = (
        {"data": [laposta_event("bounced@example.nl", action="hardbounce", state="cleaned")]}
        if provider == "laposta"
        else {**fixture("brevo_marketing_spam.json"), "email": "bounced@example.nl"}
    )
    zoetermeer, _ = make_key(app, library="zoetermeer", name="Laposta Zoetermeer")
    assert client.post(provider_url(zoetermeer, provider), json=body).json["results"] == [
        "processed"
    ]
    borne, borne_id = make_key(app)
    assert reasons(client, borne, ["bounced@example.nl"]) == ["granted"]  # Borne's untouched
    assert reasons(client, zoetermeer, ["bounced@example.nl"]) == ["suppressed"]

    with app.app_context():
        clients.revoke(db.session, db.session.get(ApiClient, borne_id))
        db.session.commit()
    for call in (client.get, client.post):
        refused = call(provider_url(borne, provider), json=body)
        assert refused.status_code == 404 and refused.json["error"]["code"] == "not_found"
    assert status(app, "bounced@example.nl") == "granted"
    assert counts(app) == (1, 1)


@pytest.mark.parametrize("provider", ["laposta", "brevo"])
def test_an_unsubscribe_needs_a_purpose_and_a_bad_address_does_not_hold_up_the_rest(
    app, client, provider
):
    headers, _ = make_key(app)  # two purposes: an unsubscribe needs ?purpose=
    key = headers["Authorization"].split(" ", 1)[1]
    subscribe(app, "leaver@example.nl")
    if provider == "laposta":
        body = {
            "data": [
                laposta_event("leaver@example.nl", member_id="m1"),
                laposta_event("not-an-address", action="hardbounce", member_id="m2"),
                laposta_event("bounced@example.nl", action="hardbounce", member_id="m3"),
            ]
        }
    else:
        unsub = fixture("brevo_marketing_unsubscribe.json")
        body = [
            unsub,
            {**unsub, "event": "hard_bounce", "email": "not-an-address"},
            {**unsub, "event": "hard_bounce", "email": "bounced@example.nl"},
        ]
    response = client.post(f"/api/v1/providers/{provider}/{key}", json=body)
    assert response.status_code == 200
    assert response.json["results"] == [
        "rejected: invalid_field (purpose)",
        "rejected: invalid_address (email)",
        "processed",
    ]
    assert status(app, "leaver@example.nl") == "granted"
    # With the purpose named, the same call now stops it (the rejected ones were not kept).
    again = client.post(f"/api/v1/providers/{provider}/{key}?purpose=newsletter", json=body)
    assert again.json["results"][0] == "processed" and again.json["results"][2] == "duplicate"
    assert status(app, "leaver@example.nl") == "withdrawn"


def test_no_address_or_key_is_logged(app, client, key, caplog):
    for email in ("leaver@example.nl", "bounced@example.nl", "complainer@example.nl"):
        subscribe(app, email)
    caplog.set_level(logging.DEBUG)
    client.post(provider_url(key, "laposta"), json=fixture("laposta_deactivated.json"))
    client.post(provider_url(key, "brevo"), json=fixture("brevo_transactional.json"))
    client.post(provider_url(key, "brevo"), data=b"{bad", content_type="application/json")
    assert "processed" in client.post(provider_url(key, "brevo"), json=[]).json["status"]
    secret = key["Authorization"].split(" ", 1)[1]
    for text in ("leaver@", "bounced@", "complainer@", "removed@", "newcomer@", secret):
        assert text not in caplog.text, text
    # What is kept of each report holds the address only as the keyed hash.
    with app.app_context():
        rows = db.session.execute(select(InboundEvent.external_id, InboundEvent.email_hmac))
        kept = {(ident.split(":")[0], mac) for ident, mac in rows}
        hmac_key = app.config["SUPPRESSION_KEY"]
    assert kept == {
        ("laposta", ledger.email_hmac(hmac_key, "leaver@example.nl")),
        ("laposta", ledger.email_hmac(hmac_key, "bounced@example.nl")),
        ("brevo", ledger.email_hmac(hmac_key, "bounced@example.nl")),
        ("brevo", ledger.email_hmac(hmac_key, "complainer@example.nl")),
        ("brevo", ledger.email_hmac(hmac_key, "leaver@example.nl")),
    }


def test_the_documented_bodies_match_the_processors_payloads():
    spec = document("http://localhost")
    post = spec["paths"]["/api/v1/providers/{provider}/{key}"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert {"laposta", "brevo"} <= set(spec["paths"]["/api/v1/providers/{provider}/{key}"][
        "parameters"][0]["schema"]["enum"])  # fmt: skip

    def validator(root):
        return jsonschema_rs.Draft202012Validator({**root, "components": spec["components"]})

    for name, component in [
        ("laposta_deactivated.json", "LapostaWebhook"),
        ("brevo_transactional.json", "BrevoEvents"),
        ("brevo_marketing_unsubscribe.json", "BrevoEvents"),
        ("brevo_marketing_spam.json", "BrevoEvents"),
    ]:
        body = fixture(name)
        assert validator(schema).is_valid(body), name
        assert validator({"$ref": f"#/components/schemas/{component}"}).is_valid(body), name
    laposta = validator({"$ref": "#/components/schemas/LapostaWebhook"})
    assert not laposta.is_valid({"data": [{"type": "member"}]})  # no event
    assert not validator({"$ref": "#/components/schemas/BrevoEvents"}).is_valid([{"email": "x"}])
