"""The console's reports: monthly aggregates counted by the database, drawn as SVG without
script, with their numbers as a table and as CSV; no person in any of them."""

import base64
import hashlib
import re
from datetime import UTC, datetime

import time_machine
from sqlalchemy import func, select

from consentsvc import ledger, reports
from consentsvc.extensions import db
from consentsvc.models import ConsentState, Library, Suppression

from .test_admin import log_in

MONTHS = ["2026-09", "2026-10", "2026-11", "2026-12"]


def _history(app) -> None:
    """September: two sign up and confirm. October: one withdraws by one click, a third
    signs up and never confirms. November: staff record one more. December: one objects."""
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))

        def at(day: str):
            return time_machine.travel(datetime.fromisoformat(day).replace(tzinfo=UTC), tick=False)

        people = {}
        with at("2026-09-10T10:00"):
            for email in ("a@example.nl", "b@example.nl"):
                result = ledger.signup(
                    db.session, borne, email, ["newsletter"], language="nl",
                    channel=ledger.Channel.WEB_FORM,
                )  # fmt: skip
                ledger.confirm(db.session, result.subject, result.request_ids)
                people[email] = result.subject
        with at("2026-10-03T10:00"):
            ledger.withdraw(
                db.session, people["a@example.nl"], "newsletter", channel=ledger.Channel.ONE_CLICK
            )
            ledger.signup(
                db.session, borne, "c@example.nl", ["newsletter"], language="nl",
                channel=ledger.Channel.WEB_FORM,
            )  # fmt: skip
        with at("2026-11-20T10:00"):
            person = ledger.subject_for(db.session, borne, "d@example.nl", "nl")
            ledger.grant(db.session, person, "newsletter", channel=ledger.Channel.STAFF)
        with at("2026-12-01T10:00"):
            ledger.object_to(
                db.session, people["b@example.nl"], "direct_marketing",
                channel=ledger.Channel.PREFERENCE_CENTRE,
            )  # fmt: skip
            db.session.add(
                Suppression(library_id=borne.id, email_hmac="x" * 64, reason="hard_bounce")
            )
        db.session.commit()


def test_the_monthly_figures_follow_the_history(app):
    _history(app)
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        newsletter = ledger.purpose_by_code(borne, "newsletter")
        events = reports.event_counts(db.session, borne.id, MONTHS)
        signups = reports.signups_and_confirmations(events, MONTHS, newsletter.id)
        assert signups.values == {"signups": [2, 1, 0, 0], "confirmations": [2, 0, 0, 0]}
        ends = reports.withdrawals_by_channel(events, MONTHS)
        assert ends.values == {"one_click": [0, 1, 0, 0], "preference_centre": [0, 0, 0, 1]}
        given = reports.new_consents(events, MONTHS, {newsletter.id: "Nieuwsbrief"})
        assert given.values == {"Nieuwsbrief": [2, 0, 1, 0]}
        held = reports.people_with_consent(db.session, borne.id, MONTHS, {newsletter.id: "n"})
        assert held.values == {"n": [2, 1, 2, 2]}
        # The last month is what the states say now.
        now = db.session.scalar(
            select(func.count()).select_from(ConsentState)
            .where(ConsentState.purpose_id == newsletter.id, ConsentState.status == "granted")
        )  # fmt: skip
        assert held.values["n"][-1] == now
        assert reports.suppressions_by_reason(db.session, borne.id) == {"hard_bounce": 1}
        # Before the months shown: the starting point carries over.
        later = reports.people_with_consent(
            db.session, borne.id, ["2026-11", "2026-12"], {newsletter.id: "n"}
        )
        assert later.values == {"n": [2, 2]}


def test_last_months_cross_the_year():
    assert reports.last_months(datetime(2027, 2, 14).date(), 4) == [
        "2026-11", "2026-12", "2027-01", "2027-02",
    ]  # fmt: skip


def test_the_reports_page_charts_tables_and_csv_show_counts_only(app):
    _history(app)
    with time_machine.travel(datetime(2026, 12, 15, tzinfo=UTC), tick=False):
        officer = log_in(app, "privacy_officer")
        page = officer.get("/admin/reports").get_data(as_text=True)
        assert "<h1>Rapporten</h1>" in page
        assert "Aanmeldingen voor de nieuwsbrief en bevestigingen (double opt-in)" in page
        assert '<img src="/admin/reports/signups.svg"' in page
        assert (
            '<th scope="row"><time datetime="2026-10">okt 2026</time></th>'
            '<td class="number">1</td><td class="number">0</td>' in page
        )
        for person in ("a@example.nl", "b@example.nl", "c@example.nl", "d@example.nl"):
            assert person not in page
        chart = officer.get("/admin/reports/withdrawals.svg")
        assert chart.mimetype == "image/svg+xml"
        svg = chart.get_data(as_text=True)
        assert "<script" not in svg and "Eén klik in het mailprogramma" in svg
        assert ' style="' not in svg
        # Its style sheet by its hash, and nothing else.
        css = re.search(r"<style[^>]*>(.*?)</style>", svg, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        assert chart.headers["Content-Security-Policy"] == (
            f"default-src 'none'; style-src 'sha256-{digest}'; frame-ancestors 'none'"
        )
        csv = officer.get("/admin/reports/signups.csv")
        assert csv.headers["Content-Disposition"] == 'attachment; filename="borne-signups.csv"'
        lines = csv.get_data(as_text=True).splitlines()
        assert lines[0] == "Maand,Aanmeldingen,Bevestigd via de mail"
        assert "2026-09,2,2" in lines and "2026-10,1,0" in lines
        assert officer.get("/admin/reports/nothing.csv").status_code == 404
        assert log_in(app, "desk").get("/admin/reports").status_code == 403


def test_a_purpose_title_like_a_formula_stays_text_in_the_csv(app):
    """Titles are typed by admins; a spreadsheet must not run one as a formula."""
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        newsletter = next(p for p in borne.purposes if p.code == "newsletter")
        ledger.current_text(newsletter, "nl").title = '=HYPERLINK("http://x.example")'
        db.session.commit()
    officer = log_in(app, "privacy_officer")
    heading = officer.get("/admin/reports/consent.csv").get_data(as_text=True).splitlines()[0]
    assert heading.startswith("Maand,")
    assert "'=HYPERLINK(" in heading and ',"=HYPERLINK(' not in heading
