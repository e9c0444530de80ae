"""Retention: every category goes exactly when due and not a day earlier, a dry run changes
nothing, the settings page decides, and an erased address is nowhere afterwards."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import JSON, String, Text, func, select

from consentsvc import clients, ledger, retention, staff
from consentsvc.extensions import db
from consentsvc.models import (
    AuditEntry,
    ConsentDecision,
    ConsentEvent,
    DecisionRecipient,
    Evidence,
    Library,
    OutboxMessage,
    RetentionRun,
    StaffUser,
    Subject,
    Suppression,
    backdated,
)

from .test_admin import log_in, make_staff
from .test_console import SETTINGS
from .test_rights import post

START = datetime(2020, 3, 15, 10, 0, tzinfo=UTC)
KEY = "test-suppression-key"
WEB = ledger.Proof(
    ip_address="192.0.2.44", user_agent="Firefox/140", origin="https://www.bieb.example.nl/nb"
)


def months_after(moment, months):
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1)


def library(slug):
    return db.session.scalar(select(Library).where(Library.slug == slug))


def due(slug):
    counts = retention.due(db.session, library(slug))
    db.session.rollback()
    return counts


def run(slug):
    return retention.run_library(db.session, library(slug), suppression_key=KEY).counts


def subscriber(slug, email, *, proof=WEB, codes=("newsletter",), confirm=True):
    result = ledger.signup(
        db.session, library(slug), email, list(codes), language="nl",
        channel=ledger.Channel.WEB_FORM, proof=proof,
    )  # fmt: skip
    if confirm:
        ledger.confirm(db.session, result.subject, result.request_ids)
    return result.subject


def erased(subject_id):
    return db.session.get(Subject, subject_id).erased_at is not None


def goes_exactly_when_due(clock, slug, category, moment, *, expected=1):
    """Nothing a day before `moment`; then `expected` at it, and nothing left after."""
    clock.move_to(moment - timedelta(days=1))
    assert due(slug)[category] == 0
    assert run(slug)[category] == 0
    clock.move_to(moment)
    assert due(slug)[category] == expected
    assert run(slug)[category] == expected
    assert due(slug)[category] == 0
    assert run(slug)[category] == 0


def test_a_signup_never_confirmed_goes_after_30_days_and_leaves_no_suppression(app):
    with app.app_context(), time_machine.travel(START, tick=False) as clock:
        person = subscriber("zoetermeer", "nooit@example.nl", confirm=False)
        waiting = subscriber("zoetermeer", "bevestigd@example.nl")
        db.session.commit()
        person_id = person.id
        goes_exactly_when_due(clock, "zoetermeer", "pending_signup", START + timedelta(days=30))
        assert erased(person_id) and not erased(waiting.id)
        assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0
        [answer] = ledger.check_many(
            db.session, library("zoetermeer"), "newsletter", ["nooit@example.nl"],
            suppression_key=KEY,
        )  # fmt: skip
        assert (answer.allowed, answer.reason) == (False, "no_consent")
        # Signing up again simply starts anew.
        assert subscriber("zoetermeer", "nooit@example.nl", confirm=False).id != person_id


def test_contact_data_goes_6_months_after_the_later_of_membership_end_and_withdrawal(app):
    with app.app_context(), time_machine.travel(START, tick=False) as clock:
        person = subscriber("zoetermeer", "lid@example.nl")
        person.membership_started_on = date(2015, 1, 1)
        person.membership_ended_on = date(2020, 4, 30)
        ledger.withdraw(db.session, person, "newsletter", channel=ledger.Channel.EMAIL_LINK)
        still_member = subscriber("zoetermeer", "nog.lid@example.nl")
        still_member.membership_started_on = date(2015, 1, 1)
        ledger.withdraw(db.session, still_member, "newsletter", channel=ledger.Channel.EMAIL_LINK)
        db.session.commit()
        # The membership ran through 30 April: the clock starts on 1 May.
        goes_exactly_when_due(
            clock, "zoetermeer", "contact_after_membership", datetime(2020, 11, 1, tzinfo=UTC)
        )
        assert erased(person.id) and not erased(still_member.id)
        [answer] = ledger.check_many(
            db.session, library("zoetermeer"), "newsletter", ["lid@example.nl"],
            suppression_key=KEY,
        )  # fmt: skip
        assert (answer.allowed, answer.reason) == (False, "suppressed")


def test_direct_debit_proof_is_kept_7_years_after_the_mandate_ended_then_erased(app):
    with app.app_context(), time_machine.travel(START, tick=False) as clock:
        person = subscriber("zoetermeer", "betaalt@example.nl")
        ledger.grant(db.session, person, "direct_debit", channel=ledger.Channel.STAFF)
        db.session.commit()
        clock.move_to(START + timedelta(days=400))
        ended = START + timedelta(days=400)
        ledger.withdraw_all(db.session, person, channel=ledger.Channel.EMAIL_LINK)
        ledger.withdraw(db.session, person, "direct_debit", channel=ledger.Channel.STAFF)
        db.session.commit()
        # Contact data would have gone after 6 months; the payment duty keeps the person.
        clock.move_to(months_after(ended, 12))
        assert due("zoetermeer")["contact_after_membership"] == 0
        goes_exactly_when_due(clock, "zoetermeer", "payment", months_after(ended, 84))
        assert erased(person.id)
        events = ledger.history(db.session, db.session.get(Subject, person.id))
        assert {(e.action, e.actor, e.channel) for e in events if e.action == "erased"} == {
            ("erased", "retention", "retention")
        }


def test_7_years_without_activity_anonymise_and_a_mandate_that_runs_keeps(app):
    with app.app_context(), time_machine.travel(START, tick=False) as clock:
        quiet = subscriber("zoetermeer", "stil@example.nl")
        paying = subscriber("zoetermeer", "incasso@example.nl")
        ledger.grant(db.session, paying, "direct_debit", channel=ledger.Channel.STAFF)
        db.session.commit()
        restricted = subscriber("zoetermeer", "betwist@example.nl")
        ledger.restrict(db.session, restricted)
        db.session.commit()
        goes_exactly_when_due(clock, "zoetermeer", "inactive", months_after(START, 84))
        assert erased(quiet.id) and not erased(paying.id) and not erased(restricted.id)
        ledger.lift_restriction(db.session, restricted)
        db.session.commit()
        assert run("zoetermeer")["inactive"] == 1 and erased(restricted.id)


def test_borne_keeps_nothing_longer_than_5_years(app):
    with app.app_context(), time_machine.travel(START, tick=False) as clock:
        assert library("borne").retention["overall_maximum"] == 60
        person = subscriber("borne", "vijf@example.nl")
        other = subscriber("zoetermeer", "vijf@example.nl")
        db.session.commit()
        goes_exactly_when_due(clock, "borne", "overall_maximum", months_after(START, 60))
        assert erased(person.id)
        assert due("zoetermeer")["overall_maximum"] == 0 and not erased(other.id)


def test_evidence_details_go_after_12_months_and_the_event_keeps_its_text(app):
    with app.app_context(), time_machine.travel(START, tick=False) as clock:
        person = subscriber("zoetermeer", "bewijs@example.nl")
        db.session.commit()
        goes_exactly_when_due(clock, "zoetermeer", "evidence_details", months_after(START, 12))
        assert not erased(person.id)
        rows = db.session.scalars(select(Evidence).where(Evidence.subject_id == person.id)).all()
        assert rows and all(e.ip_address is e.user_agent is e.origin is None for e in rows)
        granted = [e for e in ledger.history(db.session, person) if e.action == "granted"]
        assert granted[0].consent_text_id is not None


def test_an_imported_confirmation_address_goes_with_the_evidence_details(app):
    with app.app_context(), time_machine.travel(START, tick=False) as clock:
        person = subscriber("zoetermeer", "lijst@example.nl")
        ledger.grant(
            db.session, person, "acquisitions", channel=ledger.Channel.IMPORT,
            proof=ledger.Proof(
                ip_address="192.0.2.7",
                details={"source_file": "leden.csv", "line": 4, "confirm_ip": "192.0.2.8"},
            ),
        )  # fmt: skip
        db.session.commit()
        goes_exactly_when_due(
            clock, "zoetermeer", "evidence_details", months_after(START, 12), expected=2
        )
        details = db.session.scalars(
            select(Evidence.details).where(Evidence.subject_id == person.id)
        ).all()
        assert {"source_file": "leden.csv", "line": 4} in details
        assert not any("192.0.2." in str(d) for d in details)


def test_desk_notes_go_after_a_day_from_evidence_and_the_audit_trail(app):
    email = make_staff(app, "desk", "zoetermeer")
    with app.app_context(), time_machine.travel(START, tick=False) as clock:
        person = subscriber("zoetermeer", "balie@example.nl")
        ledger.grant(
            db.session, person, "acquisitions", channel=ledger.Channel.STAFF,
            proof=ledger.Proof(details={"how": "desk", "note": "belde over haar pas"}),
        )  # fmt: skip
        desk = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
        staff.audit(
            db.session, desk, "consent.granted", subject=person, reason="belde over haar pas"
        )
        staff.audit(db.session, desk, "withdrawal", subject=person, reason="wil geen aanbiedingen")
        # How a rights request was checked is proof, not a desk note: it stays.
        staff.audit(db.session, desk, "export", subject=person, reason="pas en paspoort gezien")
        db.session.commit()
        goes_exactly_when_due(
            clock, "zoetermeer", "desk_notes", START + timedelta(days=1), expected=3
        )
        details = db.session.scalars(select(Evidence.details)).all()
        assert {"how": "desk"} in details and not any("note" in d for d in details)
        entries = db.session.scalars(
            select(AuditEntry).where(AuditEntry.subject_id == person.id).order_by(AuditEntry.id)
        ).all()
        assert [(e.action, e.reason) for e in entries] == [
            ("consent.granted", None),
            ("withdrawal", None),
            ("export", "pas en paspoort gezien"),
        ]


def test_check_decisions_and_audit_entries_go_after_2_years(app):
    email = make_staff(app, "desk", "zoetermeer")
    with app.app_context(), time_machine.travel(START, tick=False) as clock:
        lib = library("zoetermeer")
        person = subscriber("zoetermeer", "gecontroleerd@example.nl")
        client, _key = clients.create(db.session, lib, "Laposta", ["newsletter"])
        answers = ledger.check_many(
            db.session, lib, "newsletter", [person.email], suppression_key=KEY
        )
        ledger.record_decision(
            db.session, lib.id, ledger.purpose_by_code(lib, "newsletter").id, answers,
            client_id=client.id,
        )  # fmt: skip
        desk = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
        staff.audit(db.session, desk, "view", subject=person)
        db.session.commit()
        before = db.session.scalar(select(func.count()).select_from(AuditEntry))
        goes_exactly_when_due(clock, "zoetermeer", "check_decisions", months_after(START, 24))
        assert db.session.scalar(select(func.count()).select_from(ConsentDecision)) == 0
        assert db.session.scalar(select(func.count()).select_from(DecisionRecipient)) == 0
        # The audit entry went in the same run (the same period).
        left = select(func.count()).where(AuditEntry.subject_id == person.id)
        assert before >= 1 and db.session.scalar(left) == 0


def test_delivered_and_given_up_outbox_messages_go_after_30_days(app):
    with app.app_context(), time_machine.travel(START, tick=False) as clock:
        lib = library("zoetermeer")
        person = subscriber("zoetermeer", "post@example.nl")
        sent, gave_up, waiting = [ledger_mail(lib, person) for _ in range(3)]
        db.session.flush()
        sent.delivered_at = START
        gave_up.dead_at = START
        db.session.commit()
        waiting_id = waiting.id
        goes_exactly_when_due(clock, "zoetermeer", "outbox", START + timedelta(days=30), expected=2)
        assert db.session.scalars(select(OutboxMessage.id)).all() == [waiting_id]


def ledger_mail(lib, person):
    from consentsvc import outbox

    return outbox.enqueue_mail(db.session, lib.id, "receipt", person.id)


def snapshot():
    """Every row of every table, as plain values."""
    return {
        table.name: sorted(map(repr, db.session.execute(select(table)).all()))
        for table in db.metadata.sorted_tables
    }


def test_the_dry_run_prints_what_is_due_and_changes_nothing(app, runner):
    with app.app_context():
        with backdated(timedelta(days=40)):
            subscriber("zoetermeer", "oud@example.nl", confirm=False)
            subscriber("zoetermeer", "ook.oud@example.nl", confirm=False)
        with backdated(timedelta(days=400)):
            subscriber("zoetermeer", "bewaard@example.nl")
        db.session.commit()
        before = snapshot()
        db.session.rollback()
    result = runner.invoke(args=["retention", "run", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    zoetermeer = lines[lines.index("zoetermeer: due now (dry run, nothing changed)") :]
    assert any(line.split()[:2] == ["pending_signup", "2"] for line in zoetermeer)
    assert any(line.split()[:2] == ["evidence_details", "1"] for line in zoetermeer)
    with app.app_context():
        assert snapshot() == before
    done = runner.invoke(args=["retention", "run", "--library", "zoetermeer"])
    assert "zoetermeer: pending_signup 2, evidence_details 1" in done.output
    again = runner.invoke(args=["retention", "run", "--library", "zoetermeer"])
    assert "zoetermeer: nothing was due" in again.output
    with app.app_context():
        runs = db.session.scalars(select(RetentionRun).order_by(RetentionRun.id)).all()
        assert [r.counts["pending_signup"] for r in runs] == [2, 0]
        assert all(r.finished_at is not None and r.scheduled_for is None for r in runs)
    unknown = runner.invoke(args=["retention", "run", "--library", "nergens"])
    assert unknown.exit_code != 0 and "no library 'nergens'" in unknown.output


def test_settings_changed_on_the_library_page_change_the_next_run(app):
    with app.app_context():
        with backdated(timedelta(days=4 * 31)):
            person = subscriber("borne", "vier.maanden@example.nl")
            ledger.withdraw(db.session, person, "newsletter", channel=ledger.Channel.EMAIL_LINK)
        db.session.commit()
        person_id = person.id
        assert run("borne")["contact_after_membership"] == 0 and not erased(person_id)
    admin = log_in(app, "admin")
    page = admin.get("/admin/library").get_data(as_text=True)
    assert "Aanmeldingen die nooit bevestigd zijn, in dagen" in page
    assert 'id="retention_overall_maximum" name="retention_overall_maximum" value="60"' in page
    saved = post(admin, "/admin/library", **{**SETTINGS, "retention_contact_after_membership": "3"})
    assert saved.status_code == 303
    with app.app_context():
        assert due("borne")["contact_after_membership"] == 1
        assert run("borne")["contact_after_membership"] == 1 and erased(person_id)


def test_after_a_retention_erasure_the_address_is_nowhere_and_the_ledger_remains(app):
    with app.app_context():
        with backdated(timedelta(days=300)):
            person = subscriber(
                "borne", "jan.de.vries@example.nl", codes=("newsletter", "acquisitions")
            )
            person.card_number = "2100012345678"
            ledger.grant(
                db.session, person, "direct_marketing", channel=ledger.Channel.STAFF,
                proof=ledger.Proof(details={"note": "jan.de.vries@example.nl belde"}),
            )  # fmt: skip
            ledger.withdraw_all(db.session, person, channel=ledger.Channel.PREFERENCE_CENTRE)
        db.session.commit()
        person_id = person.id
        events_before = db.session.scalars(
            select(ConsentEvent.id)
            .where(ConsentEvent.subject_id == person_id)
            .order_by(ConsentEvent.id)
        ).all()
        assert run("borne")["contact_after_membership"] == 1
        for table in db.metadata.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, String | Text | JSON):
                    continue
                found = db.session.execute(
                    select(column).where(
                        column.cast(Text).like("%jan.de.vries%")
                        | column.cast(Text).like("%2100012345678%")
                        | column.cast(Text).like("%192.0.2.44%")
                        | column.cast(Text).like("%Firefox%")
                    )
                ).first()
                assert found is None, f"{table.name}.{column.name}"
        subject = db.session.get(Subject, person_id)
        events = list(reversed(ledger.history(db.session, subject)))
        assert [e.id for e in events[: len(events_before)]] == events_before
        assert [e.action for e in events[len(events_before) :]] == ["erased"] * 3
        assert ledger.verify(db.session) == []
        answers = ledger.check_many(
            db.session, library("borne"), "newsletter",
            ["jan.de.vries@example.nl"], suppression_key=KEY,
        )  # fmt: skip
        assert [(a.allowed, a.reason) for a in answers] == [(False, "suppressed")]


def cells(page: str, category: str) -> list[str]:
    """The period, last run's count and count due now in one row of the retention table."""
    row = page[page.index(f'id="category-{category}"') :].split("</tr>")[0]
    return re.findall(r"<td[^>]*>(.*?)</td>", row)


def test_the_console_shows_the_last_run_and_what_is_due(app):
    with app.app_context():
        with backdated(timedelta(days=31)):
            subscriber("borne", "wacht@example.nl", confirm=False)
        db.session.commit()
    officer = log_in(app, "privacy_officer")
    page = officer.get("/admin/retention").get_data(as_text=True)
    assert "De bewaartermijnen zijn voor deze bibliotheek nog niet toegepast." in page
    assert cells(page, "pending_signup") == ["30 dagen", "–", "1"]
    assert cells(page, "desk_notes")[0] == "1 dag"
    with app.app_context():
        run("borne")
    page = officer.get("/admin/retention").get_data(as_text=True)
    assert "Klaar op" in page
    assert cells(page, "pending_signup") == ["30 dagen", "1", "0"]
    english = officer.get("/admin/retention?lang=en").get_data(as_text=True)
    assert "Sign-ups never confirmed" in english and "60 months" in english
    desk = log_in(app, "desk")
    assert desk.get("/admin/retention").status_code == 403


@pytest.mark.parametrize("value", ["3:30", "25:00", "morgen", ""])
def test_a_wrong_retention_time_is_refused_at_start(app_factory, value):
    with pytest.raises(ValueError, match="CONSENTSVC_RETENTION_TIME"):
        app_factory(RETENTION_TIME=value)


def test_the_docs_give_the_defaults_the_code_uses():
    from pathlib import Path

    from consentsvc.libraries import DEFAULT_RETENTION, RETENTION_UNITS

    text = (Path(__file__).resolve().parent.parent / "docs" / "retention.md").read_text()
    rows = dict(
        (name, (default, unit))
        for name, default, unit in re.findall(r"^\| `(\w+)` \| (\d+)[^|]* \| (\w+) \|", text, re.M)
    )
    assert rows == {c: (str(DEFAULT_RETENTION[c]), RETENTION_UNITS[c]) for c in DEFAULT_RETENTION}
