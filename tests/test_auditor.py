"""The auditor's view: what held for a person at a moment in the past (ledger.auditor), and
the console page that shows it to a privacy officer (web/console_auditor.py)."""

import re
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import event, select

from consentsvc import ledger, staff
from consentsvc.extensions import db
from consentsvc.ledger import InvalidMoment, Moment, read_moment
from consentsvc.models import AuditEntry, Library, Subject

from .conftest import csrf_token

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
KEY = "test-suppression-key"
PASSWORD = "correct horse battery"


def at(day, hour=12, minute=0):
    """A moment in Amsterdam, as UTC."""
    return datetime.combine(day, time(hour, minute), AMSTERDAM).astimezone(UTC)


def library(slug="borne"):
    return db.session.scalar(select(Library).where(Library.slug == slug))


def history_of_jan(app):
    """Jan's history in March 2026 (Amsterdam times):

    1 March 10:00 signs up for the newsletter, confirms 10:05; 5 March acquisitions at the
    desk; 10 March 15:00 unsubscribes from the newsletter; 20 March signs up again and
    confirms; 1 April objects to direct marketing.
    """
    with app.app_context():
        borne = library()
        with time_machine.travel(at(date(2026, 3, 1), 10, 0), tick=False) as clock:
            result = ledger.signup(
                db.session, borne, "jan@example.nl", ["newsletter"], language="nl",
                channel="web_form",
                proof=ledger.Proof(ip_address="203.0.113.7", user_agent="Firefox/140",
                                   origin="https://www.bibliotheekborne.nl/nieuwsbrief"),
            )  # fmt: skip
            jan = result.subject
            clock.move_to(at(date(2026, 3, 1), 10, 5))
            ledger.confirm(db.session, jan, result.request_ids)
            clock.move_to(at(date(2026, 3, 5), 11, 0))
            ledger.grant(
                db.session, jan, "acquisitions", channel="staff", actor="staff:1",
                proof=ledger.Proof(details={"how": "desk", "note": "vroeg ernaar"}),
            )  # fmt: skip
            clock.move_to(at(date(2026, 3, 10), 15, 0))
            ledger.withdraw(db.session, jan, "newsletter", channel="one_click")
            clock.move_to(at(date(2026, 3, 20), 9, 0))
            again = ledger.signup(
                db.session, borne, "jan@example.nl", ["newsletter"], language="nl",
                channel="web_form",
            )  # fmt: skip
            clock.move_to(at(date(2026, 3, 20), 9, 30))
            ledger.confirm(db.session, jan, again.request_ids)
            clock.move_to(at(date(2026, 4, 1), 8, 0))
            ledger.object_to(db.session, jan, "direct_marketing", channel="preference_centre")
        db.session.commit()
        return jan.id


def view(app, subject_id, moment):
    subject = db.session.get(Subject, subject_id)
    result = ledger.auditor_view(db.session, subject, moment, suppression_key=KEY)
    return {p.purpose.code: p for p in result.purposes}, result


# -- the fold at a moment -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "newsletter", "acquisitions", "direct_marketing"),
    [
        (Moment(date(2026, 2, 28)), None, None, None),
        (Moment(date(2026, 3, 1), time(10, 0)), "pending", None, None),
        (Moment(date(2026, 3, 1), time(10, 4)), "pending", None, None),
        (Moment(date(2026, 3, 1), time(10, 5)), "granted", None, None),
        (Moment(date(2026, 3, 1)), "granted", None, None),
        (Moment(date(2026, 3, 5)), "granted", "granted", None),
        (Moment(date(2026, 3, 10), time(14, 59)), "granted", "granted", None),
        (Moment(date(2026, 3, 10)), "withdrawn", "granted", None),
        (Moment(date(2026, 3, 19)), "withdrawn", "granted", None),
        (Moment(date(2026, 3, 20), time(9, 15)), "pending", "granted", None),
        (Moment(date(2026, 3, 20)), "granted", "granted", None),
        (Moment(date(2026, 4, 1)), "granted", "granted", "objected"),
    ],
)
def test_the_state_then_is_the_fold_of_the_events_before_the_moment(
    app, moment, newsletter, acquisitions, direct_marketing
):
    subject_id = history_of_jan(app)
    with app.app_context():
        purposes, _result = view(app, subject_id, moment)
        assert set(purposes) == {"newsletter", "acquisitions", "direct_marketing", "direct_debit"}
        assert purposes["newsletter"].status == newsletter
        assert purposes["acquisitions"].status == acquisitions
        assert purposes["direct_marketing"].status == direct_marketing
        assert purposes["direct_debit"].status is None
        # Now is the same whatever the moment.
        assert purposes["newsletter"].status_now == "granted"
        assert purposes["direct_marketing"].status_now == "objected"
        # Every event is either before or after the moment, none lost or doubled.
        for p in purposes.values():
            before, after = p.events, p.later
            assert all(e.occurred_at < moment.until for e in before)
            assert all(e.occurred_at >= moment.until for e in after)
            if before:
                assert p.status == before[-1].status_after
                assert p.since == before[-1].occurred_at


def test_the_events_that_led_there_carry_their_text_evidence_and_actor(app):
    subject_id = history_of_jan(app)
    with app.app_context():
        purposes, result = view(app, subject_id, Moment(date(2026, 3, 19)))
        newsletter = purposes["newsletter"]
        assert [e.action for e in newsletter.events] == ["requested", "granted", "withdrawn"]
        assert [e.action for e in newsletter.later] == ["requested", "granted"]
        requested = newsletter.events[0]
        assert requested.channel == "web_form"
        assert requested.text.title == "Nieuwsbrief"
        assert (requested.text.language, requested.text.version) == ("nl", 1)
        assert requested.text.sha256 == ledger.ConsentText.digest(
            requested.text.title, requested.text.body
        )
        assert requested.evidence.ip_address == "203.0.113.7"
        assert requested.evidence.origin == "https://www.bibliotheekborne.nl/nieuwsbrief"
        # The state's text is the last event's, as in the fold.
        assert newsletter.text is None or newsletter.text.id == newsletter.events[-1].text.id
        desk = purposes["acquisitions"].events[0]
        assert desk.channel == "staff"
        assert desk.evidence.details == {"how": "desk", "note": "vroeg ernaar"}
        assert desk.actor == "staff:1"
        assert result.suppressed_then is None


def test_a_day_is_a_day_in_amsterdam(app):
    """23:30 in Amsterdam on 1 March is 22:30 UTC; 00:30 on 2 March is 23:30 UTC on 1 March."""
    with app.app_context():
        borne = library()
        with time_machine.travel(at(date(2026, 3, 1), 23, 30), tick=False) as clock:
            late = ledger.subject_for(db.session, borne, "laat@example.nl", "nl")
            ledger.grant(db.session, late, "acquisitions", channel="staff")
            clock.move_to(at(date(2026, 3, 2), 0, 30))
            ledger.withdraw(db.session, late, "acquisitions", channel="one_click")
        db.session.commit()
        purposes, _ = view(app, late.id, Moment(date(2026, 3, 1)))
        assert purposes["acquisitions"].status == "granted"
        purposes, _ = view(app, late.id, Moment(date(2026, 3, 2)))
        assert purposes["acquisitions"].status == "withdrawn"


def test_an_erased_person_keeps_their_history_without_their_data(app):
    subject_id = history_of_jan(app)
    with app.app_context():
        jan = db.session.get(Subject, subject_id)
        with time_machine.travel(at(date(2026, 5, 1)), tick=False):
            ledger.erase(
                db.session, jan, suppression_key=KEY, actor="staff:1", identification="pas"
            )
        db.session.commit()
        purposes, result = view(app, subject_id, Moment(date(2026, 4, 15)))
        # Before the erasure: what held then still shows, with the texts agreed to.
        assert purposes["newsletter"].status == "granted"
        assert purposes["newsletter"].events[0].text.title == "Nieuwsbrief"
        # Its evidence lost the personal part.
        assert purposes["newsletter"].events[0].evidence.wiped
        assert [e.action for e in purposes["newsletter"].later] == ["withdrawn", "erased"]
        assert purposes["newsletter"].status_now == "erased"
        assert result.suppressed_now is None  # its key, the address, is gone
        purposes, _ = view(app, subject_id, Moment(date(2026, 5, 1)))
        assert {p.status for p in purposes.values() if p.events} == {"erased"}
        # Suppressed by the address's keyed hash: the page can tell an auditor so.
        suppression = ledger.auditor_suppression(
            db.session, jan.library_id, "jan@example.nl", suppression_key=KEY
        )
        assert suppression.reason == "erased"


def test_a_suppression_before_the_moment_is_shown(app):
    subject_id = history_of_jan(app)
    with app.app_context():
        jan = db.session.get(Subject, subject_id)
        with time_machine.travel(at(date(2026, 3, 25)), tick=False):
            ledger.suppress(db.session, jan.library, jan.email, "complaint", suppression_key=KEY)
        db.session.commit()
        _, before = view(app, subject_id, Moment(date(2026, 3, 24)))
        _, after = view(app, subject_id, Moment(date(2026, 3, 25)))
        assert before.suppressed_then is None
        assert before.suppressed_now.reason == "complaint"
        assert after.suppressed_then.reason == "complaint"


def test_the_view_reads_one_person_not_the_library(app):
    """The same statements whether the library has one person or thirty."""
    subject_id = history_of_jan(app)

    def statements():
        seen = []

        def count(conn, cursor, statement, *args):
            seen.append(statement)

        with app.app_context():
            db.session.expire_all()
            subject = db.session.get(Subject, subject_id)
            _ = subject.library.purposes
            engine = db.engine
            event.listen(engine, "before_cursor_execute", count)
            try:
                ledger.auditor_view(
                    db.session, subject, Moment(date(2026, 3, 19)), suppression_key=KEY
                )
            finally:
                event.remove(engine, "before_cursor_execute", count)
        return seen

    alone = statements()
    with app.app_context():
        borne = library()
        for n in range(30):
            other = ledger.subject_for(db.session, borne, f"ander{n}@example.nl", "nl")
            ledger.grant(db.session, other, "acquisitions", channel="staff")
        db.session.commit()
    crowded = statements()
    assert len(crowded) == len(alone)
    assert len(alone) <= 10
    # Every read of events is by the person.
    for statement in alone:
        if "FROM consent_event" in statement:
            assert "consent_event.subject_id =" in statement


@pytest.mark.parametrize(
    ("day", "moment_time", "expected"),
    [
        ("2026-03-03", "", Moment(date(2026, 3, 3))),
        ("3-3-2026", "", Moment(date(2026, 3, 3))),
        ("03/03/2026", "14:30", Moment(date(2026, 3, 3), time(14, 30))),
        (" 2026-03-03 ", "9.05", Moment(date(2026, 3, 3), time(9, 5))),
        ("2026-03-03", "14:30:15", Moment(date(2026, 3, 3), time(14, 30, 15), seconds=True)),
    ],
)
def test_a_moment_is_read_from_the_form(day, moment_time, expected):
    assert read_moment(day, moment_time, now=datetime(2026, 12, 1, tzinfo=UTC)) == expected


@pytest.mark.parametrize(
    ("day", "moment_time", "code"),
    [
        ("", "", "day"),
        ("gisteren", "", "day"),
        ("2026-02-30", "", "day"),
        ("31-13-2026", "", "day"),
        ("0001-01-01", "", "day"),
        ("2026-03-03", "25:00", "time"),
        ("2026-03-03", "14:60", "time"),
        ("2026-03-03", "half drie", "time"),
        ("2026-12-02", "", "future"),
        ("2026-12-01", "11:00", "future"),
    ],
)
def test_a_bad_moment_is_refused(day, moment_time, code):
    with pytest.raises(InvalidMoment) as refused:
        read_moment(day, moment_time, now=datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    assert refused.value.code == code


def test_a_moment_ends_at_the_end_of_its_day_or_minute():
    assert Moment(date(2026, 3, 1)).until == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    assert Moment(date(2026, 7, 1)).until == datetime(2026, 7, 1, 22, 0, tzinfo=UTC)
    assert Moment(date(2026, 3, 1), time(10, 4)).until == datetime(2026, 3, 1, 9, 5, tzinfo=UTC)
    seconds = Moment(date(2026, 3, 1), time(10, 4, 30), seconds=True)
    assert seconds.until == datetime(2026, 3, 1, 9, 4, 31, tzinfo=UTC)


# -- the console page -------------------------------------------------------------------------


def log_in(app, role, slug="borne"):
    with app.app_context():
        user = staff.create(
            db.session, library(slug), f"{role}.{slug}@bibliotheek.example", "Femke", role, PASSWORD
        )
        db.session.commit()
        email = user.email
    client = app.test_client()
    response = client.post(
        "/admin/login",
        data={
            "email": email,
            "password": PASSWORD,
            "csrf_token": csrf_token(client, "/admin/login"),
        },
    )
    assert response.status_code == 303
    return client


def audit_entries(app):
    with app.app_context():
        return [
            (e.action, e.subject_id, e.detail)
            for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


def ask(client, email, day, moment_time=""):
    data = {"email": email, "date": day, "time": moment_time}
    data["csrf_token"] = csrf_token(client, "/admin/auditor")
    return client.post("/admin/auditor", data=data)


def text_of(response):
    """The page's HTML on one line."""
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


def words(html):
    """What a reader sees of some HTML: the text without tags."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


def purpose_part(page, code):
    """The words of one purpose's part of the answer."""
    return words(page.split(f'id="purpose-{code}"')[1].split("</article>")[0])


@pytest.mark.parametrize("role", ["privacy_officer", "admin"])
def test_the_page_answers_for_an_address_and_a_date_in_dutch(app, role):
    subject_id = history_of_jan(app)
    client = log_in(app, role)
    form = client.get("/admin/auditor")
    assert form.status_code == 200
    page = text_of(form)
    assert "Toestemming op datum" in page
    # Today (in Amsterdam) is the default date.
    assert f'value="{ledger.local_today().isoformat()}"' in page

    asked = ask(client, "Jan@Example.nl", "19-03-2026")
    assert asked.status_code == 303
    assert asked.headers["Location"] == f"/admin/auditor?subject={subject_id}&date=2026-03-19"
    assert "jan@example.nl" not in asked.headers["Location"]
    answer = client.get(asked.headers["Location"])
    assert answer.status_code == 200
    page = text_of(answer)
    assert "jan@example.nl aan het eind van 19 maart 2026" in words(page)
    newsletter = purpose_part(page, "newsletter")
    assert "Toen: Toestemming ingetrokken" in newsletter
    assert "sinds 10 maart 2026, 15:00:00" in newsletter
    assert "Nu: Toestemming gegeven" in newsletter
    assert "Aangemeld (wacht op bevestiging)" in newsletter
    assert "Aanmeldformulier op de website" in newsletter
    assert "Afmelden met één klik in het mailprogramma" in newsletter
    assert "203.0.113.7" in newsletter
    assert "Ja, stuur mij de nieuwsbrief van Bibliotheek Borne" in newsletter
    assert "Nederlands, versie 1" in newsletter
    assert "Na dit moment nog 2 gebeurtenissen" in newsletter
    acquisitions = purpose_part(page, "acquisitions")
    assert "Vastgelegd door medewerker" in acquisitions
    assert "Aan de balie" in acquisitions
    assert "vroeg ernaar" in acquisitions
    dm = purpose_part(page, "direct_marketing")
    assert "Toen: Geen toestemming: nooit gevraagd" in dm
    assert "Nu: Bezwaar gemaakt" in dm
    # Times in Amsterdam, to the second, never with microseconds.
    assert not re.search(r"\d\d:\d\d:\d\d[.,]\d", page)
    assert "Femke" in page  # who looked it up, on the print too


def test_the_page_in_english_and_at_a_minute(app):
    subject_id = history_of_jan(app)
    client = log_in(app, "privacy_officer")
    asked = ask(client, "jan@example.nl", "2026-03-10", "14:59")
    assert asked.headers["Location"].endswith("&date=2026-03-10&time=14:59")
    page = text_of(client.get(asked.headers["Location"] + "&lang=en"))
    assert "Consent on a date" in page
    assert "jan@example.nl on 10 March 2026 at 14:59" in words(page)
    newsletter = purpose_part(page, "newsletter")
    assert "Then: Consent given" in newsletter
    assert "Signup form on the website" in newsletter
    assert "Yes, send me" not in newsletter  # the text shown was the Dutch one
    assert "Dutch, version 1" in newsletter
    assert "After that moment: 3 more events" in newsletter
    assert "Times are Dutch time (Europe/Amsterdam)." in page
    assert f"number {subject_id}" in words(page)


def test_opening_it_is_audited(app):
    subject_id = history_of_jan(app)
    client = log_in(app, "privacy_officer")
    client.get(ask(client, "jan@example.nl", "2026-03-19").headers["Location"])
    client.get(f"/admin/auditor?subject={subject_id}&date=2026-03-10&time=14:59")
    assert audit_entries(app) == [
        ("auditor_view", subject_id, "2026-03-19"),
        ("auditor_view", subject_id, "2026-03-10 14:59"),
    ]
    # The person sees it in their own list of who looked, in member words.
    with app.test_request_context():
        from consentsvc.web.labels import staff_action

        assert (
            staff_action("auditor_view")
            == "Heeft opgezocht waar je op een bepaalde datum toestemming voor had gegeven"
        )


def test_an_unknown_address_is_said_plainly_and_audited(app):
    client = log_in(app, "privacy_officer")
    response = ask(client, "niemand@example.nl", "2026-03-19")
    assert response.status_code == 200
    page = text_of(response)
    assert "Bibliotheek Borne kent geen persoon met dit adres." in page
    assert audit_entries(app) == [("auditor_view", None, "2026-03-19 · unknown address")]
    assert "niemand@example.nl" not in str(audit_entries(app))


def test_an_erased_address_says_it_is_suppressed(app):
    subject_id = history_of_jan(app)
    with app.app_context():
        jan = db.session.get(Subject, subject_id)
        ledger.erase(db.session, jan, suppression_key=KEY, actor="staff:1", identification="pas")
        db.session.commit()
    client = log_in(app, "privacy_officer")
    page = text_of(ask(client, "jan@example.nl", "2026-03-19"))
    assert "kent geen persoon met dit adres" in page
    assert "nooit meer gemaild" in page
    assert "(gewist)" in page
    # From the person's page (by number) the history still shows.
    answer = words(text_of(client.get(f"/admin/auditor?subject={subject_id}&date=2026-03-19")))
    assert f"Gewiste persoon {subject_id} aan het eind van 19 maart 2026" in answer
    assert "Toen: Toestemming ingetrokken" in answer
    assert "jan@example.nl" not in answer


@pytest.mark.parametrize(
    ("day", "moment_time", "message"),
    [
        ("gisteren", "", "Geef de datum als dd-mm-jjjj"),
        ("2026-02-30", "", "Geef de datum als dd-mm-jjjj"),
        ("2099-01-01", "", "Kies een moment dat voorbij is"),
        ("2026-03-19", "25:00", "Geef de tijd als uu:mm"),
    ],
)
def test_a_bad_date_is_refused_in_dutch_and_looks_at_nothing(app, day, moment_time, message):
    history_of_jan(app)
    client = log_in(app, "privacy_officer")
    response = ask(client, "jan@example.nl", day, moment_time)
    assert response.status_code == 400
    page = text_of(response)
    assert message in page
    assert 'value="jan@example.nl"' in page  # what was typed stays
    assert 'id="purpose-newsletter"' not in page
    assert audit_entries(app) == []


def test_a_bad_date_in_english_and_a_bad_address(app):
    subject_id = history_of_jan(app)
    client = log_in(app, "privacy_officer")
    response = ask(client, "geen adres", "2026-03-19")
    assert response.status_code == 400
    assert "Geef het e-mailadres van de persoon" in text_of(response)
    response = client.get(f"/admin/auditor?subject={subject_id}&date=nope&lang=en")
    assert response.status_code == 400
    assert "Give the date as dd-mm-yyyy, for example 03-03-2026." in text_of(response)
    assert audit_entries(app) == []


def test_desk_may_not_and_sees_no_link(app):
    subject_id = history_of_jan(app)
    desk = log_in(app, "desk")
    assert desk.get("/admin/auditor").status_code == 403
    assert desk.get(f"/admin/auditor?subject={subject_id}").status_code == 403
    token = csrf_token(desk, "/admin/")
    response = desk.post(
        "/admin/auditor",
        data={"email": "jan@example.nl", "date": "2026-03-19", "csrf_token": token},
    )
    assert response.status_code == 403
    assert "/admin/auditor" not in desk.get(f"/admin/subjects/{subject_id}").get_data(as_text=True)
    assert [a for a, *_ in audit_entries(app)] == ["view"]


def test_the_person_page_and_the_navigation_lead_there(app):
    subject_id = history_of_jan(app)
    client = log_in(app, "privacy_officer")
    page = client.get(f"/admin/subjects/{subject_id}").get_data(as_text=True)
    assert f'href="/admin/auditor?subject={subject_id}"' in page
    assert 'href="/admin/auditor"' in page
    # The link answers for today at once.
    answer = words(text_of(client.get(f"/admin/auditor?subject={subject_id}")))
    assert "aan het eind van" in answer
    assert "Toen: Toestemming gegeven" in answer


def test_another_library_s_person_is_not_found(app):
    subject_id = history_of_jan(app)
    client = log_in(app, "privacy_officer", slug="zoetermeer")
    assert client.get(f"/admin/auditor?subject={subject_id}").status_code == 404
    assert client.get("/admin/auditor?subject=abc").status_code == 404
    page = text_of(ask(client, "jan@example.nl", "2026-03-19"))
    assert "Bibliotheek Zoetermeer kent geen persoon met dit adres." in page


def test_the_print_stylesheet_hides_the_console_around_the_answer(client):
    # In site.css: a stylesheet of the page's own would be lost when htmx swaps the page in.
    with client.get("/static/css/site.css") as response:
        site = response.get_data(as_text=True)
    first, auditor = site.split("@media print")[1:3]
    for hidden in ("header.site nav", "footer.site", ".no-print", "form"):
        assert hidden in first.split("}\n/*")[0]
    assert ".auditor-events > li { break-inside: avoid;" in auditor


# -- the chain and its anchors ------------------------------------------------------------------


def anchor_on(day, hour=4):
    from consentsvc import anchors

    with time_machine.travel(at(day, hour), tick=False):
        made = anchors.anchor_daily(db.session, at(day, hour), AMSTERDAM)
    db.session.commit()
    return {a.library_id: a for a in made}


def test_each_event_shows_its_chain_place_receipt_and_anchors(app):
    from consentsvc import receipts
    from consentsvc.models import ConsentEvent

    with app.app_context():
        borne = library()
        with time_machine.travel(at(date(2026, 3, 1)), tick=False) as clock:
            piet = ledger.subject_for(db.session, borne, "piet@example.nl", "nl")
            ledger.grant(db.session, piet, "acquisitions", channel="staff", actor="staff:1")
            db.session.commit()
        first = anchor_on(date(2026, 3, 2))[borne.id]
        with time_machine.travel(at(date(2026, 3, 10)), tick=False) as clock:
            ledger.withdraw(db.session, piet, "acquisitions", channel="one_click")
            clock.move_to(at(date(2026, 3, 11)))
            ledger.object_to(db.session, piet, "direct_marketing", channel="preference_centre")
            db.session.commit()
        second = anchor_on(date(2026, 3, 12))[borne.id]
        with time_machine.travel(at(date(2026, 3, 20)), tick=False):
            ledger.grant(db.session, piet, "acquisitions", channel="staff", actor="staff:1")
            db.session.commit()
        purposes, _ = view(app, piet.id, Moment(date(2026, 3, 21)))
        granted, withdrawn, again = purposes["acquisitions"].events
        [objection] = purposes["direct_marketing"].events
        for record in (granted, withdrawn, again, objection):
            event = db.session.get(ConsentEvent, record.id)
            assert (record.seq, record.hash) == (event.seq, event.hash)
            assert record.evidence_commitment == event.evidence_commitment
            assert receipts.has_receipt(event)
            assert record.receipt_id == receipts.receipt_id(event)
        assert granted.seq < withdrawn.seq < objection.seq < again.seq
        # The first statement after an event includes it; the latest includes all before it.
        assert (granted.first_anchor.id, granted.latest_anchor.id) == (first.id, second.id)
        assert (withdrawn.first_anchor.id, withdrawn.latest_anchor.id) == (second.id, second.id)
        assert objection.first_anchor.id == second.id
        assert (again.first_anchor, again.latest_anchor) == (None, None)
        # A request has no receipt.
        signup = ledger.signup(
            db.session, borne, "piet@example.nl", ["newsletter"], language="nl",
            channel="web_form",
        )  # fmt: skip
        db.session.commit()
        purposes, _ = view(app, signup.subject.id, Moment(ledger.local_today()))
        assert purposes["newsletter"].events[-1].receipt_id is None


def test_the_page_shows_the_chain_and_the_anchor(app):
    subject_id = history_of_jan(app)
    with app.app_context():
        borne_id = library().id
        anchor = anchor_on(date(2026, 3, 25))[borne_id]
        head = anchor.consent_hash
        # After the statement: not in it.
        with time_machine.travel(at(date(2026, 4, 5)), tick=False):
            jan = db.session.get(Subject, subject_id)
            ledger.grant(db.session, jan, "direct_marketing", channel="preference_centre")
        db.session.commit()
    client = log_in(app, "privacy_officer")
    page = text_of(client.get(f"/admin/auditor?subject={subject_id}&date=2026-04-06"))
    newsletter = purpose_part(page, "newsletter")
    assert "gebeurtenis 1 van de toestemmingsketen van de bibliotheek" in newsletter
    assert "In de ondertekende ketenverklaring van 25 maart 2026, 04:00:00" in newsletter
    assert head in newsletter
    assert "Ondertekend ontvangstbewijs" in newsletter
    objection = purpose_part(page, "direct_marketing")
    assert "Nog niet verankerd: komt in de volgende dagelijkse ketenverklaring." in objection
    english = words(
        text_of(client.get(f"/admin/auditor?subject={subject_id}&date=2026-04-06&lang=en"))
    )
    assert "Not yet anchored: it will be in the next daily head statement." in english
    assert "In the signed head statement of 25 March 2026, 04:00:00" in english


def test_receipts_are_shown_for_the_events_that_have_one():
    from consentsvc import receipts
    from consentsvc.ledger.auditor import RECEIPT_ACTIONS

    assert set(RECEIPT_ACTIONS) == set(receipts.RECEIPT_ACTIONS)


def test_a_receipt_can_be_downloaded_for_the_auditor(app):
    subject_id = history_of_jan(app)
    client = log_in(app, "privacy_officer")
    page = client.get(ask(client, "jan@example.nl", "2026-03-19").headers["Location"])
    links = re.findall(r'href="(/admin/subjects/\d+/receipts/[0-9a-f-]+)"', text_of(page))
    # Given, withdrawn, given again before the 19th … and the acquisitions consent.
    assert len(links) >= 3
    answer = client.get(links[0])
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="receipt-')
    document = answer.json
    with app.app_context():
        from consentsvc import signing

        payload = signing.verify(document, signing.published_keys(db.session))
    assert payload["pii_principal"]["subject_id"] == subject_id
    assert payload["receipt_id"] in links[0]
    assert audit_entries(app)[-1] == ("receipt_download", subject_id, payload["receipt_id"])
    # Not a receipt of this person: not found; and the desk may not.
    other = links[0].replace(f"/subjects/{subject_id}/", f"/subjects/{subject_id + 99}/")
    assert client.get(other).status_code == 404
    unknown = links[0][: -len(payload["receipt_id"])] + "00000000-0000-5000-8000-000000000000"
    assert client.get(unknown).status_code == 404
    assert log_in(app, "desk").get(links[0]).status_code == 403
