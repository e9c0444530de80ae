"""The privacy officer's readable export and the audit log, in staff and member words."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from consentsvc import staff, tokens
from consentsvc.extensions import db
from consentsvc.models import StaffUser, Subject
from consentsvc.web import audit_words

from .test_admin import log_in, log_in_as
from .test_rights import post, rich_person

MICROSECONDS = re.compile(r"\d{2}:\d{2}:\d{2}\.\d+|\.\d{6}")
RAW_KEYS = re.compile(
    r"card_number|created_at|last_activity_at|ip_address|user_agent|granted|\bnone\b|None"
)


def main_of(page):
    return re.search(r"<main.*?</main>", page, re.S).group(0)


def text_of(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def copy_body(page):
    """The shared part of both pages: from "About you" to the end of the main part."""
    main = main_of(page)
    return text_of(main[main.index("<h2>") :])


def staff_copy(app, client, subject_id):
    done = post(client, f"/admin/subjects/{subject_id}/export", format="html", identification="pas")
    assert done.status_code == 303
    return client.get(done.headers["Location"]).get_data(as_text=True)


def test_the_export_reads_in_the_members_words_and_the_same_sentences(app):
    subject_id = rich_person(app)
    officer = log_in(app, "privacy_officer")
    page = staff_copy(app, officer, subject_id)
    assert "<title>Alles wat we bewaren over j…@example.nl" in page
    assert "<h1>Alles wat we bewaren over j…@example.nl</h1>" in page
    text = text_of(main_of(page))
    assert "Bibliotheekpas 2100012345678" in text and "card_number" not in page
    for word in ("jan.de.vries@example.nl", "2100012345678", "Browser: Firefox",
                 "Webpagina: https://www.example.nl", "vanaf internetadres 192.0.2.44",
                 "waarom: pas"):  # fmt: skip
        assert word in text, word
    assert "<strong>Nieuwsbrief</strong>: Aan" in page
    assert RAW_KEYS.search(text) is None, RAW_KEYS.search(text)
    assert MICROSECONDS.search(text) is None
    # The member's own page for the same person says the same, sentence for sentence.
    with app.test_request_context():
        prefs = f"/preferences/{tokens.make_preferences(subject_id)}/data"
    member = app.test_client().get(prefs).get_data(as_text=True)
    assert copy_body(member) == copy_body(page)


def test_the_export_in_english_uses_labels_in_words(app):
    subject_id = rich_person(app)
    officer = log_in(app, "privacy_officer")
    officer.set_cookie("lang", "en")
    page = staff_copy(app, officer, subject_id)
    assert '<html lang="en">' in page
    text = text_of(main_of(page))
    assert "Library card" in text and "card_number" not in text
    assert "Everything we keep about j…@example.nl" in page


def test_the_export_of_an_erased_person_says_so(app):
    subject_id = rich_person(app)
    officer = log_in(app, "privacy_officer")
    post(officer, f"/admin/subjects/{subject_id}/erase", identification="pas", confirm="yes")
    page = staff_copy(app, officer, subject_id)
    text = text_of(main_of(page))
    assert "een gewiste persoon" in page
    assert "zijn je gegevens gewist" in text
    assert "erased:" not in text and "None" not in text
    assert "jan.de.vries" not in page


def test_the_json_export_stays_as_it_was(app):
    subject_id = rich_person(app)
    officer = log_in(app, "privacy_officer")
    done = post(officer, f"/admin/subjects/{subject_id}/export", format="json", identification="p")
    data = officer.get(done.headers["Location"]).json
    assert data["subject"]["card_number"] == "2100012345678"
    assert {c["status"] for c in data["consents"]} >= {"granted", "none"}


# -- the audit log ---------------------------------------------------------------------------


def named_staff(app, name, role, email):
    from consentsvc.models import Library

    from .test_admin import PASSWORD

    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        user = staff.create(db.session, library, email, name, role, PASSWORD)
        db.session.commit()
        return user.id


def entries(page):
    ol = re.search(r'<ol class="history" id="audit-entries">(.*?)</ol>', page, re.S).group(1)
    return [text_of(li) for li in re.findall(r"<li>(.*?)</li>", ol, re.S)]


@pytest.fixture
def log(app):
    """Femke (desk) opened Jan's record; Piet (desk) opened Els's; the officer looks."""
    jan = rich_person(app)
    els = rich_person(app, "els@example.nl")
    femke_id = named_staff(app, "Femke", "desk", "femke@bibliotheek.example")
    named_staff(app, "Piet", "desk", "piet@bibliotheek.example")
    log_in_as(app, "femke@bibliotheek.example").get(f"/admin/subjects/{jan}")
    piet = log_in_as(app, "piet@bibliotheek.example")
    piet.get(f"/admin/subjects/{els}")
    piet.get("/admin/?q=els@")
    officer = log_in(app, "privacy_officer")
    return {"jan": jan, "els": els, "femke": femke_id, "officer": officer}


def test_each_entry_says_who_did_what_to_whom(log):
    page = log["officer"].get("/admin/audit").get_data(as_text=True)
    shown = entries(page)
    assert "Femke bekeek de gegevens van j…@example.nl" in " | ".join(shown)
    assert "Piet bekeek de gegevens van e…@example.nl" in " | ".join(shown)
    assert any(e.startswith("Piet zocht een persoon") and "1 persoon gevonden" in e for e in shown)
    assert "jan.de.vries@example.nl" not in page and "els@example.nl" not in page
    assert "view" not in " ".join(shown) and "persoon 1" not in page
    assert MICROSECONDS.search(" ".join(shown)) is None
    assert "Regels 1 tot en met 3 van 3" in page


def test_each_filter_narrows_the_list(log):
    officer = log["officer"]
    everyone = entries(officer.get("/admin/audit").get_data(as_text=True))
    by_femke = entries(officer.get(f"/admin/audit?staff={log['femke']}").get_data(as_text=True))
    assert len(by_femke) == 1 < len(everyone) and by_femke[0].startswith("Femke")
    about_els = entries(officer.get(f"/admin/audit?subject={log['els']}").get_data(as_text=True))
    assert len(about_els) == 1 and "e…@example.nl" in about_els[0]
    # A typed address is found, then leaves the address bar: the person by their number.
    found = officer.get("/admin/audit?person=ELS@example.nl&action=view")
    assert found.status_code == 303
    assert found.headers["Location"] == f"/admin/audit?action=view&subject={log['els']}"
    typed = officer.get("/admin/audit?person=ELS@example.nl", follow_redirects=True)
    assert "ELS@example.nl" not in typed.request.url
    assert entries(typed.get_data(as_text=True)) == about_els
    searches = entries(officer.get("/admin/audit?action=search").get_data(as_text=True))
    assert len(searches) == 1 and "zocht" in searches[0]
    today = datetime.now(UTC).date()
    tomorrow = (today + timedelta(days=2)).isoformat()
    later = officer.get(f"/admin/audit?from={tomorrow}").get_data(as_text=True)
    assert entries(later) == ["Nog niets."] and "Geen regels gevonden." in later
    yesterday = (today - timedelta(days=2)).strftime("%d-%m-%Y")
    assert entries(officer.get(f"/admin/audit?to={yesterday}").get_data(as_text=True)) == [
        "Nog niets."
    ]
    assert entries(officer.get(f"/admin/audit?from={yesterday}").get_data(as_text=True)) == everyone
    # Filters combine: Femke's looks about Els are none.
    both = officer.get(f"/admin/audit?staff={log['femke']}&subject={log['els']}")
    assert entries(both.get_data(as_text=True)) == ["Nog niets."]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=31-02-2026", "Geef de begindatum als dd-mm-jjjj"),
        ("to=gisteren", "Geef de einddatum als dd-mm-jjjj"),
        ("from=2026-03-05&to=2026-03-01", "De begindatum ligt na de einddatum"),
        ("staff=99999999999999999999", "Kies een medewerker uit de lijst."),
        ("staff=abc", "Kies een medewerker uit de lijst."),
        ("subject=%C2%B2", "Deze persoon staat niet in de gegevens van deze bibliotheek."),
        ("person=nobody@example.nl", "Er is geen persoon met dit e-mailadres bekend"),
        ("action=drop_table", "Kies een handeling uit de lijst."),
        ("page=0", "Die pagina bestaat niet"),
        ("page=999", "Die pagina bestaat niet"),
    ],
)
def test_a_bad_filter_is_named_and_not_used(log, query, message):
    officer = log["officer"]
    everyone = entries(officer.get("/admin/audit").get_data(as_text=True))
    response = officer.get(f"/admin/audit?{query}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert message in page and 'class="error-summary"' in page
    assert entries(page) == everyone


def test_the_csv_has_the_same_rows_and_is_injection_safe(app, log):
    officer = log["officer"]
    with app.app_context():
        person = db.session.get(Subject, log["jan"])
        user = db.session.get(StaffUser, log["femke"])
        staff.audit(db.session, user, "restriction", subject=person, reason="=HYPERLINK(1)")
        staff.audit(db.session, user, "withdrawal", subject=person, reason="@SUM(A1)")
        db.session.commit()
    page = officer.get(f"/admin/audit?staff={log['femke']}").get_data(as_text=True)
    assert f"/admin/audit.csv?staff={log['femke']}" in page
    response = officer.get(f"/admin/audit.csv?staff={log['femke']}")
    assert response.mimetype == "text/csv"
    assert (
        response.headers["Content-Disposition"] == 'attachment; filename="borne-auditlogboek.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["Tijd", "Medewerker", "Wat er gebeurde", "Persoon", "Reden", "Details"]
    assert [r[2] for r in rows[1:]] == [
        "Femke noteerde dat j…@example.nl een mail wil stoppen",
        "Femke beperkte het gebruik van de gegevens van j…@example.nl",
        "Femke bekeek de gegevens van j…@example.nl",
    ]
    assert {r[1] for r in rows[1:]} == {"Femke"} and {r[3] for r in rows[1:]} == {"j…@example.nl"}
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@")), cell
    assert rows[1][4] == "Notitie: @SUM(A1)"
    assert rows[2][4] == "Reden: =HYPERLINK(1)"
    # The page shows the same entries in the same words.
    for row, shown in zip(rows[1:], entries(page), strict=True):
        assert shown.startswith(row[2]), (row, shown)
    assert "jan.de.vries" not in response.get_data(as_text=True)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", rows[1][0])


def test_a_cell_that_starts_like_a_formula_is_quoted():
    from consentsvc.web.spreadsheet import cell as _cell

    assert [_cell(v) for v in ("=1+1", "+31", "-2", "@A1", "\tx", "gewoon")] == [
        "'=1+1", "'+31", "'-2", "'@A1", "'\tx", "gewoon",
    ]  # fmt: skip


def test_desk_staff_may_not_read_the_log(app):
    desk = log_in(app, "desk")
    assert desk.get("/admin/audit").status_code == 403
    assert desk.get("/admin/audit.csv").status_code == 403


def test_the_log_is_paged_and_says_so(app):
    jan = rich_person(app)
    officer = log_in(app, "privacy_officer")
    with app.app_context():
        user = db.session.scalar(select(StaffUser).where(StaffUser.role == "privacy_officer"))
        person = db.session.get(Subject, jan)
        for _ in range(105):
            staff.audit(db.session, user, "view", subject=person)
        db.session.commit()
    first = officer.get("/admin/audit").get_data(as_text=True)
    assert len(entries(first)) == 100 and "Regels 1 tot en met 100 van 105" in first
    assert "Pagina 1 van 2" in first and 'rel="next"' in first
    second = officer.get("/admin/audit?page=2").get_data(as_text=True)
    assert len(entries(second)) == 5 and "Regels 101 tot en met 105 van 105" in second


def test_every_audit_action_in_use_has_staff_words():
    """Each action the code writes to the audit trail reads as a sentence in the log."""
    from pathlib import Path

    root = Path(audit_words.__file__).parent.parent
    source = "\n".join(p.read_text() for p in root.rglob("*.py"))
    used = set(
        re.findall(r'(?:_audit\(|staff\.audit\(\s*db\.session,\s*\w+,\s*)\s*"([a-z_.]+)"', source)
    )
    used |= {"consent.requested", "consent.granted", "auditor_view", "erase", "erase.partial"}
    used |= {"objection", "withdrawal", "restriction", "restriction.lifted"}
    used |= {"account.password", "account.code_added", "account.code_removed"}
    assert used <= set(audit_words.SENTENCES), used - set(audit_words.SENTENCES)
    assert set(audit_words.SENTENCES) == set(audit_words.NAMES)


def test_the_member_wording_is_not_the_staff_wording():
    from consentsvc.web import labels

    assert str(labels.STAFF_ACTION["view"]) == "Looked at your data"
    assert audit_words.masked("jan.de.vries@example.nl") == "j…@example.nl"


def test_a_detail_names_the_account_or_key_in_words(app):
    from consentsvc import clients
    from consentsvc.models import Library

    femke_id = named_staff(app, "Femke", "privacy_officer", "femke@bibliotheek.example")
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        client, _key = clients.create(db.session, library, "Laposta", ["newsletter"])
        femke = db.session.get(StaffUser, femke_id)
        kees = staff.create(
            db.session, library, "kees@bibliotheek.example", "Kees", "desk", "x" * 12
        )
        db.session.flush()
        staff.audit(db.session, femke, "staff.add", detail=f"staff {kees.id} desk")
        staff.audit(db.session, femke, "client.revoke", detail=f"client {client.id}")
        db.session.commit()
    page = log_in_as(app, "femke@bibliotheek.example").get("/admin/audit").get_data(as_text=True)
    shown = entries(page)
    assert shown[0].startswith("Femke trok een API-sleutel in ")
    assert shown[0].endswith(" · API-sleutel van Laposta")
    assert shown[1].startswith("Femke maakte een account voor een medewerker ")
    assert shown[1].endswith(" · Account van Kees (Balie)")
    assert "staff " not in " ".join(shown) and "client " not in " ".join(shown)


def test_a_settings_change_names_its_fields_in_words(app):
    femke_id = named_staff(app, "Femke", "privacy_officer", "femke@bibliotheek.example")
    with app.app_context():
        femke = db.session.get(StaffUser, femke_id)
        staff.audit(db.session, femke, "library.settings", detail="colour, retention")
        staff.audit(db.session, femke, "library.settings", detail="colour, something_new")
        db.session.commit()
    page = log_in_as(app, "femke@bibliotheek.example").get("/admin/audit").get_data(as_text=True)
    shown = entries(page)
    # A field this page knows no word for leaves the detail as it was, not half-worded.
    assert shown[0].endswith(" · colour, something_new")
    assert shown[1].endswith(" · Gewijzigd: kleur, bewaartermijnen")
