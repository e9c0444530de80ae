"""Membership from the library system: the API (scope, every field refused with nothing
changed, create and update, idempotent), the nightly import, and where it is shown."""

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import select

from consentsvc import clients, ledger, membership_file, tokens
from consentsvc.extensions import db
from consentsvc.models import ApiClient, Library, Subject

from .conftest import csrf_token
from .test_admin import log_in, person

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "export.schema.json").read_text())
GOOD = {"card_number": "21234000012345", "start": "2020-03-01", "end": None}


def make_key(app, *, scopes=("membership",), purposes=("newsletter",), library="borne"):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        _client, key = clients.create(db.session, lib, "Wise", list(purposes), list(scopes))
        db.session.commit()
        return {"Authorization": f"Bearer {key}"}


def stored(app, email="jan@example.nl", library="borne"):
    """What the database holds about one person's membership (None: no such person)."""
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        subject = ledger.find_subject(db.session, lib, email)
        if subject is None:
            return None
        return (
            subject.card_number,
            subject.membership_started_on,
            subject.membership_ended_on,
            subject.last_activity_at,
        )


def people(app):
    with app.app_context():
        return db.session.scalar(select(db.func.count()).select_from(Subject))


def put(client, headers, email="jan@example.nl", **body):
    return client.put(
        f"/api/v1/subjects/{email}/membership", json={**GOOD, **body}, headers=headers
    )


# -- the API -----------------------------------------------------------------------------------


def test_put_creates_the_person_then_updates_then_changes_nothing(app, client):
    headers = make_key(app)
    created = put(client, headers, "Jan@Example.nl")
    assert created.status_code == 201
    assert created.json == {
        "email": "jan@example.nl",
        "status": "created",
        "membership": {"card_number": "21234000012345", "start": "2020-03-01", "end": None},
    }
    card, start, end, activity = stored(app)
    assert (card, start, end) == ("21234000012345", date(2020, 3, 1), None)

    again = put(client, headers)
    assert (again.status_code, again.json["status"]) == (200, "unchanged")
    assert stored(app) == (card, start, end, activity)

    ended = put(client, headers, end="2025-12-31")
    assert (ended.status_code, ended.json["status"]) == (200, "updated")
    assert ended.json["membership"]["end"] == "2025-12-31"
    # The library's doing, not the member's: their last activity stays where it was.
    assert stored(app) == (card, start, date(2025, 12, 31), activity)
    assert people(app) == 1


def test_a_membership_records_no_consent_and_no_activity_for_a_known_person(app, client):
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        result = ledger.signup(
            db.session, borne, "jan@example.nl", ["newsletter"], language="en", channel="web_form"
        )
        ledger.confirm(db.session, result.subject, result.request_ids)
        before = result.subject.last_activity_at
        events = len(ledger.history(db.session, result.subject))
        db.session.commit()
    response = put(client, make_key(app))
    assert (response.status_code, response.json["status"]) == (200, "updated")
    with app.app_context():
        subject = db.session.scalar(select(Subject))
        assert subject.last_activity_at == before
        assert subject.language == "en"  # untouched too
        assert len(ledger.history(db.session, subject)) == events


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"card_number": None}, "card_number"),
        ({"card_number": ""}, "card_number"),
        ({"card_number": "1" * 41}, "card_number"),
        ({"card_number": "2100 0012"}, "card_number"),
        ({"card_number": "2100;DROP"}, "card_number"),
        ({"card_number": "-2100"}, "card_number"),
        ({"card_number": "2100ü"}, "card_number"),
        ({"card_number": 21000012}, "card_number"),
        ({"start": None}, "start"),
        ({"start": "01-03-2020"}, "start"),
        ({"start": "2020-02-30"}, "start"),
        ({"start": "2020-3-1"}, "start"),
        ({"start": "0001-01-01"}, "start"),
        ({"start": "1899-12-31"}, "start"),
        ({"start": 20200301}, "start"),
        ({"end": "2019-12-31"}, "end"),
        ({"end": "9999-12-31"}, "end"),
        ({"end": "tomorrow"}, "end"),
        ({"end": ""}, "end"),
        ({"end": 0}, "end"),
    ],
)
def test_each_wrong_field_is_named_and_changes_nothing(app, client, body, field):
    headers = make_key(app)
    assert put(client, headers, end="2024-06-30").status_code == 201
    before = stored(app)
    response = put(client, headers, **body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_field"
    assert response.json["error"]["field"] == field
    assert response.json["error"]["message"]
    assert stored(app) == before
    # and a new person is not created by a refused call either
    assert put(client, headers, "new@example.nl", **body).status_code == 400
    assert stored(app, "new@example.nl") is None


def test_a_missing_end_means_the_membership_runs(app, client):
    headers = make_key(app)
    response = client.put(
        "/api/v1/subjects/jan@example.nl/membership",
        json={"card_number": "A-1", "start": "2021-01-01"},
        headers=headers,
    )
    assert response.status_code == 201
    assert stored(app)[:3] == ("A-1", date(2021, 1, 1), None)


def test_a_bad_address_or_body_is_refused(app, client):
    headers = make_key(app)
    response = put(client, headers, "not-an-address")
    assert response.status_code == 400
    assert response.json["error"] == {
        "code": "invalid_address",
        "message": "Not a valid e-mail address.",
        "field": "email",
    }
    body = client.put("/api/v1/subjects/jan@example.nl/membership", data="x", headers=headers)
    assert (body.status_code, body.json["error"]["code"]) == (400, "invalid_body")
    assert people(app) == 0


def test_a_key_without_the_scope_gets_403_and_changes_nothing(app, client):
    headers = make_key(app, scopes=())
    response = put(client, headers)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden_scope"
    assert people(app) == 0
    # And it never sees a membership in the person's record.
    put(client, make_key(app))
    seen = client.get("/api/v1/subjects/jan@example.nl", headers=headers)
    assert seen.status_code == 200
    assert "membership" not in seen.json


def test_no_key_gets_401(app, client):
    response = client.put("/api/v1/subjects/jan@example.nl/membership", json=GOOD)
    assert response.status_code == 401
    assert people(app) == 0


def test_the_subject_shows_the_membership_to_a_key_with_the_scope(app, client):
    headers = make_key(app)
    assert client.get("/api/v1/subjects/jan@example.nl", headers=headers).status_code == 404
    put(client, headers, end="2025-12-31")
    subject = client.get("/api/v1/subjects/jan@example.nl", headers=headers).json
    assert subject["membership"] == {
        "card_number": "21234000012345",
        "start": "2020-03-01",
        "end": "2025-12-31",
    }
    person(app, "kim@example.nl")
    other = client.get("/api/v1/subjects/kim@example.nl", headers=headers).json
    assert other["membership"] is None


def test_libraries_are_kept_apart(app, client):
    borne, zoetermeer = make_key(app), make_key(app, library="zoetermeer")
    put(client, borne, card_number="B1")
    # Zoetermeer's key does not see Borne's person, and its own call makes its own person.
    assert client.get("/api/v1/subjects/jan@example.nl", headers=zoetermeer).status_code == 404
    assert put(client, zoetermeer, card_number="Z1").status_code == 201
    assert stored(app)[0] == "B1"
    assert stored(app, library="zoetermeer")[0] == "Z1"


def test_an_erased_address_is_not_brought_back(app, client):
    subject_id = person(app)
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        ledger.erase(
            db.session, subject, suppression_key=app.config["SUPPRESSION_KEY"],
            actor="staff:1", identification="pass",
        )  # fmt: skip
        db.session.commit()
    count = people(app)
    response = put(client, make_key(app))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "erased"
    assert response.json["error"]["field"] == "email"
    assert people(app) == count
    assert stored(app) is None
    # A complaint or bounce alone is no erasure: that person is a member all the same.
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        ledger.suppress(
            db.session, borne, "kim@example.nl", "complaint",
            suppression_key=app.config["SUPPRESSION_KEY"],
        )  # fmt: skip
        db.session.commit()
    assert put(client, make_key(app), "kim@example.nl").status_code == 201


def test_the_ledger_refuses_what_the_api_refuses(session, borne):
    with pytest.raises(ledger.EndBeforeStart):
        ledger.check_membership("1", date(2020, 1, 2), date(2020, 1, 1))
    with pytest.raises(ledger.InvalidCardNumber):
        ledger.check_membership("1" * 41, date(2020, 1, 1), None)
    with pytest.raises(ledger.InvalidDate) as absurd:
        ledger.check_membership("1", date(2020, 1, 1), date(2040, 1, 2), today=date(2030, 1, 1))
    assert absurd.value.field == "end"
    # One day inside the bound is fine; the start may equal the end (one day of membership).
    ledger.check_membership("1", date(2040, 1, 1), date(2040, 1, 1), today=date(2030, 1, 3))
    with pytest.raises(ledger.InvalidDate):
        ledger.read_date("２０２０-01-01", "start")  # full-width digits are not a date


# -- the console's key form --------------------------------------------------------------------


def test_the_console_makes_a_key_with_the_membership_scope(app):
    admin = log_in(app, "admin")
    page = admin.get("/admin/clients").get_data(as_text=True)
    assert "Lidmaatschappen doorgeven (voor het bibliotheeksysteem)" in page
    token = csrf_token(admin, "/admin/clients")
    response = admin.post(
        "/admin/clients", data={"name": "Wise", "scope": "membership", "csrf_token": token}
    )
    assert response.status_code == 303
    with app.app_context():
        made = db.session.scalar(select(ApiClient).where(ApiClient.name == "Wise"))
        assert (made.scopes, made.purposes) == (["membership"], [])
    listed = admin.get("/admin/clients").get_data(as_text=True)
    assert "Mag lidmaatschappen uit het bibliotheeksysteem doorgeven" in listed
    # An unknown scope is refused with the form's own message, and no key is made.
    bad = admin.post(
        "/admin/clients", data={"name": "X", "scope": "everything", "csrf_token": token}
    )
    assert bad.status_code == 400
    assert "minstens één doel of recht" in bad.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(ApiClient).where(ApiClient.name == "X")) is None


def test_the_command_line_makes_a_key_with_the_scope(app, runner):
    result = runner.invoke(
        args=["clients", "create", "--library", "borne", "--name", "Wise", "--scope", "membership"]
    )
    assert result.exit_code == 0, result.output
    assert "scope membership" in result.output
    with app.app_context():
        assert db.session.scalar(select(ApiClient.scopes).where(ApiClient.name == "Wise")) == [
            "membership"
        ]
    bare = runner.invoke(args=["clients", "create", "--library", "borne", "--name", "Nobody"])
    assert bare.exit_code != 0
    assert "give --purposes, --scope or both" in bare.output
    wrong = runner.invoke(
        args=["clients", "create", "--library", "borne", "--name", "W", "--scope", "all"]
    )
    assert wrong.exit_code != 0
    with app.app_context():
        names = set(db.session.scalars(select(ApiClient.name)))
    assert names == {"Wise"}


# -- the nightly import ------------------------------------------------------------------------

GOOD_FILE = (
    "email,card_number,start,end\n"
    "jan@example.nl,2100001,2020-03-01,\n"
    '"Piet@Example.nl","2100002","2019-01-01","2025-12-31"\n'
    "kim@example.nl,2100003,2018-05-05,2030-01-01\n"
)


def import_file(runner, tmp_path, content, *extra, name="leden.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return runner.invoke(args=["membership", "import", str(path), "--library", "borne", *extra])


def test_import_of_a_good_file_and_a_rerun_that_changes_nothing(app, runner, tmp_path):
    first = import_file(runner, tmp_path, GOOD_FILE)
    assert first.exit_code == 0, first.output
    assert "borne: 3 rows; 3 new people added, 0 memberships changed, 0 unchanged, 0 refused" in (
        first.output
    )
    assert stored(app, "piet@example.nl")[:3] == ("2100002", date(2019, 1, 1), date(2025, 12, 31))
    assert stored(app, "jan@example.nl")[:3] == ("2100001", date(2020, 3, 1), None)
    before = {e: stored(app, e) for e in ("jan@example.nl", "piet@example.nl", "kim@example.nl")}

    again = import_file(runner, tmp_path, GOOD_FILE)
    assert "0 new people added, 0 memberships changed, 3 unchanged, 0 refused" in again.output
    assert {e: stored(app, e) for e in before} == before
    assert people(app) == 3

    changed = import_file(
        runner, tmp_path, GOOD_FILE.replace("2020-03-01,", "2020-03-01,2026-01-31")
    )
    assert "0 new people added, 1 memberships changed, 2 unchanged" in changed.output
    assert stored(app)[2] == date(2026, 1, 31)


def test_import_reads_a_dutch_excel_file_with_bom_and_semicolons(app, runner, tmp_path):
    content = (
        "\ufeffEmail;Card_Number;Start;End\r\n"
        "jan@example.nl;2100001;01-03-2020;\r\n"
        '"piet@example.nl";"21-00""02";1-1-2019;31-12-2025\r\n'  # Excel's doubled quote
        "kim@example.nl;2100003;2018-05-05;\r\n"
        ";;;\r\n"
    ).encode()
    result = import_file(runner, tmp_path, content)
    assert result.exit_code == 0, result.output
    assert "4 rows" not in result.output  # the empty line is no row
    assert "2 new people added" in result.output
    assert stored(app)[:3] == ("2100001", date(2020, 3, 1), None)
    assert stored(app, "kim@example.nl")[:3] == ("2100003", date(2018, 5, 5), None)
    # '21-00"02' is not a card number: refused, with its line
    assert "line 3: card_number: Letters, digits and hyphens only." in result.output
    assert stored(app, "piet@example.nl") is None


def test_import_lists_every_bad_row_with_its_line_and_no_address(app, runner, tmp_path):
    content = (
        "email;card_number;start;end\n"
        "jan@example.nl;2100001;2020-03-01;\n"  # line 2: good
        "geen-adres;2100002;2020-03-01;\n"  # line 3
        "a@example.nl;;2020-03-01;\n"  # 4
        "b@example.nl;2100004;2020-02-30;\n"  # 5
        "c@example.nl;2100005;2020-03-01;2019-01-01\n"  # 6
        "d@example.nl;2100006;maart 2020;\n"  # 7
        "jan@example.nl;2100007;2020-03-01;\n"  # 8: the address of line 2
        "e@example.nl;2100001;2020-03-01;\n"  # 9: the card of line 2
        "f@example.nl;2100009;2020-03-01\n"  # 10: a field short
        "g@example.nl;2100010;1850-01-01;\n"  # 11
        "h@example.nl;2100011;2020-03-01;\n"  # 12: good
    )
    result = import_file(runner, tmp_path, content)
    assert result.exit_code == 0, result.output
    expected = [
        "line 3: not a valid e-mail address",
        "line 4: card_number: 1 to 40 characters.",
        "line 5: start: no such date",
        "line 6: end: The end lies before the start.",
        "line 7: start: write the date as YYYY-MM-DD or DD-MM-YYYY",
        "line 8: the same address as line 2",
        "line 9: the same card number as line 2",
        "line 10: 3 fields where the header has 4",
        "line 11: start: A date between 1900-01-01 and",
    ]
    lines = [line for line in result.output.splitlines() if line.startswith("line ")]
    assert len(lines) == len(expected)
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start)
    assert "11 rows; 2 new people added, 0 memberships changed, 0 unchanged, 9 refused" in (
        result.output
    )
    for address in ("a@example.nl", "jan@example.nl", "geen-adres", "h@example.nl"):
        assert address not in result.output
    assert people(app) == 2


def test_an_erased_address_in_the_file_is_refused_by_line(app, runner, tmp_path):
    subject_id = person(app, "piet@example.nl")
    with app.app_context():
        ledger.erase(
            db.session, db.session.get(Subject, subject_id),
            suppression_key=app.config["SUPPRESSION_KEY"], actor="staff:1", identification="x",
        )  # fmt: skip
        db.session.commit()
    result = import_file(runner, tmp_path, GOOD_FILE)
    assert "line 3: email: This address was erased here; it is not recorded again." in (
        result.output
    )
    assert "2 new people added" in result.output
    assert stored(app, "piet@example.nl") is None


def test_a_dry_run_stores_nothing_and_counts_what_would_happen(app, runner, tmp_path):
    person(app, "kim@example.nl")
    before = people(app)
    result = import_file(runner, tmp_path, GOOD_FILE + "bad,1,2020-01-01,\n", "--dry-run")
    assert result.exit_code == 0, result.output
    assert (
        "4 rows; 2 new people would be added, 1 memberships would be changed, 0 unchanged, "
        "1 refused (dry run: nothing stored)" in result.output
    )
    assert "line 5: not a valid e-mail address" in result.output
    assert people(app) == before
    assert stored(app, "jan@example.nl") is None
    assert stored(app, "kim@example.nl")[:3] == (None, None, None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"email,card,start,end\n", "unknown column(s) 'card'"),
        (b"email,card_number,start\n", "the header lacks end"),
        (b"email,card_number,start,end,email\n", "the header names email twice"),
        (
            "email,card_number,start,end\nj\xe9@x.nl,1,2020-01-01,\n".encode("latin-1"),
            "not UTF-8 (line 2)",
        ),
        (b"email,card_number,start,end\x00\n", "NUL"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole(app, runner, tmp_path, content, message):
    result = import_file(runner, tmp_path, content)
    assert result.exit_code == 1
    assert message in result.output
    assert people(app) == 0


def test_import_works_in_batches(app, runner, tmp_path):
    rows = "".join(f"m{i}@example.nl,C{i},2020-01-01,\n" for i in range(25))
    result = import_file(runner, tmp_path, "email,card_number,start,end\n" + rows, "--batch", "10")
    assert "25 new people added" in result.output
    assert people(app) == 25


def test_the_parser_keeps_the_line_a_quoted_row_starts_on():
    data = (
        "email,card_number,start,end\n"
        '"a@example.nl",1,2020-01-01,\n'
        '"b\nc",2,2020-01-01,\n'  # a quoted field over two lines: lines 3 and 4
        "d@example.nl,x y,2020-01-01,\n"
    )
    parsed = membership_file.parse(data.encode())
    assert [r.line for r in parsed.rows] == [2]
    assert [(r.line, r.reason) for r in parsed.refused] == [
        (3, "not a valid e-mail address"),
        (5, "card_number: Letters, digits and hyphens only."),
    ]


# -- where it is shown ------------------------------------------------------------------------


def with_membership(app, email="jan@example.nl", end=None):
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        membership = ledger.check_membership("2100001", date(2020, 3, 1), end)
        _outcome, subject = ledger.record_membership(
            db.session, borne, email, membership, suppression_key=app.config["SUPPRESSION_KEY"]
        )
        db.session.commit()
        return subject.id


def test_the_export_carries_the_membership_and_matches_its_schema(app, runner):
    with_membership(app, end=date(2025, 12, 31))
    person(app, "kim@example.nl")
    result = runner.invoke(args=["subject", "export", "jan@example.nl", "--library", "borne"])
    data = json.loads(result.output)
    jsonschema.validate(data, SCHEMA)
    assert data["membership"] == {"start": "2020-03-01", "end": "2025-12-31"}
    assert data["subject"]["card_number"] == "2100001"
    other = runner.invoke(args=["subject", "export", "kim@example.nl", "--library", "borne"])
    assert json.loads(other.output)["membership"] is None


def test_the_export_schema_knows_reconfirm_requested():
    props = SCHEMA["properties"]
    assert "reconfirm_requested" in props["consents"]["items"]["properties"]["status"]["enum"]
    assert "reconfirm_requested" in props["events"]["items"]["properties"]["action"]["enum"]


def test_the_console_shows_member_since_and_the_end(app):
    ended = with_membership(app, end=date(2025, 12, 31))
    running = with_membership(app, "kim@example.nl")
    ahead = with_membership(app, "piet@example.nl", end=ledger.local_today() + timedelta(days=30))
    desk = log_in(app, "desk")
    page = desk.get(f"/admin/subjects/{ended}").get_data(as_text=True)
    assert "<dt>Bibliotheekpas</dt><dd>2100001" in page
    assert "Lid sinds 1 maart 2020 · lidmaatschap beëindigd op 31 december 2025" in page
    page = desk.get(f"/admin/subjects/{running}").get_data(as_text=True)
    assert "Lid sinds 1 maart 2020" in page and "lidmaatschap" not in page
    page = desk.get(f"/admin/subjects/{ahead}?lang=en").get_data(as_text=True)
    assert "Member since 1 March 2020 · membership ends on" in page


def test_the_member_sees_their_membership_in_their_own_words(app, client):
    ended = with_membership(app, end=date(2025, 12, 31))
    running = with_membership(app, "kim@example.nl")
    with app.app_context():
        ended_url = f"/preferences/{tokens.make_preferences(ended)}/data"
        running_url = f"/preferences/{tokens.make_preferences(running)}/data"
    page = client.get(ended_url).get_data(as_text=True)
    assert "Je was lid van 1 maart 2020 tot en met 31 december 2025." in page
    assert "2100001" in page
    page = client.get(running_url).get_data(as_text=True)
    assert "Je bent lid sinds 1 maart 2020." in page
    assert "Dit weten we uit de ledenadministratie van de bibliotheek." in page
    english = client.get(ended_url + "?lang=en").get_data(as_text=True)
    assert "You were a member from 1 March 2020 to 31 December 2025." in english
    data = client.get(running_url + "?format=json").json
    assert data["membership"] == {"start": "2020-03-01", "end": None}


def test_a_membership_as_the_api_reports_it_is_seen_on_the_member_page(app, client):
    """The whole way: the library system's call, then the member's own page."""
    put(client, make_key(app), end=(ledger.local_today() + timedelta(days=400)).isoformat())
    with app.app_context():
        subject_id = db.session.scalar(select(Subject.id))
        url = f"/preferences/{tokens.make_preferences(subject_id)}/data"
    page = client.get(url).get_data(as_text=True)
    assert "Je bent lid sinds 1 maart 2020, tot en met" in page


def test_the_membership_path_loses_its_address_in_log_lines():
    from consentsvc.web.security import redact

    for path in (
        "/api/v1/subjects/jan.geheim@example.nl/membership",
        "/api/v1/subjects/jan.geheim%40example.nl/membership",
    ):
        line = redact(f'"PUT {path} HTTP/1.1" 201')
        assert "jan.geheim" not in line, line
        assert "/membership HTTP/1.1" in line


def test_a_batch_that_meets_a_person_created_meanwhile_is_done_row_by_row(session, borne):
    """Two inserts of one address stand in for a person another writer created between the
    batch's look-up and its insert: the batch is done again one row at a time."""
    membership = ledger.check_membership("2100001", date(2020, 3, 1), None)
    results = ledger.record_memberships(
        session, borne, [("jan@example.nl", membership), ("jan@example.nl", membership)],
        suppression_key="test-suppression-key",
    )  # fmt: skip
    assert results == [ledger.Outcome.CREATED, ledger.Outcome.UNCHANGED]
    session.commit()
    assert session.scalar(select(db.func.count()).select_from(Subject)) == 1


def test_a_restricted_person_has_their_membership_recorded_and_stays_restricted(app, client):
    subject_id = person(app)
    with app.app_context():
        ledger.restrict(db.session, db.session.get(Subject, subject_id))
        db.session.commit()
    assert put(client, make_key(app)).json["status"] == "updated"
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        assert subject.restricted_at is not None
        assert subject.membership_started_on == date(2020, 3, 1)


def test_the_import_leaves_a_known_persons_activity_alone(app, runner, tmp_path):
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        subject = ledger.subject_for(db.session, borne, "jan@example.nl", "nl")
        subject.last_activity_at = datetime(2024, 1, 2, 3, 4, tzinfo=UTC)
        db.session.commit()
    result = import_file(runner, tmp_path, GOOD_FILE)
    assert "2 new people added, 1 memberships changed" in result.output
    assert stored(app) == (
        "2100001",
        date(2020, 3, 1),
        None,
        datetime(2024, 1, 2, 3, 4, tzinfo=UTC),
    )
