"""Direct-debit mandates: the IBAN checked, encrypted and only ever shown masked; four eyes
before anything is granted; the member's online confirmation; ending is an event and a
webhook; no unsubscribe link ends one; retention wipes and erases after 84 months."""

import json
import logging
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import time_machine
from sqlalchemy import String, Text, func, select

from consentsvc import iban, ledger, outbox, retention, staff, tokens
from consentsvc.cli import deliver_once
from consentsvc.extensions import db, mail
from consentsvc.models import (
    AuditEntry,
    ConsentEvent,
    Library,
    OutboxMessage,
    SepaMandate,
    StaffUser,
    Subject,
)

from .conftest import link_in
from .test_admin import log_in, person
from .test_api import make_key
from .test_console import SETTINGS
from .test_outbox import Receiver
from .test_rights import post
from .test_security import served  # noqa: F401 - the app behind a real server

IBAN = "NL91ABNA0417164300"
SPACED = "NL91 ABNA 0417 1643 00"
# Every spelling of the full account number that must never appear anywhere.
NEEDLES = (IBAN, SPACED, IBAN.lower(), SPACED.lower(), "0417164300", "ABNA 0417 1643")
MASKED = "…4300"
CREDITOR = "NL28ZZZ401234560000"
START = datetime(2020, 3, 15, 10, 0, tzinfo=UTC)


def form(**changes):
    return {
        "reference": "BORNE-2026-0001",
        "creditor_id": CREDITOR,
        "iban": SPACED,
        "holder": "J. de Vries",
        "signed_on": date.today().isoformat(),
        "signed_place": "Borne",
        "signed_how": "paper",
        **changes,
    }


def record(client, subject_id, query="", **changes):
    return post(client, f"/admin/subjects/{subject_id}/mandates{query}", **form(**changes))


def mandates(app):
    with app.app_context():
        rows = db.session.scalars(select(SepaMandate).order_by(SepaMandate.id)).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def debit_status(app, subject_id):
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        purpose = ledger.purpose_by_code(subject.library, "direct_debit")
        return ledger.status_of(db.session, subject, purpose)


def audit(app):
    with app.app_context():
        entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        return [(e.action, e.staff_id, e.detail or "", e.reason or "") for e in entries]


def staff_id(app, email):
    with app.app_context():
        return db.session.scalar(select(StaffUser.id).where(StaffUser.email == email))


def webhooks(app, event_type=None):
    with app.app_context():
        query = select(OutboxMessage).where(OutboxMessage.channel == "webhook")
        if event_type:
            query = query.where(OutboxMessage.event_type == event_type)
        return [m.payload for m in db.session.scalars(query.order_by(OutboxMessage.id))]


def add_endpoint(app, events=("mandate.approved", "mandate.ended", "consent.withdrawn")):
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        outbox.add_endpoint(
            db.session, library.id, "http://127.0.0.1:9/pay", list(events),
            allow_http=True, allowed_networks=["127.0.0.0/8"],
        )  # fmt: skip
        db.session.commit()


def approved_mandate(app, subject_id=None, **changes):
    """A paper mandate recorded at the desk and approved by an admin; the two clients."""
    desk, admin = log_in(app, "desk"), log_in(app, "admin")
    subject_id = subject_id or person(app)
    assert record(desk, subject_id, **changes).status_code == 303
    [mandate] = [m for m in mandates(app) if m.subject_id == subject_id]
    assert post(admin, f"/admin/mandates/{mandate.id}/approve").status_code == 303
    return subject_id, mandate.id, desk, admin


# -- the IBAN and the creditor identifier --------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "nl", "en"),
    [
        ("NL92ABNA0417164300", "controlecijfers van dit IBAN", "check digits of this IBAN"),
        ("NL91ABNA041716430", "te kort of te lang", "too short or too long"),
        ("XX91ABNA0417164300", "landcode", "known country code"),
        ("NL91ABNA04171643!0", "alleen letters en cijfers", "only letters and digits"),
        ("BR1800360305000010009795493C1", "buiten de SEPA", "outside the SEPA area"),
        ("", "Vul het IBAN in", "Give the IBAN"),
    ],
)
def test_a_wrong_iban_is_refused_clearly_in_dutch_and_english_and_changes_nothing(
    app, typed, nl, en
):
    desk = log_in(app, "desk")
    subject_id = person(app)
    for query, expected in (("", nl), ("?lang=en", en)):
        response = record(desk, subject_id, query, iban=typed)
        page = response.get_data(as_text=True)
        assert response.status_code == 400
        assert expected in page, page
        assert 'href="#mandate_iban"' in page and 'aria-invalid="true"' in page
        # What was typed stays in the other fields; the account number is never put back.
        assert 'value="BORNE-2026-0001"' in page and 'value="J. de Vries"' in page
        if typed:
            assert typed not in page
    assert mandates(app) == []
    assert [a for a in audit(app) if a[0].startswith("mandate")] == []
    assert debit_status(app, subject_id) is None


def test_iban_checks_in_the_module():
    assert iban.check_iban(" nl91 abna 0417 1643 00 ") == IBAN
    assert iban.check_iban("DE89 3704 0044 0532 0130 00") == "DE89370400440532013000"
    for typed, code in [
        ("NL91ABNA0417164301", "check_digits"),
        ("NL91ABNA04171643", "length"),
        ("QQ91ABNA0417164300", "country"),
        ("NL91ABNA0417164300" + "0" * 20, "length"),
        ("NL91-ABNA-0417", "characters"),
        ("", "required"),
    ]:
        with pytest.raises(iban.AccountError) as refused:
            iban.check_iban(typed)
        assert refused.value.code == code, typed
        # The error never carries what was typed (it may reach a log).
        assert not typed or typed not in str(refused.value)
    assert iban.mask("4300") == MASKED


@pytest.mark.parametrize(
    "typed",
    ["NL57ZZZ999999999999", "nl57 zzz 9999 9999 9999", "DE98ZZZ09999999999",
     "BE69ZZZ050D000000008", CREDITOR],
)  # fmt: skip
def test_valid_creditor_identifiers(typed):
    assert iban.check_creditor_id(typed) == "".join(typed.split()).upper()


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        # The format as often printed is a pattern: its check digits do not add up.
        ("NL98ZZZ999999999999", "check_digits"),
        ("NL28ZZZ401234560001", "check_digits"),
        ("NL57ZZZ99999999999", "format"),  # 11 digits: a Dutch one has 12
        ("NL57ZZZ9999999999A9", "format"),
        ("NL57", "format"),
        ("5757ZZZ999999999999", "format"),
        ("DE98ZZZ" + "0" * 29, "format"),  # longer than 35
        ("", "required"),
    ],
)
def test_wrong_creditor_identifiers(typed, code):
    with pytest.raises(iban.AccountError) as refused:
        iban.check_creditor_id(typed)
    assert refused.value.code == code


def test_a_wrong_creditor_id_and_reference_are_named_on_the_form(app):
    desk = log_in(app, "desk")
    subject_id = person(app)
    page = record(
        desk, subject_id, creditor_id="NL98ZZZ999999999999", reference="MET SPATIE",
        signed_on="2999-01-01", holder="",
    ).get_data(as_text=True)  # fmt: skip
    assert "controlecijfers van dit incassant-ID" in page
    assert "zonder spaties" in page
    assert "toekomst" in page
    assert "rekeninghouder" in page
    assert mandates(app) == []


def test_a_restricted_person_gets_no_mandate(app):
    desk = log_in(app, "desk")
    subject_id = person(app)
    with app.app_context():
        ledger.restrict(db.session, db.session.get(Subject, subject_id))
        db.session.commit()
    refused = record(desk, subject_id)
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert 'href="#mandates-error"' in page and 'id="mandates-error"' in page
    assert "beperkt" in page
    assert mandates(app) == []


def test_a_reference_is_unique_per_library(app):
    desk = log_in(app, "desk")
    jan, piet = person(app), person(app, "piet@example.nl")
    assert record(desk, jan).status_code == 303
    page = record(desk, piet).get_data(as_text=True)
    assert "al in gebruik" in page
    assert len(mandates(app)) == 1
    other = log_in(app, "desk", library="zoetermeer")
    elsewhere = person(app, "jan@example.nl", library="zoetermeer")
    assert record(other, elsewhere, creditor_id="NL69ZZZ123456780000").status_code == 303


def test_the_desk_cannot_switch_direct_debit_on_without_a_mandate(app):
    desk = log_in(app, "desk")
    subject_id = person(app)
    page = desk.get(f"/admin/subjects/{subject_id}").get_data(as_text=True)
    assert "Automatische incasso —" not in page  # not among the consents to record
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        text_id = ledger.current_text(ledger.purpose_by_code(library, "direct_debit"), "nl").id
    refused = post(
        desk, f"/admin/subjects/{subject_id}/consent", text=text_id, how="desk", note="getekend"
    )
    assert refused.status_code == 400
    assert "machtiging" in refused.get_data(as_text=True)
    assert debit_status(app, subject_id) is None


# -- four eyes ---------------------------------------------------------------------------------


def test_a_recorded_mandate_grants_nothing_and_its_recorder_cannot_approve_it(app):
    desk = log_in(app, "desk")
    subject_id = person(app)
    assert record(desk, subject_id).status_code == 303
    [mandate] = mandates(app)
    assert mandate.status == "awaiting_approval"
    assert debit_status(app, subject_id) is None
    page = desk.get("/admin/mandates").get_data(as_text=True)
    assert "BORNE-2026-0001" in page and MASKED in page
    assert "Je hebt dit machtiging zelf vastgelegd" in page or "zelf vastgelegd" in page
    assert f"/admin/mandates/{mandate.id}/approve" not in page
    refused = post(desk, f"/admin/mandates/{mandate.id}/approve")
    assert refused.status_code == 403 and "zelf vastgelegd" in refused.get_data(as_text=True)
    refused = post(desk, f"/admin/mandates/{mandate.id}/reject", reason="typefout")
    assert refused.status_code == 403
    assert mandates(app)[0].status == "awaiting_approval"
    assert debit_status(app, subject_id) is None
    # A colleague approves: direct debit is on, by the approver's hand.
    admin = log_in(app, "admin")
    assert post(admin, f"/admin/mandates/{mandate.id}/approve").status_code == 303
    assert debit_status(app, subject_id) == "granted"
    [after] = mandates(app)
    admin_id = staff_id(app, "admin.borne@bibliotheek.example")
    assert after.status == "active" and after.approved_by == admin_id
    with app.app_context():
        [grant] = db.session.scalars(
            select(ConsentEvent).where(ConsentEvent.action == "granted")
        ).all()
        assert (grant.channel, grant.actor, grant.id) == ("staff", f"staff:{admin_id}",
                                                          after.grant_event_id)  # fmt: skip
        assert grant.evidence.details["mandate"] == "BORNE-2026-0001"
    actions = [a[:2] for a in audit(app) if a[0].startswith("mandate")]
    desk_id = staff_id(app, "desk.borne@bibliotheek.example")
    assert actions == [("mandate.record", desk_id), ("mandate.approve", admin_id)]


def test_where_the_privacy_officer_approves_no_other_colleague_can(app):
    admin = log_in(app, "admin")
    saved = post(admin, "/admin/library", **SETTINGS, mandate_approval="privacy_officer")
    assert saved.status_code == 303
    page = admin.get("/admin/library").get_data(as_text=True)
    assert 'value="privacy_officer" checked' in page
    refused = post(admin, "/admin/library", **SETTINGS, mandate_approval="anyone")
    assert refused.status_code == 400
    desk = log_in(app, "desk")
    subject_id = person(app)
    assert record(desk, subject_id).status_code == 303
    [mandate] = mandates(app)
    answer = post(admin, f"/admin/mandates/{mandate.id}/approve")
    assert answer.status_code == 403
    # The settings made the library's language English, so the console speaks English.
    assert "only the privacy officer approves mandates" in answer.get_data(as_text=True)
    assert debit_status(app, subject_id) is None
    officer = log_in(app, "privacy_officer")
    assert post(officer, f"/admin/mandates/{mandate.id}/approve").status_code == 303
    assert debit_status(app, subject_id) == "granted"


def test_the_default_is_a_second_staff_member(app):
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        assert library.mandate_approval == "second_staff"


def test_a_rejected_mandate_leaves_no_grant(app):
    add_endpoint(app)
    desk, admin = log_in(app, "desk"), log_in(app, "admin")
    subject_id = person(app)
    record(desk, subject_id)
    [mandate] = mandates(app)
    without_reason = post(admin, f"/admin/mandates/{mandate.id}/reject", reason="  ")
    assert without_reason.status_code == 400
    assert "Schrijf op waarom" in without_reason.get_data(as_text=True)
    assert mandates(app)[0].status == "awaiting_approval"
    assert (
        post(
            admin, f"/admin/mandates/{mandate.id}/reject", reason="handtekening ontbreekt"
        ).status_code
        == 303
    )
    [rejected] = mandates(app)
    assert rejected.status == "rejected" and rejected.rejection_reason == "handtekening ontbreekt"
    assert debit_status(app, subject_id) is None
    assert post(admin, f"/admin/mandates/{mandate.id}/approve").status_code == 403
    assert debit_status(app, subject_id) is None
    assert webhooks(app, "mandate.approved") == []
    page = admin.get(f"/admin/subjects/{subject_id}").get_data(as_text=True)
    assert "Afgewezen" in page and "handtekening ontbreekt" in page


# -- signed online: the member confirms --------------------------------------------------------


def test_an_online_mandate_is_granted_only_after_the_member_confirms(app, outbox):
    add_endpoint(app)
    desk, admin = log_in(app, "desk"), log_in(app, "admin")
    subject_id = person(app)
    record(desk, subject_id, signed_how="online")
    [mandate] = mandates(app)
    assert len(outbox) == 0  # nothing is mailed before the approval
    post(admin, f"/admin/mandates/{mandate.id}/approve")
    assert mandates(app)[0].status == "awaiting_member"
    assert debit_status(app, subject_id) is None
    [mail] = outbox
    assert mail.recipients == ["jan@example.nl"]
    assert "incasso" in mail.subject.lower()
    assert MASKED in mail.body and "BORNE-2026-0001" in mail.body
    assert not any(needle in mail.body or needle in mail.html for needle in NEEDLES)
    link = link_in(mail, "mandate")
    client = app.test_client()
    shown = client.get(link)
    assert shown.status_code == 200 and MASKED in shown.get_data(as_text=True)
    assert debit_status(app, subject_id) is None  # GET changes nothing
    confirmed = client.post(link)
    assert "staat aan" in confirmed.get_data(as_text=True)
    assert debit_status(app, subject_id) == "granted"
    [active] = mandates(app)
    assert active.status == "active" and active.member_confirmed_at is not None
    with app.app_context():
        grant = db.session.get(ConsentEvent, active.grant_event_id)
        assert grant.channel == "email_link" and grant.actor is None
    again = client.post(link)
    assert "al bevestigd" in again.get_data(as_text=True)
    with app.app_context():
        grants = db.session.scalar(
            select(func.count()).where(
                ConsentEvent.action == "granted", ConsentEvent.subject_id == subject_id
            )
        )
        assert grants == 1
    [approved] = webhooks(app, "mandate.approved")
    assert approved["data"]["iban"] == MASKED
    # Another person's link, or one of another kind, confirms nothing.
    with app.test_request_context():
        wrong = tokens.make_mandate(subject_id + 1, active.id)
        preferences = tokens.make_preferences(subject_id)
    assert client.get(f"/mandate/{wrong}").status_code == 400
    assert client.get(f"/mandate/{preferences}").status_code == 400


def test_an_expired_confirmation_link_confirms_nothing(app, outbox):
    desk, admin = log_in(app, "desk"), log_in(app, "admin")
    subject_id = person(app)
    record(desk, subject_id, signed_how="online")
    [mandate] = mandates(app)
    post(admin, f"/admin/mandates/{mandate.id}/approve")
    link = link_in(outbox[0], "mandate")
    later = datetime.now(UTC) + timedelta(seconds=app.config["CONFIRM_MAX_AGE"] + 60)
    with time_machine.travel(later, tick=False):
        answer = app.test_client().post(link)
    assert answer.status_code == 410
    assert debit_status(app, subject_id) is None


# -- ending ------------------------------------------------------------------------------------


def test_ending_at_the_desk_is_a_withdrawal_and_a_masked_webhook(app):
    add_endpoint(app)
    subject_id, mandate_id, desk, _admin = approved_mandate(app)
    asked = desk.get(f"/admin/mandates/{mandate_id}/end")
    assert asked.status_code == 200 and MASKED in asked.get_data(as_text=True)
    assert debit_status(app, subject_id) == "granted"  # GET asks, nothing more
    assert post(desk, f"/admin/mandates/{mandate_id}/end").status_code == 303
    assert debit_status(app, subject_id) == "withdrawn"
    [ended] = mandates(app)
    assert ended.status == "ended" and ended.ended_by.startswith("staff:")
    with app.app_context():
        event = db.session.get(ConsentEvent, ended.end_event_id)
        assert (event.action, event.channel) == ("withdrawn", "staff")
    [payload] = webhooks(app, "mandate.ended")
    data = payload["data"]
    assert data["iban"] == MASKED
    assert data["mandate_reference"] == "BORNE-2026-0001" and data["creditor_id"] == CREDITOR
    assert data["ended_on"] == ledger.local_today(ended.ended_at).isoformat()  # a Dutch date
    for message in webhooks(app):
        assert not any(needle in json.dumps(message) for needle in NEEDLES)
    # Ending twice does nothing; the page for it is gone.
    assert desk.get(f"/admin/mandates/{mandate_id}/end").status_code == 404
    assert len(webhooks(app, "mandate.ended")) == 1


def test_the_member_sees_the_mandate_masked_and_ends_it_after_a_confirmation_page(app):
    add_endpoint(app)
    subject_id, mandate_id, _desk, _admin = approved_mandate(app)
    with app.test_request_context():
        token = tokens.make_preferences(subject_id)
    client = app.test_client()
    page = client.get(f"/preferences/{token}").get_data(as_text=True)
    assert MASKED in page and "BORNE-2026-0001" in page
    assert "aan de balie" in page
    # No switch that stops it in one click: a link to a page that asks first.
    assert 'id="toggle-direct_debit"' not in page
    end_url = f"/preferences/{token}/mandates/{mandate_id}/end"
    assert end_url in page
    asked = client.get(end_url)
    assert "Ja, stop mijn automatische incasso" in asked.get_data(as_text=True)
    assert debit_status(app, subject_id) == "granted"
    done = client.post(end_url)
    assert "gestopt" in done.get_data(as_text=True)
    assert debit_status(app, subject_id) == "withdrawn"
    assert mandates(app)[0].ended_by == "member"
    assert len(webhooks(app, "mandate.ended")) == 1
    # Another mandate than the member's own cannot be ended with this link.
    assert client.post(f"/preferences/{token}/mandates/{mandate_id + 99}/end").status_code == 400


def test_one_click_stop_all_and_the_switch_never_end_a_mandate(app):
    subject_id, _mandate_id, desk, _admin = approved_mandate(app)
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        ledger.grant(db.session, subject, "newsletter", channel="staff")
        db.session.commit()
        debit = ledger.purpose_by_code(subject.library, "direct_debit").id
        newsletter = ledger.purpose_by_code(subject.library, "newsletter").id
    with app.test_request_context():
        one_click = {p: tokens.make_unsubscribe(subject_id, p) for p in (debit, newsletter)}
        centre = tokens.make_preferences(subject_id)
    client = app.test_client()
    client.post(f"/unsubscribe/{one_click[debit]}", data={"List-Unsubscribe": "One-Click"})
    client.post(f"/unsubscribe/{one_click[newsletter]}", data={"List-Unsubscribe": "One-Click"})
    client.post(f"/preferences/{centre}/stop-all")
    switched = client.post(
        f"/preferences/{centre}", data={"purpose": "direct_debit", "choice": "off"}
    )
    assert switched.status_code == 400
    assert "Stop deze automatische incasso" in switched.get_data(as_text=True)  # the way that works
    stopped = post(desk, f"/admin/subjects/{subject_id}/stop", purpose="direct_debit", note="x")
    assert stopped.status_code == 400
    assert "Beëindig die met “Machtiging beëindigen”" in stopped.get_data(as_text=True)
    objected = post(
        desk, f"/admin/subjects/{subject_id}/stop", purpose="direct_debit", note="x",
        objection="yes",
    )  # fmt: skip
    assert objected.status_code == 400
    assert debit_status(app, subject_id) == "granted"
    assert mandates(app)[0].status == "active"
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        with pytest.raises(ledger.MandateRunning):
            ledger.withdraw(db.session, subject, "direct_debit", channel="staff")
        db.session.rollback()
        with pytest.raises(ledger.MandateRunning):
            ledger.object_to(db.session, subject, "direct_debit", channel="staff")
        db.session.rollback()
        assert ledger.withdraw_all(db.session, subject, channel="one_click") == []
    assert webhooks(app, "mandate.ended") == []


# -- retention -----------------------------------------------------------------------------------


def months_after(moment, months):
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1)


def test_retention_wipes_an_ended_mandate_after_84_months_and_erases_with_the_person(app):
    vault = iban.Vault(app.config["IBAN_KEY"])
    with app.app_context(), time_machine.travel(START, tick=False) as clock:
        library = db.session.scalar(select(Library).where(Library.slug == "zoetermeer"))
        desk = staff.create(db.session, library, "d@example.nl", "D", "desk", "x" * 12)
        officer = staff.create(
            db.session, library, "f@example.nl", "F", "privacy_officer", "x" * 12
        )
        stays = ledger.subject_for(db.session, library, "blijft@example.nl", "nl")
        stays.membership_started_on = date(2015, 1, 1)  # still a member: the person stays
        goes = ledger.subject_for(db.session, library, "gaat@example.nl", "nl")
        made = []
        for number, subject in enumerate((stays, goes)):
            given = ledger.MandateInput(
                reference=f"Z-{number}", creditor_id="NL69ZZZ123456780000", iban=SPACED,
                holder="J. Jansen", signed_on="2020-03-01", signed_place="Zoetermeer",
                signed_how="paper",
            )  # fmt: skip
            mandate = ledger.record_mandate(db.session, subject, given, staff=desk, vault=vault)
            ledger.approve_mandate(db.session, mandate, staff=officer)
            made.append(mandate.id)
        db.session.commit()
        assert vault.decrypt(db.session.get(SepaMandate, made[0]).iban_ciphertext) == IBAN
        clock.move_to(START + timedelta(days=400))
        for mandate_id in made:
            mandate = db.session.get(SepaMandate, mandate_id)
            ledger.end_mandate(db.session, mandate, actor="staff:1", channel="staff")
        db.session.commit()
        ended = START + timedelta(days=400)
        clock.move_to(months_after(ended, 84) - timedelta(days=1))
        counts = retention.run_library(db.session, library, suppression_key="k").counts
        assert counts["payment"] == 0
        kept = db.session.get(SepaMandate, made[0])
        assert kept.iban_ciphertext and kept.holder_name and kept.wiped_at is None
        clock.move_to(months_after(ended, 84) + timedelta(hours=1))
        library = db.session.scalar(select(Library).where(Library.slug == "zoetermeer"))
        assert retention.due(db.session, library)["payment"] == 3  # two wipes, one person
        db.session.rollback()
        counts = retention.run_library(db.session, library, suppression_key="k").counts
        assert counts["payment"] == 3
        wiped = db.session.get(SepaMandate, made[0])
        assert wiped.iban_ciphertext is None and wiped.iban_last4 is None
        assert wiped.holder_name is None and wiped.wiped_at is not None
        assert wiped.reference == "Z-0"  # that there was a mandate stays on record
        assert db.session.get(Subject, stays.id).erased_at is None
        assert db.session.get(Subject, goes.id).erased_at is not None
        assert db.session.get(SepaMandate, made[1]) is None
        again = retention.run_library(db.session, library, suppression_key="k").counts
        assert again["payment"] == 0


def test_a_running_mandate_is_never_wiped(app):
    subject_id, mandate_id, _desk, _admin = approved_mandate(app)
    with app.app_context(), time_machine.travel(datetime.now(UTC) + timedelta(days=365 * 9)):
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        retention.run_library(db.session, library, suppression_key="k")
        kept = db.session.get(SepaMandate, mandate_id)
        assert kept.iban_ciphertext is not None
        assert db.session.get(Subject, subject_id).erased_at is None


# -- the full IBAN is nowhere ----------------------------------------------------------------------


def text_columns(app):
    """Every text and JSON value in the database but the IBAN's ciphertext."""
    with app.app_context():
        values = []
        for table in db.metadata.sorted_tables:
            columns = [
                c for c in table.columns
                if c.name != "iban_ciphertext"
                and (isinstance(c.type, String | Text) or c.type.__class__.__name__ == "JSON")
            ]  # fmt: skip
            if columns:
                for row in db.session.execute(select(*columns)):
                    values.extend(json.dumps(v, ensure_ascii=False) for v in row)
        return values


def test_the_full_iban_appears_in_no_page_answer_export_webhook_mail_audit_or_log(served, caplog):  # noqa: F811
    """A full run: record (once refused), approve, confirm online, every page, both exports,
    the API, webhooks delivered to a real receiver, the audit log, every text column and
    every log line at DEBUG (the real server's access lines included)."""
    app, base = served
    caplog.set_level(logging.DEBUG)
    receiver = Receiver()
    receiver.secret = register_receiver(app, receiver.url)
    seen = []
    try:
        with mail.record_messages() as mails, httpx.Client(base_url=base) as web:
            desk, admin = log_in(app, "desk"), log_in(app, "admin")
            officer = log_in(app, "privacy_officer")
            subject_id = person(app)
            refused = record(desk, subject_id, holder="")
            assert refused.status_code == 400
            seen.append(refused.get_data(as_text=True))
            assert record(desk, subject_id).status_code == 303
            online = record(desk, subject_id, reference="BORNE-ONLINE", signed_how="online")
            assert online.status_code == 303
            paper, online = mandates(app)
            for mandate_id in (paper.id, online.id):
                seen.append(admin.get("/admin/mandates").get_data(as_text=True))
                approved = post(admin, f"/admin/mandates/{mandate_id}/approve")
                seen.append(admin.get(approved.headers["Location"]).get_data(as_text=True))
            with app.app_context():
                deliver_once()
            link = link_in(mails[0], "mandate")
            seen.append(web.get(link).text)
            seen.append(web.post(link).text)
            for client in (desk, admin, officer):
                seen.append(client.get(f"/admin/subjects/{subject_id}").get_data(as_text=True))
            for kind in ("html", "json"):
                exported = post(
                    officer, f"/admin/subjects/{subject_id}/export",
                    identification="pas gezien", format=kind,
                )  # fmt: skip
                copy = officer.get(exported.headers["Location"]).get_data(as_text=True)
                assert MASKED in copy and "BORNE-2026-0001" in copy
                seen.append(copy)
            with app.test_request_context():
                token = tokens.make_preferences(subject_id)
            seen.append(web.get(f"/preferences/{token}").text)
            data_page = web.get(f"/preferences/{token}/data").text
            assert "BORNE-2026-0001" in data_page and MASKED in data_page
            seen.append(data_page)
            member_json = web.get(f"/preferences/{token}/data?format=json").text
            seen.append(member_json)
            assert {m["iban"] for m in json.loads(member_json)["mandates"]} == {MASKED}
            headers, _ = make_key(app, purposes=("newsletter", "direct_debit"), name="Incasso")
            answer = web.get("/api/v1/subjects/jan@example.nl", headers=headers)
            seen.append(answer.text)
            assert {m["iban"] for m in answer.json()["mandates"]} == {MASKED}
            end = f"/preferences/{token}/mandates/{online.id}/end"
            seen.append(web.get(end).text)
            seen.append(web.post(end).text)
            seen.append(desk.get(f"/admin/mandates/{paper.id}/end").get_data(as_text=True))
            ended = post(desk, f"/admin/mandates/{paper.id}/end")
            seen.append(desk.get(ended.headers["Location"]).get_data(as_text=True))
            seen.append(officer.get("/admin/audit").get_data(as_text=True))
            seen.append(officer.get(f"/admin/audit?subject={subject_id}").get_data(as_text=True))
            with app.app_context():
                deliver_once()
                db.session.remove()
            for message in mails:
                seen.extend([message.subject, message.body, message.html])
    finally:
        receiver.stop()
    delivered = [payload for _id, payload in receiver.received]
    assert {p["type"] for p in delivered} >= {"mandate.approved", "mandate.ended"}
    seen.extend(json.dumps(payload, ensure_ascii=False) for payload in delivered)
    seen.extend(json.dumps(payload, ensure_ascii=False) for payload in webhooks(app))
    seen.extend(" ".join(map(str, entry)) for entry in audit(app))
    seen.extend(text_columns(app))
    logged = [r.getMessage() + "\n" + (r.exc_text or "") for r in caplog.records]
    # The run did log (the server's access lines, the worker's deliveries): silence is no proof.
    assert any("/admin/" not in line and "GET /preferences/" in line for line in logged)
    assert any("HTTP Request: POST http://127.0.0.1:" in line for line in logged)
    seen.extend(logged)
    for text in seen:
        for needle in NEEDLES:
            assert needle not in text, (needle, text[:2000])
    assert sum(MASKED in text for text in seen) > 10


def register_receiver(app, url):
    result = app.test_cli_runner().invoke(
        args=["webhooks", "add", "--library", "borne", "--url", url,
              "--events", ",".join(outbox.EVENT_TYPES)]
    )  # fmt: skip
    return result.output.split("secret (shown only now): ")[1].strip()


def test_the_stored_iban_is_encrypted_with_its_own_key(app):
    _subject_id, mandate_id, _desk, _admin = approved_mandate(app)
    with app.app_context():
        stored = db.session.get(SepaMandate, mandate_id)
        ciphertext, last4 = stored.iban_ciphertext, stored.iban_last4
    assert IBAN not in ciphertext and last4 == "4300"
    assert iban.Vault(app.config["IBAN_KEY"]).decrypt(ciphertext) == IBAN
    # Another key does not open it, and the key is not the link key.
    with pytest.raises(iban.AccountError):
        iban.Vault(iban.new_key()).decrypt(ciphertext)
    assert app.config["IBAN_KEY"] != app.config["SECRET_KEY"]
