"""GET /api/v1/decisions/<id>: what a past consent check answered, for the sender that asked."""

from datetime import UTC, datetime

import jsonschema_rs
import time_machine
from sqlalchemy import func, select

from consentsvc import clients, ledger
from consentsvc.extensions import db
from consentsvc.models import ConsentDecision, Library
from consentsvc.retention import run_library

CHECK = "/api/v1/consent/check"
SUPPRESSION_KEY = "test-suppression-key"


def key_for(app, library="borne", purposes=("newsletter", "acquisitions")):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        _client, key = clients.create(db.session, lib, "Laposta", list(purposes))
        db.session.commit()
    return {"Authorization": f"Bearer {key}"}


def subscribe(app, email, library="borne", codes=("newsletter",)):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        result = ledger.signup(db.session, lib, email, codes, language="nl", channel="web_form")
        ledger.confirm(db.session, result.subject, result.request_ids)
        db.session.commit()
        return result.subject.id


def with_person(app, email, change):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        change(ledger.find_subject(db.session, lib, email))
        db.session.commit()


def checked(client, key, recipients, purpose="newsletter"):
    response = client.post(CHECK, json={"purpose": purpose, "recipients": recipients}, headers=key)
    assert response.status_code == 200
    return response.json["decision_id"]


def validator(client, name):
    spec = client.get("/api/openapi.json").json
    return jsonschema_rs.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": spec["components"]},
        validate_formats=True,
    )


def test_a_decision_tells_what_the_check_answered(app, client):
    key = key_for(app)
    subscribe(app, "piet@example.nl")
    subscribe(app, "jan@example.nl")
    subscribe(app, "weg@example.nl")
    with_person(
        app,
        "weg@example.nl",
        lambda p: ledger.withdraw(db.session, p, "newsletter", channel="one_click"),
    )
    decision_id = checked(
        client, key,
        ["Jan@Example.nl", "piet@example.nl", "weg@example.nl", "nobody@example.nl", "nope",
         "jan@example.nl"],
    )  # fmt: skip

    response = client.get(f"/api/v1/decisions/{decision_id}", headers=key)
    assert response.status_code == 200
    body = response.json
    assert body["decision_id"] == decision_id
    assert body["purpose"] == "newsletter"
    assert body["checked_at"].endswith("Z")
    assert body["recipients"] == 6
    assert body["reasons"] == {
        "granted": 3, "withdrawn": 1, "no_consent": 1, "invalid_address": 1,
    }  # fmt: skip
    # Jan twice in the check is one person; sorted by address.
    assert body["allowed_people"] == 2
    assert body["allowed_erased"] == 0
    assert body["allowed_emails"] == ["jan@example.nl", "piet@example.nl"]
    # Kept for the library's 24 months.
    checked_at = datetime.fromisoformat(body["checked_at"])
    kept_until = datetime.fromisoformat(body["kept_until"])
    assert (kept_until.year - checked_at.year) * 12 + kept_until.month - checked_at.month == 24
    assert validator(client, "Decision").is_valid(body)

    # An upper-case id is the same id.
    again = client.get(f"/api/v1/decisions/{decision_id.upper()}", headers=key)
    assert again.json == body


def test_asked_for_one_address(app, client):
    key = key_for(app)
    subscribe(app, "jan@example.nl")
    subscribe(app, "piet@example.nl")
    decision_id = checked(client, key, ["jan@example.nl", "nobody@example.nl"])
    url = f"/api/v1/decisions/{decision_id}"

    jan = client.get(url, query_string={"email": "JAN@example.nl"}, headers=key)
    assert jan.status_code == 200
    assert jan.json["email"] == "jan@example.nl"
    assert (jan.json["known"], jan.json["allowed"]) == (True, True)
    assert "allowed_emails" not in jan.json
    assert validator(client, "DecisionForAddress").is_valid(jan.json)
    # Known, but not in this check.
    piet = client.get(url, query_string={"email": "piet@example.nl"}, headers=key).json
    assert (piet["known"], piet["allowed"]) == (True, False)
    nobody = client.get(url, query_string={"email": "nobody@example.nl"}, headers=key).json
    assert (nobody["known"], nobody["allowed"]) == (False, False)

    bad = client.get(url, query_string={"email": "not an address"}, headers=key)
    assert bad.status_code == 400
    assert bad.json["error"]["code"] == "invalid_address"
    assert bad.json["error"]["field"] == "email"


def test_an_erased_person_counts_without_an_address(app, client):
    key = key_for(app)
    subscribe(app, "jan@example.nl")
    subscribe(app, "piet@example.nl")
    decision_id = checked(client, key, ["jan@example.nl", "piet@example.nl"])
    with_person(
        app, "piet@example.nl",
        lambda p: ledger.erase(
            db.session, p, suppression_key=SUPPRESSION_KEY, actor="staff:1", identification="id"
        ),
    )  # fmt: skip

    body = client.get(f"/api/v1/decisions/{decision_id}", headers=key).json
    assert body["allowed_people"] == 2
    assert body["allowed_erased"] == 1
    assert body["allowed_emails"] == ["jan@example.nl"]
    assert not any("erased" in email for email in body["allowed_emails"])
    piet = client.get(
        f"/api/v1/decisions/{decision_id}", query_string={"email": "piet@example.nl"}, headers=key
    ).json
    assert (piet["known"], piet["allowed"]) == (False, False)


def test_another_library_or_purpose_does_not_see_it(app, client):
    borne = key_for(app)
    subscribe(app, "jan@example.nl")
    decision_id = checked(client, borne, ["jan@example.nl"])
    unknown = client.get("/api/v1/decisions/00000000-0000-4000-8000-000000000000", headers=borne)
    assert unknown.status_code == 404

    zoetermeer = key_for(app, library="zoetermeer")
    other_library = client.get(f"/api/v1/decisions/{decision_id}", headers=zoetermeer)
    assert other_library.status_code == 404
    # Never a 403: the same answer as an id nobody made.
    assert other_library.json == unknown.json
    assert "jan@example.nl" not in other_library.get_data(as_text=True)

    acquisitions_only = key_for(app, purposes=("acquisitions",))
    other_purpose = client.get(f"/api/v1/decisions/{decision_id}", headers=acquisitions_only)
    assert other_purpose.status_code == 404
    # Another key of the library with the purpose may: the proof is the library's.
    colleague = key_for(app, purposes=("newsletter",))
    assert client.get(f"/api/v1/decisions/{decision_id}", headers=colleague).status_code == 200


def test_bad_ids_and_missing_keys(app, client):
    key = key_for(app)
    for bad in ("nope", "6f1c1a52-2b7e-4d6e-9d55", "6f1c1a52x2b7e-4d6e-9d55-0c1f3f0b8e21", "1"):
        response = client.get(f"/api/v1/decisions/{bad}", headers=key)
        assert response.status_code == 400, bad
        assert response.json["error"]["code"] == "invalid_field"
        assert response.json["error"]["field"] == "decision_id"
    # A path that is no decision at all is the API's JSON 404.
    response = client.get("/api/v1/decisions/a/b", headers=key)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    response = client.get("/api/v1/decisions/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_a_decision_past_its_retention_is_gone(app, client):
    key = key_for(app)
    subscribe(app, "jan@example.nl")
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        decision_id = checked(client, key, ["jan@example.nl"])
        url = f"/api/v1/decisions/{decision_id}"
        clock.move_to(datetime(2028, 11, 30, 9, 0, tzinfo=UTC))
        assert client.get(url, headers=key).status_code == 200
        # 24 months on: gone, although the retention job has not removed the row yet.
        clock.move_to(datetime(2028, 12, 1, 9, 0, 1, tzinfo=UTC))
        response = client.get(url, headers=key)
        assert response.status_code == 404
        message = response.json["error"]["message"]
        assert "retention period (24 months" in message
        with app.app_context():
            assert db.session.get(ConsentDecision, decision_id) is not None
            borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
            run_library(db.session, borne, suppression_key=SUPPRESSION_KEY)
            db.session.commit()
            assert db.session.scalar(select(func.count()).select_from(ConsentDecision)) == 0
        after = client.get(url, headers=key)
        assert after.status_code == 404
        assert after.json["error"]["message"] == message


def test_the_library_s_own_retention_period_counts(app, client):
    key = key_for(app)
    subscribe(app, "jan@example.nl")
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        borne.retention = {**borne.retention, "check_decisions": 3}
        db.session.commit()
    with time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=UTC), tick=False) as clock:
        decision_id = checked(client, key, ["jan@example.nl"])
        body = client.get(f"/api/v1/decisions/{decision_id}", headers=key).json
        assert body["kept_until"].startswith("2027-03-01T09:00:00")
        clock.move_to(datetime(2027, 3, 2, tzinfo=UTC))
        response = client.get(f"/api/v1/decisions/{decision_id}", headers=key)
        assert response.status_code == 404
        assert "(3 months" in response.json["error"]["message"]
