"""Importing a subscriber list: the formats, refused rows, evidence, what is never
re-granted, resuming, reconfirmation, 100,000 rows, and the console's upload."""

import hashlib
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import func, select

from consentsvc import ledger, subscriber_file
from consentsvc.extensions import db
from consentsvc.ledger import Channel, Status
from consentsvc.ledger import ImportOutcome as Outcome
from consentsvc.models import (
    ConsentEvent,
    ConsentState,
    Evidence,
    Library,
    OutboxMessage,
    Subject,
    SubscriberImport,
    Suppression,
)

FIXTURES = Path(__file__).parent / "fixtures"
KEY = "test-suppression-key"


def run_cli(runner, path, *extra, purpose="newsletter", library="borne"):
    return runner.invoke(
        args=["import", "subscribers", str(path), "--library", library, "--purpose", purpose,
              "--by", "tester", *extra]
    )  # fmt: skip


def states(app, purpose="newsletter", library="borne"):
    """{address: status} of every person of the library for the purpose."""
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        code = ledger.purpose_by_code(lib, purpose)
        rows = db.session.execute(
            select(Subject.email, ConsentState.status)
            .join(ConsentState, ConsentState.subject_id == Subject.id)
            .where(Subject.library_id == lib.id, ConsentState.purpose_id == code.id)
        )
        return dict(rows.all())


def suppressed(app, email, library="borne"):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        digest = ledger.email_hmac(KEY, email)
        return db.session.scalar(
            select(Suppression.reason).where(
                Suppression.library_id == lib.id, Suppression.email_hmac == digest
            )
        )


def row_counts(app):
    """How many rows each table an import writes has."""
    with app.app_context():
        return {
            model.__name__: db.session.scalar(select(func.count()).select_from(model))
            for model in (Subject, ConsentEvent, ConsentState, Evidence, OutboxMessage,
                          SubscriberImport, Suppression)
        }  # fmt: skip


def verified(app):
    with app.app_context():
        return ledger.verify(db.session)


# -- reading files --------------------------------------------------------------------------


def test_mailchimp_export_is_read_with_its_times_and_addresses():
    data = (FIXTURES / "mailchimp_subscribed.csv").read_bytes()
    listed = subscriber_file.read(data, "members_export_subscribed.csv")
    assert listed.file_format == "mailchimp"
    assert listed.sha256 == hashlib.sha256(data).hexdigest()
    anna, bram, carla = listed.people
    assert (anna.line, anna.email, anna.listed) == (2, "anna.devries@example.nl", "subscribed")
    assert anna.optin_time == datetime(2019, 3, 4, 9, 12, 45, tzinfo=UTC)
    assert anna.confirm_time == datetime(2019, 3, 4, 9, 15, 2, tzinfo=UTC)
    assert bram.email == "bram@example.nl"  # normalised
    assert (bram.optin_ip, bram.confirm_ip) == ("2001:db8::7", "2001:db8::8")
    assert carla.optin_time is None and carla.optin_ip is None
    assert listed.refused == []


def test_mailchimp_unsubscribed_and_cleaned_files_say_so_by_their_columns():
    unsub = subscriber_file.read((FIXTURES / "mailchimp_unsubscribed.csv").read_bytes(), "u.csv")
    cleaned = subscriber_file.read((FIXTURES / "mailchimp_cleaned.csv").read_bytes(), "c.csv")
    assert {p.listed for p in unsub.people} == {"unsubscribed"}
    assert unsub.people[0].left_time == datetime(2022, 9, 9, 9, 9, 9, tzinfo=UTC)
    assert [p.listed for p in cleaned.people] == ["cleaned"]


def test_laposta_export_with_bom_and_semicolons_in_dutch_time():
    data = (FIXTURES / "laposta_export.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    listed = subscriber_file.read(data, "laposta.csv")
    assert listed.file_format == "laposta"
    by_email = {p.email: p for p in listed.people}
    assert [by_email[e].listed for e in ("fleur@example.nl", "gijs@example.nl",
            "hanna@example.nl", "ivo@example.nl")] == [
        "subscribed", "unsubscribed", "cleaned", "subscribed"]  # fmt: skip
    # Laposta writes Dutch local time: 12:30 in April is 10:30 UTC.
    assert by_email["fleur@example.nl"].optin_time == datetime(2021, 4, 1, 10, 30, tzinfo=UTC)
    assert by_email["fleur@example.nl"].optin_ip == "192.0.2.55"
    assert listed.refused == []


def test_bad_rows_are_refused_with_line_and_reason():
    listed = subscriber_file.read((FIXTURES / "plain_bad_rows.csv").read_bytes(), "bad.csv")
    assert listed.file_format == "plain"
    assert [(r.line, r.reason) for r in listed.refused] == [
        (3, "invalid_address"),
        (4, "duplicate"),
        (5, "date_unreadable"),
        (6, "ip_unreadable"),
        (7, "status_unreadable"),
        (8, "unknown_column"),
        (11, "language_unreadable"),
    ]
    assert [(p.line, p.email, p.listed) for p in listed.people] == [
        (2, "jan@example.nl", "subscribed"),
        (10, "olaf@example.nl", "unsubscribed"),
    ]


def test_excel_quoting_with_line_breaks_and_windows_code_page():
    data = (
        'email,optin_time,status\r\n"an ""quoted""@example.nl",,subscribed\r\n'
        '"rik@example.nl","2024-01-01 10:00",subscribed\r\nsø@example.nl,,subscribed\r\n'
    ).encode("cp1252")
    listed = subscriber_file.read(data, "excel.csv")
    assert [p.email for p in listed.people] == ["rik@example.nl"]
    assert [(r.line, r.reason) for r in listed.refused] == [
        (2, "invalid_address"),
        (4, "invalid_address"),
    ]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"name;city\r\nJan;Borne\r\n", "no_email_column"),
        (b"email;favourite_colour\r\na@example.nl;blue\r\n", "unknown_columns"),
        ("email\r\n".encode("utf-16"), "not_text"),
        (b'email\r\n"a@example.nl\r\nb@example.nl\r\n', "unreadable"),
    ],
)
def test_a_file_that_is_no_list_is_refused_as_a_whole(data, code):
    with pytest.raises(subscriber_file.FileRefused) as caught:
        subscriber_file.read(data, "x.csv")
    assert caught.value.code == code


# -- importing ------------------------------------------------------------------------------


def test_mailchimp_import_grants_with_evidence(app, runner):
    result = run_cli(runner, FIXTURES / "mailchimp_subscribed.csv")
    assert result.exit_code == 0, result.output
    assert "mailchimp format, 3 rows" in result.output
    assert "       3  granted" in result.output
    assert states(app) == {
        "anna.devries@example.nl": "granted",
        "bram@example.nl": "granted",
        "carla@example.nl": "granted",
    }
    with app.app_context():
        event = db.session.scalar(
            select(ConsentEvent)
            .join(Subject, Subject.id == ConsentEvent.subject_id)
            .where(Subject.email == "bram@example.nl")
        )
        assert (event.action, event.channel, event.actor) == ("granted", Channel.IMPORT, "tester")
        # The event is the import; the original opt-in is its evidence.
        assert event.occurred_at > datetime.now(UTC) - timedelta(minutes=5)
        assert event.consent_text_id is None
        evidence = event.evidence
        data = (FIXTURES / "mailchimp_subscribed.csv").read_bytes()
        assert evidence.ip_address == "2001:db8::7"
        assert evidence.details["optin_time"] == "2020-11-20T20:01:00Z"
        assert evidence.details["confirm_time"] == "2020-11-20T20:03:30Z"
        assert evidence.details["confirm_ip"] == "2001:db8::8"
        assert evidence.details["file"] == "mailchimp_subscribed.csv"
        assert evidence.details["sha256"] == hashlib.sha256(data).hexdigest()
        assert evidence.details["line"] == 3
        assert evidence.details["imported_by"] == "tester"
        record = db.session.scalar(select(SubscriberImport))
        assert record.finished_at is not None and record.last_line == 4
        assert record.counts == {"granted": 3}
        assert evidence.details["import_id"] == record.id
        # A mailing processor's check now allows them.
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        decisions = ledger.check_many(
            db.session, lib, "newsletter", ["bram@example.nl", "someone@example.nl"],
            suppression_key=KEY,
        )  # fmt: skip
        assert [(d.allowed, d.reason) for d in decisions] == [
            (True, "granted"), (False, "no_consent")]  # fmt: skip
    assert verified(app) == []


def test_import_announces_every_grant_to_webhooks(app, runner):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        from consentsvc.models import WebhookEndpoint

        db.session.add(
            WebhookEndpoint(library_id=lib.id, url="https://hooks.example.nl/consent",
                            events=["consent.granted"], secret="whsec_x")
        )  # fmt: skip
        db.session.commit()
    assert run_cli(runner, FIXTURES / "laposta_export.csv").exit_code == 0
    with app.app_context():
        messages = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.event_type == "consent.granted")
        ).all()
        assert sorted(m.payload["data"]["email"] for m in messages) == [
            "fleur@example.nl",
            "ivo@example.nl",
        ]
        assert {m.payload["data"]["channel"] for m in messages} == {"import"}


def test_laposta_import_carries_over_unsubscribed_and_cleaned(app, runner):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        # Gijs is subscribed here already: the old list's "unsubscribed" withdraws it.
        gijs = ledger.subject_for(db.session, lib, "gijs@example.nl", "nl")
        ledger.grant(db.session, gijs, "newsletter", channel=Channel.STAFF, actor="staff:1")
        db.session.commit()
    result = run_cli(runner, FIXTURES / "laposta_export.csv")
    assert result.exit_code == 0, result.output
    assert states(app) == {
        "fleur@example.nl": "granted",
        "ivo@example.nl": "granted",
        "gijs@example.nl": "withdrawn",
    }
    # Hanna was cleaned (her mailbox is gone) and is not known here: a keyed hash only.
    assert suppressed(app, "hanna@example.nl") == "hard_bounce"
    with app.app_context():
        assert db.session.scalar(select(Subject).where(Subject.email == "hanna@example.nl")) is None
        withdrawal = db.session.scalar(
            select(ConsentEvent).where(ConsentEvent.action == "withdrawn")
        )
        assert withdrawal.channel == "import"
        assert withdrawal.evidence.details["left_time"] == "2023-03-03T14:00:00Z"
    assert verified(app) == []


def test_mailchimp_unsubscribed_after_subscribed_withdraws_and_suppresses_strangers(app, runner):
    assert run_cli(runner, FIXTURES / "mailchimp_subscribed.csv").exit_code == 0
    result = run_cli(runner, FIXTURES / "mailchimp_unsubscribed.csv")
    assert result.exit_code == 0, result.output
    assert states(app)["anna.devries@example.nl"] == "withdrawn"
    assert suppressed(app, "dirk@example.nl") == "unsubscribed"
    assert "dirk@example.nl" not in states(app)
    assert run_cli(runner, FIXTURES / "mailchimp_cleaned.csv").exit_code == 0
    assert suppressed(app, "erik@example.nl") == "hard_bounce"
    assert verified(app) == []


def test_an_import_never_grants_again_what_was_stopped_here(app, runner, tmp_path):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        for email in ("withdrew@example.nl", "objected@example.nl", "restricted@example.nl",
                      "erased@example.nl"):  # fmt: skip
            person = ledger.subject_for(db.session, lib, email, "nl")
            ledger.grant(db.session, person, "newsletter", channel=Channel.STAFF, actor="s")
        withdrew = ledger.find_subject(db.session, lib, "withdrew@example.nl")
        ledger.withdraw(db.session, withdrew, "newsletter", channel=Channel.ONE_CLICK)
        objected = ledger.find_subject(db.session, lib, "objected@example.nl")
        ledger.object_to(db.session, objected, "newsletter", channel=Channel.STAFF, actor="s")
        restricted = ledger.find_subject(db.session, lib, "restricted@example.nl")
        restricted.restricted_at = datetime.now(UTC)
        restricted_id = restricted.id
        erased = ledger.find_subject(db.session, lib, "erased@example.nl")
        ledger.erase(db.session, erased, suppression_key=KEY, actor="s", identification="id")
        ledger.suppress(db.session, lib, "complained@example.nl", "complaint", suppression_key=KEY)
        db.session.commit()
    path = tmp_path / "list.csv"
    path.write_text(
        "email,status\n"
        + "".join(
            f"{name}@example.nl,subscribed\n"
            for name in ("withdrew", "objected", "restricted", "erased", "complained", "new")
        )
    )
    result = run_cli(runner, path)
    assert result.exit_code == 0, result.output
    assert "       1  granted" in result.output
    assert "       4  not granted: withdrawn, objected or suppressed here" in result.output
    assert "       1  left alone: restricted or erased here" in result.output
    now = states(app)
    assert now["withdrew@example.nl"] == "withdrawn"
    assert now["objected@example.nl"] == "objected"
    assert now["restricted@example.nl"] == "granted"
    assert now["new@example.nl"] == "granted"
    assert "complained@example.nl" not in now and "erased@example.nl" not in now
    with app.app_context():
        events = db.session.scalar(
            select(func.count()).where(ConsentEvent.subject_id == restricted_id)
        )
        assert events == 1  # only the desk's grant
    assert verified(app) == []


def test_a_dry_run_reports_every_refused_row_and_stores_nothing(app, runner):
    before = row_counts(app)
    result = run_cli(runner, FIXTURES / "plain_bad_rows.csv", "--dry-run")
    assert result.exit_code == 0, result.output
    for line in (
        "line 3: refused, invalid address",
        "line 4: refused, duplicate",
        "line 5: refused, date unreadable",
        "line 6: refused, IP address unreadable",
        "line 7: refused, status unreadable",
        "line 8: refused, unknown column",
        "line 11: refused, language unreadable",
        "       1  granted",
        "       1  suppressed",
        "       7  refused",
        "dry run: nothing was stored",
    ):
        assert line in result.output
    # No address is printed: the report may be pasted anywhere.
    assert "@" not in result.output
    assert row_counts(app) == before


def test_a_file_that_cannot_be_read_changes_nothing(app, runner, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("name;favourite\nJan;boeken\n")
    result = run_cli(runner, path)
    assert result.exit_code != 0
    assert "no column with e-mail addresses" in result.output
    assert "nothing imported" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SubscriberImport)) == 0


def test_an_unknown_library_or_purpose_is_refused(app, runner):
    path = FIXTURES / "laposta_export.csv"
    assert "no library 'nowhere'" in run_cli(runner, path, library="nowhere").output
    assert "no purpose 'sms'" in run_cli(runner, path, purpose="sms").output


def test_rerunning_the_same_file_adds_nothing_twice(app, runner):
    first = run_cli(runner, FIXTURES / "laposta_export.csv")
    assert first.exit_code == 0
    with app.app_context():
        events = db.session.scalar(select(func.count()).select_from(ConsentEvent))
    again = run_cli(runner, FIXTURES / "laposta_export.csv")
    assert again.exit_code == 0, again.output
    assert "imported before; nothing added" in again.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == events
        assert db.session.scalar(select(func.count()).select_from(SubscriberImport)) == 1


def test_a_broken_off_import_goes_on_after_the_last_stored_line(app, tmp_path, monkeypatch):
    from consentsvc.ledger import imports

    monkeypatch.setattr(imports, "BATCH", 10)
    rows = "".join(f"reader{i}@example.nl,subscribed\n" for i in range(35))
    data = ("email,status\n" + rows).encode()
    listed = subscriber_file.read(data, "big.csv")
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        record = ledger.begin_import(db.session, lib, "newsletter", listed.source, actor="t")
        db.session.commit()
        batches = []

        def crash_after_two(rows):
            db.session.commit()
            batches.append(rows)
            if len(batches) == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            ledger.run_import(
                db.session, record, listed.people, suppression_key=KEY, actor="t",
                after_batch=crash_after_two,
            )  # fmt: skip
        db.session.rollback()
        record = ledger.begin_import(db.session, lib, "newsletter", listed.source, actor="t")
        assert (record.last_line, record.finished_at) == (21, None)
        report = ledger.run_import(
            db.session, record, listed.people, suppression_key=KEY, actor="t"
        )
        db.session.commit()
        assert report.resumed_after == 21
        assert report.counts == {"granted": 15}
        assert record.counts == {"granted": 35}
        events = db.session.scalar(select(func.count()).select_from(ConsentEvent))
        assert events == 35
    assert verified(app) == []


def test_the_same_people_in_a_new_file_are_not_granted_twice(app, runner, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("email\nanna@example.nl\n")
    assert run_cli(runner, path).exit_code == 0
    path.write_text("email\nanna@example.nl\nbob@example.nl\n")
    result = run_cli(runner, path)
    assert "       1  already granted here" in result.output
    assert "       1  granted" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 2


def test_reconfirm_asks_by_mail_spread_over_minutes(app_factory, tmp_path):
    app = app_factory(IMPORT_RECONFIRM_PER_MINUTE=2)
    runner = app.test_cli_runner()
    path = tmp_path / "old.csv"
    path.write_text("email,language\n" + "".join(f"p{i}@example.nl,en\n" for i in range(5)))
    result = run_cli(runner, path, "--reconfirm")
    assert result.exit_code == 0, result.output
    assert "       5  asked to reconfirm" in result.output
    assert set(states(app).values()) == {Status.RECONFIRM_REQUESTED}
    with app.app_context():
        mails = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.event_type == "mail.reconfirm")
            .order_by(OutboxMessage.id)
        ).all()  # fmt: skip
        assert len(mails) == 5
        start = mails[0].next_attempt_at
        offsets = [round((m.next_attempt_at - start).total_seconds() / 60) for m in mails]
        assert offsets == [0, 0, 1, 1, 2]
        event = db.session.get(ConsentEvent, mails[0].payload["request_ids"][0])
        assert event.action == "reconfirm_requested"
        assert event.consent_text.language == "en"  # the wording they are asked to agree to
        # No grant is announced: nobody may be mailed until they agree.
        assert not db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.event_type == "consent.granted")
        ).all()
    assert verified(app) == []


def test_reconfirmation_mail_confirms_the_imported_consent(app_factory, tmp_path):
    from .conftest import Mailbox, link_in

    app = app_factory()
    from consentsvc.extensions import mail

    path = tmp_path / "old.csv"
    path.write_text("email\nfenna@example.nl\n")
    with mail.record_messages() as recorded:
        assert run_cli(app.test_cli_runner(), path, "--reconfirm").exit_code == 0
        outbox = Mailbox(app, recorded)
        assert len(outbox) == 1
        link = link_in(outbox[0], "confirm")
    client = app.test_client()
    assert client.get(link).status_code == 200
    assert states(app) == {"fenna@example.nl": "reconfirm_requested"}  # GET changes nothing
    client.post(link)
    assert states(app) == {"fenna@example.nl": "granted"}
    assert verified(app) == []


def test_one_hundred_thousand_rows(app):
    people = 100_000
    lines = ["Email Address,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LAST_CHANGED"]
    lines += [
        f"reader{i}@example.nl,2020-01-01 10:00:00,192.0.2.{i % 250},"
        f"2020-01-01 10:05:00,192.0.2.{i % 250},2023-01-01 00:00:00"
        for i in range(people)
    ]
    listed = subscriber_file.read("\n".join(lines).encode(), "audience.csv")
    assert len(listed.people) == people
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        # A few already here: one withdrew, one is granted.
        for i, stop in ((7, True), (8, False)):
            person = ledger.subject_for(db.session, lib, f"reader{i}@example.nl", "nl")
            ledger.grant(db.session, person, "newsletter", channel=Channel.STAFF, actor="s")
            if stop:
                ledger.withdraw(db.session, person, "newsletter", channel=Channel.ONE_CLICK)
        db.session.commit()
        record = ledger.begin_import(db.session, lib, "newsletter", listed.source, actor="t")
        report = ledger.run_import(
            db.session, record, listed.people, suppression_key=KEY, actor="t",
            after_batch=lambda rows: db.session.commit(),
        )  # fmt: skip
        db.session.commit()
        assert report.counts == {
            Outcome.GRANTED: people - 2,
            Outcome.ALREADY_GRANTED: 1,
            Outcome.KEPT_STOPPED: 1,
        }
        granted = db.session.scalar(
            select(func.count()).where(
                ConsentState.status == "granted",
                ConsentState.purpose_id == ledger.purpose_by_code(lib, "newsletter").id,
            )
        )
        assert granted == people - 1
        assert ledger.verify(db.session) == []


# -- the console ----------------------------------------------------------------------------


def upload(client, data, name="list.csv", purpose="newsletter", form="/admin/import", **extra):
    from .conftest import csrf_token

    return client.post(
        "/admin/import",
        data={"csrf_token": csrf_token(client, form), "purpose": purpose,
              "file": (io.BytesIO(data), name), **extra},
        content_type="multipart/form-data",
    )  # fmt: skip


def held_files(app):
    folder = Path(app.instance_path) / "held_uploads"
    return set(folder.iterdir()) if folder.exists() else set()


def test_console_upload_preview_then_confirm(app):
    from .test_admin import audit_actions, log_in

    client = log_in(app, "admin")
    data = (FIXTURES / "plain_bad_rows.csv").read_bytes()
    waiting = held_files(app)  # others' previews may wait in the same instance folder
    preview = upload(client, data, "oude lijst.csv")
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200, page
    assert "oude lijst.csv" in page
    assert (
        '<td data-label="Mensen">1</td>'
        '<td data-label="Wat er met ze gebeurt">krijgen toestemming, met de lijst als bewijs</td>'
    ) in page
    assert "7 regels worden geweigerd." in page
    assert "<td>3</td><td>geen geldig e-mailadres</td>" in page
    assert "<td>4</td><td>hetzelfde adres staat op een eerdere regel</td>" in page
    # The preview stores nothing but the encrypted file; no address in the page or the file.
    assert states(app) == {}
    assert "jan@example.nl" not in page
    (held,) = held_files(app) - waiting
    assert b"jan@example.nl" not in held.read_bytes()
    token = re.search(r'name="held" value="([^"]+)"', page).group(1)
    sha = re.search(r'name="sha256" value="([^"]+)"', page).group(1)
    assert sha == hashlib.sha256(data).hexdigest()
    confirm = {
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1),
        "held": token, "sha256": sha, "purpose": "newsletter",
    }  # fmt: skip
    done = client.post("/admin/import/confirm", data=confirm)
    assert done.status_code == 303
    assert states(app) == {"jan@example.nl": "granted"}
    assert suppressed(app, "olaf@example.nl") == "unsubscribed"
    assert not held.exists()  # gone once imported
    listing = client.get("/admin/import").get_data(as_text=True)
    assert "De lijst is ingelezen." in listing
    assert "oude lijst.csv" in listing
    assert "1 persoon: krijgen toestemming, met de lijst als bewijs" in listing
    assert "7 regels geweigerd" in listing
    assert audit_actions(app)[-2:] == ["import.preview", "import.run"]
    with app.app_context():
        event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.action == "granted"))
        assert event.actor.startswith("staff:")
        assert event.evidence.details["imported_by"] == event.actor
    # The same confirmation again finds no file: nothing happens twice.
    again = client.post("/admin/import/confirm", data=confirm)
    assert again.status_code == 400
    assert "Het bestand is er niet meer. Upload het opnieuw." in again.get_data(as_text=True)
    assert verified(app) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"name;city\r\nJan;Borne\r\n", "Er is geen kolom met e-mailadressen gevonden"),
        (b"email;kleur\r\na@example.nl;blauw\r\n", "kolommen die dit formaat niet kent: kleur"),
        (b"", "Het bestand is leeg."),
    ],
)
def test_console_refuses_a_bad_file_in_staff_words_and_stores_nothing(app, data, message):
    from .test_admin import log_in

    client = log_in(app, "admin")
    before, waiting = row_counts(app), held_files(app)
    response = upload(client, data)
    assert response.status_code == 400
    assert row_counts(app) == before
    page = response.get_data(as_text=True)
    assert "Er is niets ingelezen" in page
    assert message in page
    assert held_files(app) == waiting
    assert states(app) == {}


def test_console_refuses_a_file_over_the_size_limit(app_factory):
    from .test_admin import log_in

    app = app_factory(IMPORT_MAX_UPLOAD_BYTES=2000)
    client = log_in(app, "admin")
    waiting = held_files(app)
    rows = "".join(f"reader{i}@example.nl\n" for i in range(200)).encode()
    response = upload(client, b"email\n" + rows)
    assert response.status_code == 413
    assert held_files(app) == waiting
    assert states(app) == {}


def test_console_import_is_for_admins_only(app):
    from .test_admin import log_in

    client = log_in(app, "desk")
    assert client.get("/admin/import").status_code == 403
    assert upload(client, b"email\na@example.nl\n", form="/admin/account").status_code == 403
    assert states(app) == {}


def test_an_expired_upload_cannot_be_confirmed(app):
    from consentsvc.held_files import Holder

    folder = Path(app.instance_path) / "held_test"
    holder = Holder(folder, "a-secret-key-that-is-long-enough-012345", max_age=60)
    name = holder.hold(b"email\na@example.nl\n", {"library": 1})
    assert holder.take(name).data == b"email\na@example.nl\n"
    assert holder.take(name) is None  # taken once
    name = holder.hold(b"data", {})
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=5)):
        assert holder.take(name) is None
        assert list(folder.iterdir()) == []
    assert holder.take("../../etc/passwd") is None
