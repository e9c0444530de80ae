"""Young members: under 16 a parent or guardian consents (docs/minors.md).

The guardian path end to end, refusal without a guardian, the minor withdrawing alone,
the guardian's role ending at 16 under frozen time, and the library's birth-year setting.
"""

import re
from datetime import UTC, date, datetime

import time_machine
from sqlalchemy import func, select

from consentsvc import ledger, retention, tokens
from consentsvc.extensions import db
from consentsvc.models import AuditEntry, ConsentEvent, Library, Subject

from .conftest import TEST_CONFIG, link_in, signup, work_outbox
from .test_admin import log_in, person
from .test_console import SETTINGS, post

GUARDIAN = "ouder.jansen@example.nl"
MINOR = "noor@example.nl"
# The console's settings form as test_console sends it, keeping the console in Dutch.
DUTCH = {**SETTINGS, "default_language": "nl"}


def make_minor(app, *, birth_year=None, guardian=GUARDIAN, asks=True, marked=False):
    """A person of borne recorded as younger than 16 (directly, as staff would)."""
    subject_id = person(app, MINOR)
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        subject.library.asks_birth_year = asks
        subject.birth_year = (
            birth_year if birth_year is not None else ledger.local_today().year - 12
        )
        subject.marked_minor = marked
        subject.guardian_email = guardian
        db.session.commit()
    return subject_id


def states(app, subject_id):
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        return {s.purpose.code: s.status for s in ledger.state_of(db.session, subject)}


def event_count(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ConsentEvent))


def guardian_link(message):
    match = re.search(r"http://localhost(/guardian/confirm/[A-Za-z0-9_.\-]+)", message.body)
    assert match, "no guardian link in mail"
    return match.group(1)


def test_the_rule_never_treats_a_15_year_old_as_16():
    # Born in 2010: 15 until some day in 2026, which the year alone cannot tell.
    assert ledger.decides_alone_from(2010) == date(2027, 1, 1)
    born_2010 = Subject(birth_year=2010, marked_minor=False)
    # 31 December 2026, 23:30 in Amsterdam is 22:30 UTC: still a minor.
    assert ledger.is_minor(born_2010, datetime(2026, 12, 31, 22, 30, tzinfo=UTC))
    # 1 January 2027, 00:30 in Amsterdam is still 31 December in UTC: no longer a minor.
    assert not ledger.is_minor(born_2010, datetime(2026, 12, 31, 23, 30, tzinfo=UTC))
    assert ledger.is_minor(Subject(birth_year=None, marked_minor=True))
    assert not ledger.is_minor(Subject(birth_year=None, marked_minor=False))


def test_signup_mails_the_guardian_whose_confirmation_is_the_evidence(app, client, outbox):
    subject_id = make_minor(app)
    assert signup(client, MINOR, purposes=("newsletter",)).status_code == 200
    work_outbox(app)
    [mail] = outbox
    # The guardian gets it, not the minor, and it says for whom it is.
    assert mail.recipients == [GUARDIAN]
    assert "ouder of voogd" in mail.body and MINOR in mail.body
    assert "Nieuwsbrief" in mail.body
    assert states(app, subject_id)["newsletter"] == "pending"
    link = guardian_link(mail)
    page = client.get(link)
    assert page.status_code == 200
    assert "Geef je toestemming?" in page.get_data(as_text=True)
    assert states(app, subject_id)["newsletter"] == "pending"  # GET changes nothing
    done = client.post(link)
    assert done.status_code == 200
    assert "Bedankt voor je toestemming" in done.get_data(as_text=True)
    assert states(app, subject_id)["newsletter"] == "granted"
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        granted = ledger.history(db.session, subject)[0]
        assert (granted.action, granted.channel) == ("granted", "email_link")
        details = granted.evidence.details
        assert details["confirmed_by"] == "guardian"
        assert details["guardian_fingerprint"] == ledger.email_fingerprint(GUARDIAN)
        assert GUARDIAN not in str(details)
    # Used once: a second press grants nothing more.
    assert "Er is niets meer te bevestigen" in client.post(link).get_data(as_text=True)


def test_the_minors_own_confirmation_link_confirms_nothing(app, client):
    subject_id = make_minor(app)
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        result = ledger.signup(
            db.session, subject.library, MINOR, ["newsletter"], language="nl", channel="web_form"
        )
        db.session.commit()
        token = tokens.make_confirm(subject_id, result.request_ids)
    client.post(f"/confirm/{token}")
    assert states(app, subject_id)["newsletter"] == "pending"


def test_an_old_guardian_link_stops_when_another_guardian_is_recorded(app, client, outbox):
    subject_id = make_minor(app)
    signup(client, MINOR)
    link = guardian_link(outbox[0])
    with app.app_context():
        db.session.get(Subject, subject_id).guardian_email = "voogd@example.nl"
        db.session.commit()
    assert client.post(link).status_code == 410
    assert states(app, subject_id)["newsletter"] == "pending"


def test_the_preference_centre_asks_the_guardian(app, client, outbox):
    subject_id = make_minor(app)
    with app.app_context():
        token = tokens.make_preferences(subject_id)
    response = client.post(f"/preferences/{token}", data={"purpose": "newsletter", "choice": "on"})
    assert response.status_code == 303
    assert states(app, subject_id)["newsletter"] == "pending"
    [mail] = outbox
    assert mail.recipients == [GUARDIAN]
    client.post(guardian_link(mail))
    assert states(app, subject_id)["newsletter"] == "granted"


def test_without_a_guardian_a_minors_grant_is_refused_and_changes_nothing(app, client, outbox):
    subject_id = make_minor(app, guardian=None, marked=True, asks=False)
    with app.app_context():
        token = tokens.make_preferences(subject_id)
    before = event_count(app)
    # The preference centre: a clear message in the member's language.
    response = client.post(f"/preferences/{token}", data={"purpose": "newsletter", "choice": "on"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Je ouder of voogd moet toestemming geven" in page
    assert "jonger dan 16" in page
    english = client.post(
        f"/preferences/{token}?lang=en", data={"purpose": "newsletter", "choice": "on"}
    )
    assert "Your parent or guardian has to agree" in english.get_data(as_text=True)
    # The website's signup form: the same answer as always, and the worker records nothing.
    assert signup(client, MINOR).status_code == 200
    work_outbox(app)
    # The desk: refused with the reason.
    desk = log_in(app)
    with app.app_context():
        text_id = ledger.current_text(
            db.session.get(Subject, subject_id).library.purposes[0], "nl"
        ).id
    refused = post(
        desk, f"/admin/subjects/{subject_id}/consent", text=text_id, how="desk", note="aan de balie"
    )
    assert refused.status_code == 400
    assert "jonger dan 16" in refused.get_data(as_text=True)
    assert event_count(app) == before
    assert len(outbox) == 0


def give_by_guardian(app, subject_id, code):
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        result = ledger.signup(
            db.session, subject.library, MINOR, [code], language="nl", channel="web_form"
        )
        ledger.confirm(
            db.session, subject, result.request_ids, by_guardian=True,
            proof=ledger.Proof(details=ledger.guardian_proof(GUARDIAN)),
        )  # fmt: skip
        db.session.commit()


def test_the_minor_withdraws_alone(app, client, outbox):
    subject_id = make_minor(app)
    give_by_guardian(app, subject_id, "newsletter")
    give_by_guardian(app, subject_id, "acquisitions")
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        purposes = {p.code: p.id for p in subject.library.purposes}
        unsubscribe = tokens.make_unsubscribe(subject_id, purposes["newsletter"])
        preferences = tokens.make_preferences(subject_id)
    assert states(app, subject_id)["acquisitions"] == "granted"
    # One click, no guardian.
    fresh = app.test_client(use_cookies=False)
    one_click = fresh.post(
        f"/unsubscribe/{unsubscribe}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert one_click.status_code == 200
    assert states(app, subject_id)["newsletter"] == "withdrawn"
    # "Stop all mail" in the centre.
    assert client.post(f"/preferences/{preferences}/stop-all").status_code == 303
    assert states(app, subject_id)["acquisitions"] == "withdrawn"
    # The centre's "off".
    give_by_guardian(app, subject_id, "newsletter")
    off = {"purpose": "newsletter", "choice": "off"}
    assert client.post(f"/preferences/{preferences}", data=off).status_code == 303
    assert states(app, subject_id)["newsletter"] == "withdrawn"
    assert len(outbox) == 0  # nobody needed asking


def test_at_16_the_guardians_role_ends_consents_stay_both_are_told_once(app, outbox):
    with time_machine.travel(datetime(2026, 12, 31, 12, 0, tzinfo=UTC), tick=False):
        subject_id = make_minor(app, birth_year=2010)
        with app.app_context():
            subject = db.session.get(Subject, subject_id)
            result = ledger.signup(
                db.session, subject.library, MINOR, ["newsletter"], language="nl", channel="x"
            )
            ledger.confirm(
                db.session, subject, result.request_ids, by_guardian=True,
                proof=ledger.Proof(details=ledger.guardian_proof(GUARDIAN)),
            )  # fmt: skip
            db.session.commit()
            library = subject.library
            # Still 15 for all we know: nothing ends.
            report = retention.run_library(db.session, library, suppression_key="k")
            assert report.counts["guardianship_ended"] == 0
        assert len(outbox) == 0
    # 1 January 2027 in Amsterdam: born in 2010, so 16 by now.
    with time_machine.travel(datetime(2027, 1, 1, 2, 30, tzinfo=UTC), tick=False):
        with app.app_context():
            library = db.session.scalar(select(Library).where(Library.slug == "borne"))
            report = retention.run_library(db.session, library, suppression_key="k")
            assert report.counts["guardianship_ended"] == 1
            subject = db.session.get(Subject, subject_id)
            assert subject.guardian_ended_at == datetime(2027, 1, 1, 2, 30, tzinfo=UTC)
            assert not ledger.is_minor(subject)
        assert states(app, subject_id)["newsletter"] == "granted"
        mails = list(outbox)
        assert sorted(m.recipients[0] for m in mails) == sorted([MINOR, GUARDIAN])
        to_minor = next(m for m in mails if m.recipients == [MINOR])
        to_guardian = next(m for m in mails if m.recipients == [GUARDIAN])
        assert "Je bent nu 16" in to_minor.body
        assert link_in(to_minor, "preferences")
        assert MINOR in to_guardian.body and "16" in to_guardian.body
        # Runs once: again the same day, or the next, ends and mails nothing more.
        with app.app_context():
            library = db.session.scalar(select(Library).where(Library.slug == "borne"))
            report = retention.run_library(db.session, library, suppression_key="k")
            assert report.counts["guardianship_ended"] == 0
        assert len(outbox) == 2
        # Now they decide alone: their own confirmation works.
        with app.app_context():
            subject = db.session.get(Subject, subject_id)
            result = ledger.signup(
                db.session, subject.library, MINOR, ["acquisitions"], language="nl", channel="x"
            )
            assert ledger.confirm(db.session, subject, result.request_ids) == ["acquisitions"]


def test_the_retention_command_ends_guardianships_too(app):
    subject_id = make_minor(app, birth_year=ledger.local_today().year - 17)
    result = app.test_cli_runner().invoke(args=["retention", "run", "--library", "borne"])
    assert result.exit_code == 0, result.output
    assert "guardianship_ended 1" in result.output
    with app.app_context():
        assert db.session.get(Subject, subject_id).guardian_ended_at is not None


def test_staff_record_a_birth_year_only_where_the_library_asks(app):
    subject_id = person(app, MINOR)
    desk = log_in(app)
    url = f"/admin/subjects/{subject_id}"
    # Off by default: no field, and a birth year sent anyway is refused, nothing stored.
    page = desk.get(url).get_data(as_text=True)
    assert 'name="birth_year"' not in page and 'name="guardian_email"' in page
    refused = post(desk, f"{url}/minor", birth_year="2014", guardian_email=GUARDIAN)
    assert refused.status_code == 400
    assert "Deze bibliotheek legt geen geboortejaren vast" in refused.get_data(as_text=True)
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        assert (subject.birth_year, subject.guardian_email) == (None, None)
    # An admin switches it on, in its own fieldset at the end of the settings form.
    admin = log_in(app, "admin")
    settings = admin.get("/admin/library").get_data(as_text=True)
    assert settings.index('id="young-members"') > settings.index('id="retention"')
    assert post(admin, "/admin/library", **DUTCH, asks_birth_year="yes").status_code == 303
    page = desk.get(url).get_data(as_text=True)
    assert 'name="birth_year"' in page
    for wrong in ("12", "20145", "abcd", "１２３４", str(ledger.local_today().year + 1), "1890"):
        response = post(desk, f"{url}/minor", birth_year=wrong, guardian_email=GUARDIAN)
        assert response.status_code == 400, wrong
        assert "vier cijfers" in response.get_data(as_text=True)
        # What was typed stays in the form.
        assert GUARDIAN in response.get_data(as_text=True)
    for address, message in (("geen-adres", "e-mailadres"), (MINOR, "eigen adres")):
        response = post(desk, f"{url}/minor", birth_year="2014", guardian_email=address)
        assert response.status_code == 400
        assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Subject, subject_id).birth_year is None
    saved = post(
        desk, f"{url}/minor", birth_year="2014", guardian_email=" Ouder.Jansen@Example.nl "
    )
    assert saved.status_code == 303
    page = desk.get(url).get_data(as_text=True)
    assert "Jonger dan 16" in page and GUARDIAN in page
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        assert (subject.birth_year, subject.guardian_email) == (2014, GUARDIAN)
        entries = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "young_member")
        ).all()
        assert [e.detail for e in entries] == ["birth_year, guardian_email"]
        assert GUARDIAN not in (entries[0].detail or "")
        # In the person's export: the young member's part and the staff change.
        exported = ledger.export(
            db.session, subject, suppression_key=TEST_CONFIG["SUPPRESSION_KEY"]
        )
        assert exported["young_member"] == {
            "birth_year": 2014, "marked_minor": False, "minor_today": True,
            "guardian_email": GUARDIAN, "guardian_ended_at": None,
        }  # fmt: skip
        assert "young_member" in [a["action"] for a in exported["staff_access"]]
        own = tokens.make_preferences(subject_id)
    # The member's own page to read along says it in their words.
    page = app.test_client().get(f"/preferences/{own}/data").get_data(as_text=True)
    assert "Geboortejaar</dt><dd>2014" in page
    assert f'{GUARDIAN} <span class="muted">(bevestigt je keuzes tot je 16 bent)' in page
    # The library switches it off again: the field is gone and a year is refused again.
    assert post(admin, "/admin/library", **DUTCH).status_code == 303
    assert 'name="birth_year"' not in desk.get(url).get_data(as_text=True)
    assert post(desk, f"{url}/minor", birth_year="2013", guardian_email=GUARDIAN).status_code == 400


def test_erasure_takes_the_young_members_data_too(app):
    subject_id = make_minor(app)
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        ledger.erase(
            db.session, subject, suppression_key="k", actor="staff:1", identification="pas"
        )
        db.session.commit()
        assert (subject.birth_year, subject.guardian_email) == (None, None)


def test_consent_recorded_at_the_desk_for_a_minor_goes_to_the_guardian(app, outbox):
    subject_id = make_minor(app)
    desk = log_in(app)
    with app.app_context():
        library = db.session.get(Subject, subject_id).library
        texts = {p.code: ledger.current_text(p, "nl").id for p in library.purposes}
    for code in ("newsletter", "direct_marketing"):  # with and without double opt-in
        response = post(
            desk, f"/admin/subjects/{subject_id}/consent",
            text=texts[code], how="desk", note="moeder was erbij",
        )  # fmt: skip
        assert response.status_code == 303
        assert response.headers["Location"].endswith("?done=requested")
        assert states(app, subject_id)[code] == "pending"
    mails = list(outbox)
    assert [m.recipients for m in mails] == [[GUARDIAN], [GUARDIAN]]
    client = app.test_client()
    client.post(guardian_link(mails[1]))
    assert states(app, subject_id)["direct_marketing"] == "granted"


def test_an_imported_list_leaves_a_young_member_alone(app, tmp_path):
    subject_id = make_minor(app)
    path = tmp_path / "list.csv"
    path.write_text(f"email,status\n{MINOR},subscribed\nouder@example.nl,subscribed\n")
    result = app.test_cli_runner().invoke(
        args=["import", "subscribers", str(path), "--library", "borne",
              "--purpose", "newsletter", "--by", "tester"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert states(app, subject_id)["newsletter"] is None
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        other = ledger.find_subject(db.session, library, "ouder@example.nl")
        assert {s.purpose.code: s.status for s in ledger.state_of(db.session, other)}[
            "newsletter"
        ] == "granted"


def test_undoing_an_unsubscribe_without_a_guardian_says_why(app, client):
    subject_id = make_minor(app)
    give_by_guardian(app, subject_id, "newsletter")
    with app.app_context():
        db.session.get(Subject, subject_id).guardian_email = None
        db.session.commit()
        library = db.session.get(Subject, subject_id).library
        token = tokens.make_unsubscribe(
            subject_id, ledger.purpose_by_code(library, "newsletter").id
        )
    client.post(f"/unsubscribe/{token}")
    assert states(app, subject_id)["newsletter"] == "withdrawn"
    before = event_count(app)
    undo = client.post(f"/unsubscribe/{token}/undo")
    assert undo.status_code == 400
    assert "jonger dan 16" in undo.get_data(as_text=True)
    assert event_count(app) == before
