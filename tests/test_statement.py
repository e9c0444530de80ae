"""Privacy-statement changes announced: publishing a version in the console, the notice to
the newsletter's current subscribers (their language, throttled, one-click unsubscribe,
withdrawals before and during sending respected, never twice), the footer link on member
pages, and the preference centre's notice until the member has read it."""

import email
import html
import re
from datetime import UTC, date, datetime, timedelta
from email import policy

import pytest
import time_machine
from sqlalchemy import func, select

from consentsvc import ledger
from consentsvc.extensions import db
from consentsvc.ledger import Channel
from consentsvc.models import AuditEntry, Library, OutboxMessage, PrivacyStatement, Subject

from .conftest import csrf_token, link_in, work_outbox
from .test_admin import audit_actions, log_in

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
URL = "https://www.bibliotheekborne.nl/privacy-2026"
SUMMARY_NL = "We bewaren je gegevens nu 5 jaar.\nEn je kunt toegang vragen voor je gezin."
SUMMARY_EN = "We now keep your data for 5 years.\nAnd you can ask for family access."


def library(slug="borne"):
    return db.session.scalar(select(Library).where(Library.slug == slug))


def subscribe(app, email_address, language="nl", codes=("newsletter",)):
    """A member who signed up on the website and confirmed."""
    with app.app_context():
        result = ledger.signup(
            db.session, library(), email_address, list(codes), language=language,
            channel=Channel.WEB_FORM,
        )  # fmt: skip
        ledger.confirm(db.session, result.subject, result.request_ids)
        db.session.commit()
        return result.subject.id


def publish(app, per_minute=0, **fields):
    """Publish the next version through the ledger, as the console does after confirmation."""
    values = dict(url=URL, effective_on=date(2026, 12, 15), summary_nl=SUMMARY_NL,
                  summary_en=SUMMARY_EN) | fields  # fmt: skip
    with app.app_context():
        lib = library()
        draft = ledger.check_statement_draft(db.session, lib, **values)
        statement = ledger.publish_statement(
            db.session, lib, draft, actor="test",
            expected_version=ledger.next_statement_version(db.session, lib), per_minute=per_minute,
        )  # fmt: skip
        db.session.commit()
        return statement.id


def notices(app):
    with app.app_context():
        return db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.event_type == "mail.statement_notice")
            .order_by(OutboxMessage.id)
        ).all()


def notice_mails(outbox):
    return [m for m in outbox if "privacy statement" in m.subject]


def state(app, subject_id, code="newsletter"):
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        purpose = ledger.purpose_by_code(subject.library, code)
        return ledger.status_of(db.session, subject, purpose)


# -- the notice ---------------------------------------------------------------------------------


def test_one_notice_per_current_subscriber_in_their_language(app, outbox):
    with time_machine.travel(NOW, tick=False) as clock:
        subscribe(app, "jan@example.nl", "nl")
        subscribe(app, "emma@example.nl", "en")
        stopped = subscribe(app, "piet@example.nl")
        subscribe(app, "kees@example.nl", codes=("acquisitions",))  # no newsletter
        restricted = subscribe(app, "ria@example.nl")
        erased = subscribe(app, "olaf@example.nl")
        with app.app_context():
            ledger.withdraw(db.session, db.session.get(Subject, stopped), "newsletter",
                            channel=Channel.EMAIL_LINK)  # fmt: skip
            ledger.restrict(db.session, db.session.get(Subject, restricted))
            ledger.erase(db.session, db.session.get(Subject, erased), actor="staff:1",
                         suppression_key=app.config["SUPPRESSION_KEY"],
                         identification="card")  # fmt: skip
            db.session.commit()
        # Nobody signed up for a pending request gets one either.
        with app.app_context():
            ledger.signup(db.session, library(), "anna@example.nl", ["newsletter"],
                          language="nl", channel=Channel.WEB_FORM)  # fmt: skip
            db.session.commit()
        clock.shift(timedelta(minutes=1))
        publish(app)
    assert len(notices(app)) == 2
    mails = {m.recipients[0]: m for m in notice_mails(outbox)}
    assert set(mails) == {"jan@example.nl", "emma@example.nl"}
    dutch, english = mails["jan@example.nl"], mails["emma@example.nl"]
    assert dutch.subject == "Bibliotheek Borne verandert zijn privacy statement"
    assert "De nieuwe versie geldt vanaf 15 december 2026." in dutch.body
    assert SUMMARY_NL in dutch.body and SUMMARY_EN not in dutch.body
    assert URL in dutch.body and URL in dutch.html
    assert "Mijn mailinstellingen aanpassen" in dutch.html
    assert english.subject == "Bibliotheek Borne changes its privacy statement"
    assert "The new version applies from 15 December 2026." in english.body
    assert SUMMARY_EN in english.body and SUMMARY_NL not in english.body
    # The centre's link is made at sending time and works.
    client = app.test_client()
    page = client.get(link_in(dutch, "preferences")).get_data(as_text=True)
    assert "Ons privacy statement is veranderd" in page
    # Nothing of the person or a link waits in the queue.
    for message in notices(app):
        assert set(message.payload) == {"subject_id", "mail", "statement_id"}


def test_nobody_who_withdrew_before_publishing_gets_it(app, outbox):
    kept = subscribe(app, "jan@example.nl")
    left = subscribe(app, "piet@example.nl")
    with app.app_context():
        subject = db.session.get(Subject, left)
        ledger.withdraw(db.session, subject, "newsletter", channel=Channel.PREFERENCE_CENTRE)
        db.session.commit()
    publish(app)
    assert [m.payload["subject_id"] for m in notices(app)] == [kept]
    assert [m.recipients for m in notice_mails(outbox)] == [["jan@example.nl"]]


def test_a_withdrawal_while_the_notices_are_leaving_is_respected(app_factory):
    """Two subscribers, one notice a minute: the worker sends the first; the second person
    unsubscribes before their turn; the worker's next turn sends them nothing."""
    from consentsvc.extensions import mail

    app = app_factory(STATEMENT_NOTICE_PER_MINUTE=1)
    with time_machine.travel(NOW, tick=False) as clock:
        first = subscribe(app, "jan@example.nl")
        second = subscribe(app, "piet@example.nl")
        third = subscribe(app, "ria@example.nl")
        client = log_in(app, "admin")
        page = client.post("/admin/privacy-statement", data=form(client)).get_data(as_text=True)
        done = client.post("/admin/privacy-statement/publish", data=confirmation(page))
        assert done.status_code == 303
        assert [m.payload["subject_id"] for m in notices(app)] == [first, second, third]
        with mail.record_messages() as sent:
            work_outbox(app)
            assert [m.recipients[0] for m in sent] == ["jan@example.nl"]
            # Piet stops the newsletter with the unsubscribe link of an earlier newsletter;
            # Ria's data is frozen (restriction) at the desk.
            with app.app_context():
                ledger.withdraw(db.session, db.session.get(Subject, second), "newsletter",
                                channel=Channel.ONE_CLICK)  # fmt: skip
                ledger.restrict(db.session, db.session.get(Subject, third))
                db.session.commit()
            clock.shift(timedelta(minutes=3))
            work_outbox(app)
            assert [m.recipients[0] for m in sent] == ["jan@example.nl"]
    # Their notices are done with, not waiting to be tried again.
    assert all(m.delivered_at is not None for m in notices(app))
    assert state(app, second) == "withdrawn"


def test_throttling_spreads_the_notices_over_minutes(app_factory):
    app = app_factory(STATEMENT_NOTICE_PER_MINUTE=2)
    for i in range(5):
        subscribe(app, f"p{i}@example.nl")
    client = log_in(app, "admin")
    page = client.post("/admin/privacy-statement", data=form(client)).get_data(as_text=True)
    assert "De mails gaan weg met 2 per minuut." in page
    client.post("/admin/privacy-statement/publish", data=confirmation(page))
    messages = notices(app)
    assert len(messages) == 5
    start = messages[0].next_attempt_at
    offsets = [round((m.next_attempt_at - start).total_seconds() / 60) for m in messages]
    assert offsets == [0, 0, 1, 1, 2]


def test_the_notice_has_one_click_unsubscribe_headers_that_work(app, outbox):
    subject_id = subscribe(app, "jan@example.nl")
    publish(app)
    (message,) = notice_mails(outbox)
    headers = message.extra_headers
    link = re.fullmatch(r"<http://localhost(/unsubscribe/[A-Za-z0-9_.\-]+)>",
                        headers["List-Unsubscribe"]).group(1)  # fmt: skip
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Id"] == '"Nieuwsbrief" <newsletter.borne.lists.example.org>'
    # On the wire the link stays readable on one line (not folded into encoded words).
    with app.app_context():
        raw = message.as_bytes()
    assert f"List-Unsubscribe: <http://localhost{link}>".encode() in raw
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["List-Unsubscribe"] == headers["List-Unsubscribe"]
    # The same link as the unsubscribe link in the mail's text.
    assert link_in(message, "unsubscribe") == link
    # RFC 8058: a POST without cookie or CSRF token stops the newsletter.
    one_click = app.test_client(use_cookies=False).post(
        link, data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )  # fmt: skip
    assert one_click.status_code == 200
    assert state(app, subject_id) == "withdrawn"


def test_publishing_or_the_worker_never_doubles_a_notice(app, outbox):
    subscribe(app, "jan@example.nl")
    statement_id = publish(app)
    with app.app_context():
        statement = db.session.get(PrivacyStatement, statement_id)
        assert ledger.queue_statement_notices(db.session, statement) == 0
        # A stale confirmation (the same form sent again) publishes nothing.
        draft = ledger.check_statement_draft(
            db.session, library(), url=URL, effective_on=date(2026, 12, 15),
            summary_nl=SUMMARY_NL, summary_en=SUMMARY_EN, today=date(2026, 12, 1),
        )  # fmt: skip
        with pytest.raises(ledger.StatementRefused) as refused:
            ledger.publish_statement(db.session, library(), draft, actor="t", expected_version=1)
        assert refused.value.problems == {"version": "already_published"}
        db.session.rollback()
        db.session.commit()
    assert len(notice_mails(outbox)) == 1
    work_outbox(app)
    assert len(notice_mails(outbox)) == 1
    assert len(notices(app)) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(PrivacyStatement)) == 1


# -- the console --------------------------------------------------------------------------------


def form(client, **fields):
    return {
        "csrf_token": csrf_token(client, "/admin/privacy-statement"),
        "url": URL, "effective_on": "2026-12-15", "summary_nl": SUMMARY_NL,
        "summary_en": SUMMARY_EN, **fields,
    }  # fmt: skip


def confirmation(page):
    """The confirmation step's form, as the browser sends it back."""
    fields = re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page)
    return {name: html.unescape(value) for name, value in fields}


def test_console_checks_confirms_with_the_count_then_publishes_and_audits(app):
    with time_machine.travel(NOW, tick=False):
        subscribe(app, "jan@example.nl")
        subscribe(app, "emma@example.nl", "en")
        client = log_in(app, "admin")
        listing = client.get("/admin/privacy-statement").get_data(as_text=True)
        assert 'href="/admin/privacy-statement"' in listing  # in the console's navigation
        assert "Er geldt nog geen versie." in listing
        checked = client.post("/admin/privacy-statement", data=form(client))
        page = checked.get_data(as_text=True)
        assert checked.status_code == 200
        assert "Versie 1 publiceren?" in page
        assert "2 personen die de nieuwsbrief krijgen, krijgen hierover een mail." in page
        # The check step stores nothing.
        assert notices(app) == []
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(PrivacyStatement)) == 0
        done = client.post("/admin/privacy-statement/publish", data=confirmation(page))
        assert done.status_code == 303
        listing = client.get(done.headers["Location"]).get_data(as_text=True)
        # The same confirmation again: refused, nothing published or queued twice.
        again = client.post("/admin/privacy-statement/publish", data=confirmation(page))
    assert "Versie 1 is gepubliceerd. 2 abonnees krijgen het bericht." in listing
    assert "geldt vanaf 15 december 2026" in listing
    assert "door Anna · 2 berichten" in listing  # the staff member's name, not their id
    assert SUMMARY_NL.split("\n")[0] in listing
    assert len(notices(app)) == 2
    assert audit_actions(app)[-1] == "statement.publish"
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()))
        assert entry.detail == "version 1, from 2026-12-15, 2 notices"
        statement = db.session.scalar(select(PrivacyStatement))
        assert statement.summary_nl == SUMMARY_NL  # line breaks kept through the two steps
        assert statement.published_by.startswith("staff:")
    assert again.status_code == 400
    assert "Iemand heeft intussen een versie gepubliceerd." in again.get_data(as_text=True)
    assert len(notices(app)) == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"url": "http://www.bibliotheekborne.nl/privacy"},
            "Het adres moet beginnen met https://.",
        ),
        ({"url": ""}, "Vul het adres van het privacy statement in."),
        ({"url": "https://"}, "Dit is geen webadres zoals"),
        ({"url": "https://www.bibliotheekborne.nl/" + "a" * 500}, "Het adres is te lang"),
        ({"summary_nl": "  "}, "Schrijf in het Nederlands wat er veranderd is."),
        ({"summary_en": ""}, "Schrijf in het Engels wat er veranderd is."),
        (
            {"summary_nl": "x" * 601},
            "De Nederlandse samenvatting is te lang: hoogstens 600 tekens.",
        ),
        ({"summary_en": "a\x07b"}, "De Engelse samenvatting bevat tekens die geen tekst zijn."),
        ({"effective_on": "2020-01-01"}, "De datum ligt te ver terug: hoogstens 30 dagen geleden."),
        ({"effective_on": "2062-01-01"}, "De datum ligt te ver vooruit"),
        ({"effective_on": "15-12-2026x"}, "Vul de datum in als dag, maand en jaar."),
        ({"effective_on": ""}, "Vul de datum in waarop de nieuwe versie gaat gelden."),
    ],
)
@pytest.mark.parametrize("step", ["/admin/privacy-statement", "/admin/privacy-statement/publish"])
def test_console_refuses_bad_input_in_staff_words_and_changes_nothing(app, fields, message, step):
    subscribe(app, "jan@example.nl")
    with time_machine.travel(NOW, tick=False):
        client = log_in(app, "admin")
        before = audit_actions(app)
        response = client.post(step, data=form(client, version="1", **fields))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Er is niets gepubliceerd" in page
    assert message in page
    assert 'aria-invalid="true"' in page
    # What was typed stays in the form.
    if fields.get("summary_nl", "").strip():
        assert fields["summary_nl"] in page
    assert notices(app) == []
    assert audit_actions(app) == before
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(PrivacyStatement)) == 0


def test_console_errors_in_english_and_a_date_before_the_previous_version(app):
    with time_machine.travel(NOW, tick=False):
        publish(app)
        client = log_in(app, "admin")
        client.get("/admin/privacy-statement?lang=en")
        response = client.post(
            "/admin/privacy-statement", data=form(client, effective_on="2026-12-10", url="ftp://x")
        )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Nothing was published" in page
    assert "The address must start with https://." in page
    assert "The date is before that of the previous version (15 December 2026)." in page


@pytest.mark.parametrize("role", ["desk", "privacy_officer"])
def test_the_console_page_is_for_admins_only(app, role):
    subscribe(app, "jan@example.nl")
    client = log_in(app, role)
    assert client.get("/admin/privacy-statement").status_code == 403
    token = csrf_token(client, "/admin/account")
    data = {"csrf_token": token, "url": URL, "effective_on": "2026-12-15",
            "summary_nl": "a", "summary_en": "b", "version": "1"}  # fmt: skip
    assert client.post("/admin/privacy-statement/publish", data=data).status_code == 403
    assert 'href="/admin/privacy-statement"' not in client.get("/admin/").get_data(as_text=True)
    assert notices(app) == []


# -- member pages -------------------------------------------------------------------------------


def test_member_pages_link_to_the_statement_in_effect_and_say_when_a_new_one_applies(app):
    client = app.test_client()
    with time_machine.travel(NOW, tick=False) as clock:
        # Without a statement the footer names none.
        assert "Privacy statement" not in client.get("/borne/signup").get_data(as_text=True)
        publish(
            app, url="https://www.bibliotheekborne.nl/privacy-1", effective_on=date(2026, 12, 1)
        )
        clock.shift(timedelta(days=1))
        publish(app, effective_on=date(2026, 12, 15))
        page = client.get("/borne/signup").get_data(as_text=True)
        footer = page[page.index('<footer class="site">') :]
        assert (
            '<a href="https://www.bibliotheekborne.nl/privacy-1">'
            "Privacy statement van Bibliotheek Borne</a>"
        ) in footer
        assert "Vanaf 15 december 2026 geldt een nieuw privacy statement." in footer
        assert f'<a href="{URL}">Lees de nieuwe versie</a>' in footer
        # Other libraries' pages name none of Borne's.
        other = client.get("/zoetermeer/signup").get_data(as_text=True)
        assert "privacy-1" not in other and URL not in other
        # Every member page of the library, the English ones too.
        english = app.test_client().get("/borne/preferences?lang=en").get_data(as_text=True)
        assert "Privacy statement of Bibliotheek Borne" in english
        assert "A new privacy statement applies from 15 December 2026." in english
        # From its date the new version is the one linked, with no "from" any more.
        clock.move_to(datetime(2026, 12, 15, 8, 0, tzinfo=UTC))
        later = client.get("/borne/signup").get_data(as_text=True)
        assert f'<a href="{URL}">Privacy statement van Bibliotheek Borne</a>' in later
        assert "privacy-1" not in later and "geldt een nieuw" not in later


def test_the_footer_reads_the_version_in_effect_and_the_newest_announced_in_one_query(app):
    """Two versions announced ahead: the footer links the one in effect and names the newest;
    every member page asks the database once for both."""
    from sqlalchemy import event

    with time_machine.travel(NOW, tick=False) as clock:
        with app.app_context():
            assert ledger.statements_in_effect_and_upcoming(db.session, library()) == (None, None)
        publish(
            app, url="https://www.bibliotheekborne.nl/privacy-1", effective_on=date(2026, 12, 1)
        )
        clock.shift(timedelta(days=1))
        publish(
            app, url="https://www.bibliotheekborne.nl/privacy-2", effective_on=date(2026, 12, 15)
        )
        publish(
            app, url="https://www.bibliotheekborne.nl/privacy-3", effective_on=date(2026, 12, 20)
        )
        with app.app_context():
            lib = library()
            seen: list[str] = []
            event.listen(db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
            current, later = ledger.statements_in_effect_and_upcoming(db.session, lib)
            assert (current.version, later.version) == (1, 3)
            assert len(seen) == 1
            on = date(2026, 12, 16)
            current, later = ledger.statements_in_effect_and_upcoming(db.session, lib, on)
            assert (current.version, later.version) == (2, 3)
            current, later = ledger.statements_in_effect_and_upcoming(
                db.session, lib, date(2026, 12, 20)
            )
            assert (current.version, later) == (3, None)
            # Only announced, none in effect yet: no link, but the announcement.
            current, later = ledger.statements_in_effect_and_upcoming(
                db.session, lib, date(2026, 11, 30)
            )
            assert (current, later.version) == (None, 3)


def preferences_url(app, subject_id):
    from consentsvc import tokens

    with app.app_context():
        return f"/preferences/{tokens.make_preferences(subject_id)}"


def test_the_centre_shows_what_changed_until_the_member_has_read_it(app):
    client = app.test_client()
    with time_machine.travel(NOW, tick=False) as clock:
        subject_id = subscribe(app, "jan@example.nl")
        url = preferences_url(app, subject_id)
        assert 'id="statement-title"' not in client.get(url).get_data(as_text=True)
        clock.shift(timedelta(minutes=5))
        publish(app)
        clock.shift(timedelta(minutes=5))
        page = client.get(url).get_data(as_text=True)
        assert "Ons privacy statement is veranderd" in page
        assert "Vanaf 15 december 2026 geldt een nieuwe versie." in page
        assert SUMMARY_NL in page
        assert f'<a href="{URL}">Lees het nieuwe privacy statement</a>' in page
        english = app.test_client().get(url + "?lang=en").get_data(as_text=True)
        assert "Our privacy statement has changed" in english and SUMMARY_EN in english
        # Somebody who came after the version was published never knew the old one.
        newcomer = preferences_url(app, subscribe(app, "emma@example.nl"))
        assert 'id="statement-title"' not in client.get(newcomer).get_data(as_text=True)
        # "Gelezen" without JavaScript: back to the page, and the notice is gone.
        done = client.post(f"{url}/privacy-statement", data={"version": "1"})
        assert done.status_code == 303
        assert done.headers["Location"] == f"{url}?saved=statement#statement-notice"
        back = client.get(done.headers["Location"]).get_data(as_text=True)
        assert "Ons privacy statement is veranderd" not in back
        assert "Gelezen. Je ziet dit bericht niet meer." in back
        assert "Ons privacy statement is veranderd" not in client.get(url).get_data(as_text=True)
        with app.app_context():
            assert db.session.get(Subject, subject_id).statement_seen_version == 1
        # A newer version shows again; htmx puts it away with a fragment.
        clock.shift(timedelta(days=1))
        publish(app, effective_on=date(2026, 12, 20), summary_nl="Nog een verandering.")
        assert "Nog een verandering." in client.get(url).get_data(as_text=True)
        fragment = client.post(
            f"{url}/privacy-statement", data={"version": "2"}, headers={"HX-Request": "true"}
        )
        body = fragment.get_data(as_text=True)
        assert fragment.status_code == 200
        assert '<div id="statement-notice" data-keep-in-view>' in body
        assert "Gelezen. Je ziet dit bericht niet meer." in body
        assert "Nog een verandering." not in body
        assert "<html" not in body
        assert "Nog een verandering." not in client.get(url).get_data(as_text=True)


def test_reading_a_version_that_does_not_exist_records_nothing(app):
    subject_id = subscribe(app, "jan@example.nl")
    url = preferences_url(app, subject_id)
    client = app.test_client()
    for version in ("1", "0", "x", ""):
        assert client.post(f"{url}/privacy-statement", data={"version": version}).status_code == 303
    with app.app_context():
        assert db.session.get(Subject, subject_id).statement_seen_version is None
    assert client.post("/preferences/not-a-token/privacy-statement").status_code in (400, 404)


# 23:30 UTC is already the next day in the Netherlands: a demo run at night once dated the
# new version a day early.
@pytest.mark.parametrize("utc_hour", [12, 23])
def test_demo_borne_has_two_versions_and_their_notices_queued(app, utc_hour):
    runner = app.test_cli_runner()
    with time_machine.travel(datetime(2026, 12, 1, utc_hour, 30, tzinfo=UTC)):
        result = runner.invoke(args=["demo", "--people", "12"])
        today = ledger.local_today()
    assert today == date(2026, 12, 1 if utc_hour == 12 else 2)
    assert result.exit_code == 0, result.output
    with app.app_context():
        borne = library()
        versions = ledger.statement_versions(db.session, borne)
        assert [v.version for v in versions] == [2, 1]
        newest, first = versions
        assert first.effective_on < today - timedelta(days=300)
        assert newest.effective_on == today + timedelta(days=14)
        assert newest.summary_nl and newest.summary_en
        assert newest.notices == ledger.newsletter_subscriber_count(db.session, borne) > 0
        assert [
            v.version for v in ledger.statement_versions(db.session, library("zoetermeer"))
        ] == [1]
    assert len(notices(app)) == newest.notices
    # Running the demo again adds nothing.
    assert runner.invoke(args=["demo", "--people", "12"]).exit_code == 0
    assert len(notices(app)) == newest.notices
