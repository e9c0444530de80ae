"""Which purposes a library offers, and what legitimate interest means there: a retired
purpose (Zoetermeer promises no direct marketing based on lending data) is no longer
offered and no check allows it, its history stays; a library chooses whether its
legitimate-interest purpose reaches members unless they object (soft opt-in, only while the
membership runs) or only people who opted in."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from consentsvc import clients, ledger, tokens
from consentsvc.extensions import db
from consentsvc.models import (
    AuditEntry,
    ConsentEvent,
    LegitimateInterest,
    Library,
    Subject,
)
from consentsvc.web.openapi import REASONS

from .conftest import csrf_token, switch_in
from .test_admin import log_in
from .test_console import SETTINGS

CHANNEL = ledger.Channel.STAFF


def library(session, slug):
    return session.scalar(select(Library).where(Library.slug == slug))


def key_for(app, slug, purposes):
    with app.app_context():
        _client, key = clients.create(db.session, library(db.session, slug), "Laposta", purposes)
        db.session.commit()
        return key


def check(client, key, purpose, *emails):
    response = client.post(
        "/api/v1/consent/check",
        json={"purpose": purpose, "recipients": list(emails)},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["results"]


def member(app, slug, email, *, started=-400, ended=None, granted=()):
    """A person whose membership started `started` days from today (ended: days, or None)."""
    with app.app_context():
        return _member(db.session, slug, email, started, ended, granted)


def _member(session, slug, email, started, ended, granted):
    lib = library(session, slug)
    person = ledger.subject_for(session, lib, email, "nl")
    today = ledger.local_today()
    person.card_number = "20010000123"
    person.membership_started_on = today + timedelta(days=started)
    person.membership_ended_on = None if ended is None else today + timedelta(days=ended)
    for code in granted:
        ledger.grant(session, person, code, channel=CHANNEL)
    session.commit()
    return person.id


def centre_token(app, subject_id):
    with app.app_context():
        return tokens.make_preferences(subject_id)


def states(app, subject_id):
    with app.app_context():
        person = db.session.get(Subject, subject_id)
        return {s.purpose.code: s for s in ledger.state_of(db.session, person)}


def post(client, path, **data):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, "/admin/")})


# -- retired purposes -------------------------------------------------------------------------


def test_the_demo_retires_zoetermeers_direct_marketing_and_borne_mails_members(session):
    zoetermeer, borne = library(session, "zoetermeer"), library(session, "borne")
    assert ledger.purpose_by_code(zoetermeer, "direct_marketing").retired_at is not None
    assert ledger.purpose_by_code(borne, "direct_marketing").retired_at is None
    assert borne.legitimate_interest == LegitimateInterest.MEMBERS
    assert zoetermeer.legitimate_interest == LegitimateInterest.OPT_IN


def count_events(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ConsentEvent))


def purpose_id(app, slug, code):
    with app.app_context():
        return ledger.purpose_by_code(library(db.session, slug), code).id


def retire(app, slug, code):
    with app.app_context():
        ledger.retire_purpose(ledger.purpose_by_code(library(db.session, slug), code))
        db.session.commit()


def test_a_retired_purpose_is_allowed_for_nobody_and_its_history_stays(app, client):
    jan = member(app, "borne", "jan@example.nl", granted=["acquisitions"])
    key = key_for(app, "borne", ["acquisitions"])
    assert check(client, key, "acquisitions", "jan@example.nl")[0]["allowed"] is True
    events_before = count_events(app)

    admin = log_in(app, "admin")
    acquisitions = purpose_id(app, "borne", "acquisitions")
    asked = admin.get(f"/admin/purposes/{acquisitions}/retire").get_data(as_text=True)
    assert "Aanwinstenmail stopzetten?" in asked and "purpose_retired" in asked
    assert post(admin, f"/admin/purposes/{acquisitions}/retire").status_code == 303
    page = admin.get("/admin/purposes").get_data(as_text=True)
    assert "Aanwinstenmail is stopgezet" in page and "Stopgezet op" in page

    results = check(client, key, "acquisitions", "jan@example.nl", "nobody@example.nl", "nope")
    assert [(r["allowed"], r["reason"]) for r in results] == [
        (False, "purpose_retired"),
        (False, "purpose_retired"),
        (False, "invalid_address"),
    ]
    assert all("headers" not in r for r in results)
    # Nothing was rewritten: the grant is still there, as is the person's state.
    assert count_events(app) == events_before
    assert states(app, jan)["acquisitions"].status == "granted"
    with app.app_context():
        assert "purpose.retire" in {a.action for a in db.session.scalars(select(AuditEntry))}
    # Retiring twice is not offered.
    assert admin.get(f"/admin/purposes/{acquisitions}/retire").status_code == 404


def test_a_retired_purpose_cannot_be_started_anywhere(app, client):
    retire(app, "borne", "acquisitions")
    piet = member(app, "borne", "piet@example.nl")
    with app.app_context():
        lib = library(db.session, "borne")
        with pytest.raises(ledger.PurposeRetired):
            ledger.grant(db.session, db.session.get(Subject, piet), "acquisitions", channel=CHANNEL)
        db.session.rollback()
        with pytest.raises(ledger.PurposeRetired):
            ledger.signup(
                db.session, lib, "kees@example.nl", ["newsletter", "acquisitions"],
                language="nl", channel=ledger.Channel.WEB_FORM,
            )  # fmt: skip
        db.session.rollback()
        assert ledger.find_subject(db.session, lib, "kees@example.nl") is None

    signup = client.get("/borne/signup").get_data(as_text=True)
    assert "Nieuwsbrief" in signup and "Aanwinstenmail" not in signup
    key = key_for(app, "borne", ["newsletter", "acquisitions"])
    api = client.post(
        "/api/v1/signups",
        json={"email": "kees@example.nl", "purposes": ["acquisitions"]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert api.status_code == 400, api.get_data(as_text=True)
    assert api.get_json()["error"]["code"] == "purpose_retired"

    centre = client.get(f"/preferences/{centre_token(app, piet)}").get_data(as_text=True)
    assert "Nieuwsbrief" in centre and "Aanwinstenmail" not in centre

    desk = log_in(app, "desk")
    page = desk.get(f"/admin/subjects/{piet}").get_data(as_text=True)
    assert "stopgezet op" in page
    options = page.split('id="text"', 1)[1].split("</select>", 1)[0]
    assert "Aanwinstenmail" not in options and "Nieuwsbrief" in options
    assert "purpose_retired" in REASONS and "member" in REASONS


# -- legitimate interest: members unless they object -----------------------------------------


def test_a_running_member_gets_direct_marketing_until_they_object(app, client):
    member(app, "borne", "lid@example.nl")
    member(app, "borne", "oud-lid@example.nl", started=-900, ended=-1)
    member(app, "borne", "nieuw@example.nl", started=3)
    member(app, "borne", "laatste-dag@example.nl", started=-900, ended=0)
    with app.app_context():
        ledger.subject_for(db.session, library(db.session, "borne"), "geen-lid@example.nl", "nl")
        db.session.commit()
    key = key_for(app, "borne", ["direct_marketing", "newsletter"])
    emails = [
        "lid@example.nl",
        "oud-lid@example.nl",
        "nieuw@example.nl",
        "laatste-dag@example.nl",
        "geen-lid@example.nl",
        "onbekend@example.nl",
    ]
    results = check(client, key, "direct_marketing", *emails)
    assert [(r["allowed"], r["reason"]) for r in results] == [
        (True, "member"),
        (False, "no_consent"),
        (False, "no_consent"),
        (True, "member"),  # the end date is the membership's last day
        (False, "no_consent"),
        (False, "no_consent"),
    ]
    assert results[0]["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Membership never counts for a purpose that needs consent.
    assert not any(r["allowed"] for r in check(client, key, "newsletter", *emails))

    # The one-click link in that mail records an objection, and it holds.
    link = results[0]["headers"]["List-Unsubscribe"].strip("<>")
    path = "/" + link.split("/", 3)[3]
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    again = check(client, key, "direct_marketing", "lid@example.nl")[0]
    assert (again["allowed"], again["reason"]) == (False, "objected")
    with app.app_context():
        person = ledger.find_subject(db.session, library(db.session, "borne"), "lid@example.nl")
        last = db.session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subject_id == person.id)
            .order_by(ConsentEvent.id.desc())
        ).first()
        assert (last.action, last.channel) == ("objected", "one_click")


def test_a_library_that_chose_opt_in_mails_nobody_on_membership(app, client):
    member(app, "borne", "lid@example.nl")
    admin = log_in(app, "admin")
    saved = post(admin, "/admin/library", **{**SETTINGS, "default_language": "nl"})
    assert saved.status_code == 303
    with app.app_context():
        assert library(db.session, "borne").legitimate_interest == LegitimateInterest.OPT_IN
    key = key_for(app, "borne", ["direct_marketing"])
    result = check(client, key, "direct_marketing", "lid@example.nl")[0]
    assert (result["allowed"], result["reason"]) == (False, "no_consent")

    wrong = post(admin, "/admin/library", **{**SETTINGS, "legitimate_interest": "everyone"})
    assert wrong.status_code == 400
    assert "Kies wie mail krijgt op grond van gerechtvaardigd belang" in wrong.get_data(
        as_text=True
    )
    with app.app_context():
        assert library(db.session, "borne").legitimate_interest == LegitimateInterest.OPT_IN
    back = {**SETTINGS, "default_language": "nl", "legitimate_interest": LegitimateInterest.MEMBERS}
    assert post(admin, "/admin/library", **back).status_code == 303
    with app.app_context():
        assert library(db.session, "borne").legitimate_interest == LegitimateInterest.MEMBERS
    assert check(client, key, "direct_marketing", "lid@example.nl")[0]["reason"] == "member"


@pytest.mark.parametrize("language", ["nl", "en"])
def test_the_centre_says_why_it_is_on_and_switching_off_is_an_objection(app, client, language):
    jan = member(app, "borne", "jan@example.nl")
    token = centre_token(app, jan)
    page = client.get(f"/preferences/{token}?lang={language}").get_data(as_text=True)
    card = page.split('id="purpose-direct_marketing"', 1)[1].split("</li>", 1)[0]
    on = {
        "nl": "Je krijgt dit omdat je lid bent. Je kunt het stoppen.",
        "en": "You get this because you are a member. You can stop it.",
    }[language]
    name = {"nl": "Aanbiedingen voor leden: Aan", "en": "Offers for members: On"}[language]
    assert on in card
    # One switch, on; switching it off is an objection.
    assert card.count("<button") == 1
    assert switch_in(page, "direct_marketing") == (True, name, "never")
    # "Stop all mail" is offered, since this mail runs, and it stops it too.
    assert 'id="stop-all-button"' in page
    client.post(f"/preferences/{token}/stop-all")
    after = states(app, jan)["direct_marketing"]
    assert (after.status, after.as_member) == ("objected", False)
    assert on not in client.get(f"/preferences/{token}?lang={language}").get_data(as_text=True)


def test_staff_see_the_member_default_in_staff_words(app):
    jan = member(app, "borne", "jan@example.nl")
    desk = log_in(app, "desk")
    page = desk.get(f"/admin/subjects/{jan}").get_data(as_text=True)
    state = page[page.index('id="consents"') : page.index('id="actions-title"')]
    assert "Gemaild als lid (gerechtvaardigd belang), geen bezwaar" in state


def test_an_objection_outlives_a_new_membership(app, client):
    jan = member(app, "borne", "jan@example.nl", started=-900, ended=-10)
    with app.app_context():
        person = db.session.get(Subject, jan)
        ledger.object_to(db.session, person, "direct_marketing", channel=CHANNEL)
        person.membership_started_on = ledger.local_today() - timedelta(days=2)
        person.membership_ended_on = None
        db.session.commit()
    key = key_for(app, "borne", ["direct_marketing"])
    assert check(client, key, "direct_marketing", "jan@example.nl")[0]["reason"] == "objected"


def test_restricted_members_are_not_mailed_on_membership(app, client):
    jan = member(app, "borne", "jan@example.nl")
    with app.app_context():
        ledger.restrict(db.session, db.session.get(Subject, jan))
        db.session.commit()
    assert states(app, jan)["direct_marketing"].as_member is False
    key = key_for(app, "borne", ["direct_marketing"])
    result = check(client, key, "direct_marketing", "jan@example.nl")[0]
    assert (result["allowed"], result["reason"]) == (False, "restricted")


def test_a_young_member_is_never_mailed_on_membership(app, client):
    noor = member(app, "borne", "noor@example.nl")
    with app.app_context():
        person = db.session.get(Subject, noor)
        person.birth_year = ledger.local_today().year - 12
        person.guardian_email = "vader@example.nl"
        db.session.commit()
    assert states(app, noor)["direct_marketing"].as_member is False
    key = key_for(app, "borne", ["direct_marketing"])
    result = check(client, key, "direct_marketing", "noor@example.nl")[0]
    assert (result["allowed"], result["reason"]) == (False, "no_consent")
