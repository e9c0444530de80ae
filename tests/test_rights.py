"""Members' rights from the console: access, erasure, restriction; roles and libraries."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
import time_machine
from sqlalchemy import String, Text, func, select

from consentsvc import clients, iban, ledger, outbox, staff
from consentsvc.extensions import db
from consentsvc.models import AuditEntry, ConsentEvent, Library, StaffUser, Subject, utcnow

from .conftest import csrf_token
from .test_admin import log_in, log_in_again, make_staff, person

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "export.schema.json").read_text())


def rich_person(app, email="jan.de.vries@example.nl"):
    """Someone with a confirmed newsletter, an evidence trail and a card number."""
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        result = ledger.signup(
            db.session, library, email, ["newsletter", "acquisitions"], language="nl",
            channel="web_form",
            proof=ledger.Proof(ip_address="192.0.2.44", user_agent="Firefox", origin="https://www.example.nl"),
        )  # fmt: skip
        ledger.confirm(db.session, result.subject, result.request_ids)
        result.subject.card_number = "2100012345678"
        db.session.commit()
        return result.subject.id


def newsletter_decision(app, email):
    """What a sender's check for Borne's newsletter answers for this address now."""
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        [decision] = ledger.check_many(
            db.session, library, "newsletter", [email],
            suppression_key=app.config["SUPPRESSION_KEY"],
        )  # fmt: skip
        return decision


def post(client, path, **data):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, "/admin/")})


# Every URL of the console and the roles that may use them (test_matrix_covers_every_url
# fails when a new console URL is not listed here).
EVERYONE, PRIVACY, ADMIN = {"desk", "privacy_officer", "admin"}, {"privacy_officer"}, {"admin"}
# Staff accounts: admins for desk and admin accounts, privacy officers for their own role.
ACCOUNTS = ADMIN | PRIVACY
MATRIX = [
    ("get", "/admin/", EVERYONE),
    ("get", "/admin/subjects/{id}", EVERYONE),
    ("post", "/admin/subjects/{id}/consent", EVERYONE),
    ("post", "/admin/subjects/{id}/stop", EVERYONE),
    ("post", "/admin/subjects/{id}/minor", EVERYONE),
    ("post", "/admin/subjects/{id}/export", PRIVACY),
    ("get", "/admin/subjects/{id}/copy", PRIVACY),
    ("post", "/admin/subjects/{id}/erase", PRIVACY),
    ("post", "/admin/subjects/{id}/restriction", PRIVACY),
    ("post", "/admin/subjects/{id}/email", PRIVACY),
    ("get", "/admin/audit", PRIVACY),
    # The audit log's filtered entries as CSV (web/console_audit.py).
    ("get", "/admin/audit.csv", PRIVACY),
    ("get", "/admin/clients", ADMIN),
    ("post", "/admin/clients", ADMIN),
    ("get", "/admin/clients/{client}/revoke", ADMIN),
    ("post", "/admin/clients/{client}/revoke", ADMIN),
    ("get", "/admin/webhooks", ADMIN),
    ("post", "/admin/webhooks", ADMIN),
    ("get", "/admin/webhooks/{endpoint}/remove", ADMIN),
    ("post", "/admin/webhooks/{endpoint}/remove", ADMIN),
    # A receiver's delivery log, its test event, sending a given-up message again.
    ("get", "/admin/webhooks/{endpoint}", ADMIN),
    ("post", "/admin/webhooks/{endpoint}/test", ADMIN),
    ("post", "/admin/webhooks/{endpoint}/deliveries/{message}/redeliver", ADMIN),
    ("get", "/admin/purposes", ADMIN),
    ("post", "/admin/purposes/1/texts", ADMIN),
    ("get", "/admin/purposes/1/retire", ADMIN),
    ("post", "/admin/purposes/1/retire", ADMIN),
    ("get", "/admin/staff", ACCOUNTS),
    ("post", "/admin/staff", ACCOUNTS),
    ("get", "/admin/staff/{staff}/deactivate", ACCOUNTS),
    ("post", "/admin/staff/{staff}/deactivate", ACCOUNTS),
    ("get", "/admin/staff/{staff}/access/remove", ADMIN),
    ("post", "/admin/staff/{staff}/access/remove", ADMIN),
    ("get", "/admin/library", ADMIN),
    ("post", "/admin/library", ADMIN),
    # The library's own face: sender, contact, logo (web/console_library.py).
    ("post", "/admin/library/face", ADMIN),
    ("post", "/admin/library/logo", ADMIN),
    ("post", "/admin/library/logo/remove", ADMIN),
    ("post", "/admin/libraries", ADMIN),
    ("get", "/admin/libraries/new", ADMIN),
    ("get", "/admin/reports", ACCOUNTS),
    ("get", "/admin/reports/{report}.svg", ACCOUNTS),
    ("get", "/admin/reports/{report}.csv", ACCOUNTS),
    ("get", "/admin/account", EVERYONE),
    ("post", "/admin/account/password", EVERYONE),
    ("post", "/admin/account/code", EVERYONE),
    ("post", "/admin/library/switch", EVERYONE),
    ("get", "/admin/retention", ACCOUNTS),
    # Consent on a date, for an auditor (web/console_auditor.py).
    ("get", "/admin/auditor", ACCOUNTS),
    ("get", "/admin/auditor?subject={id}", ACCOUNTS),
    ("post", "/admin/auditor", ACCOUNTS),
    # A person's signed receipt for the auditor (a receipt of nobody: 404 for those allowed).
    ("get", "/admin/subjects/{id}/receipts/{receipt}", ACCOUNTS),
    # Importing a subscriber list (web/console_import.py).
    ("get", "/admin/import", ADMIN),
    ("post", "/admin/import", ADMIN),
    ("post", "/admin/import/confirm", ADMIN),
    # Publishing a privacy-statement version (web/console_statement.py).
    ("get", "/admin/privacy-statement", ADMIN),
    ("post", "/admin/privacy-statement", ADMIN),
    ("post", "/admin/privacy-statement/publish", ADMIN),
    # Direct-debit mandates (web/console_mandates.py); the ledger decides who approves.
    ("post", "/admin/subjects/{id}/mandates", EVERYONE),
    ("get", "/admin/mandates", EVERYONE),
    ("post", "/admin/mandates/{mandate}/approve", EVERYONE),
    ("post", "/admin/mandates/{mandate}/reject", EVERYONE),
    ("get", "/admin/mandates/{mandate}/end", EVERYONE),
    ("post", "/admin/mandates/{mandate}/end", EVERYONE),
]
# Open to anyone (the way in and out).
NOT_IN_MATRIX = {"/admin/login", "/admin/login/code", "/admin/logout"}


def matrix_ids(app):
    """Things of the library's own for the URLs above to act on."""
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        client, _ = clients.create(db.session, library, "Laposta", ["newsletter"])
        endpoint = outbox.add_endpoint(
            db.session, library.id, "http://127.0.0.1:9/hook", ["consent.withdrawn"],
            allow_http=True, allowed_networks=["127.0.0.0/8"],
        )  # fmt: skip
        given_up = outbox.enqueue_test(db.session, endpoint)
        given_up.dead_at = utcnow()
        colleague = staff.create(
            db.session, library, "kees@bibliotheek.example", "Kees", "desk", "x" * 12
        )
        paying = ledger.subject_for(db.session, library, "incasso@example.nl", "nl")
        mandate = ledger.record_mandate(
            db.session, paying,
            ledger.MandateInput("M-1", "NL28ZZZ401234560000", "NL91ABNA0417164300", "K. Kok",
                                "2026-01-05", "Borne", "paper"),
            staff=colleague, vault=iban.Vault(app.config["IBAN_KEY"]),
        )  # fmt: skip
        db.session.commit()
        return {
            "client": client.id, "endpoint": endpoint.id, "message": given_up.id,
            "staff": colleague.id,
            "report": "signups",
            "mandate": mandate.id, "receipt": "00000000-0000-5000-8000-000000000000",
        }  # fmt: skip


def test_matrix_covers_every_url(app):
    listed = {re.sub(r"\{[a-z]+\}|\d+", "<>", url) for _, url, _ in MATRIX}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/admin") and rule.rule not in NOT_IN_MATRIX:
            assert re.sub(r"<[^>]+>", "<>", rule.rule) in listed, rule.rule


@pytest.mark.parametrize("role", ["desk", "privacy_officer", "admin"])
@pytest.mark.parametrize(("method", "url", "allowed"), MATRIX)
def test_role_matrix(app, role, method, url, allowed):
    client = log_in(app, role)
    url = url.format(id=person(app), **matrix_ids(app))
    # Incomplete forms: allowed roles get a 400 asking for more (or the page, or a redirect
    # after a harmless change); others a 403 and nothing changes.
    response = client.get(url) if method == "get" else post(client, url, purpose="newsletter")
    if role in allowed:
        assert response.status_code in (200, 303, 400, 404), (role, url)
    else:
        assert response.status_code == 403, (role, url)
        assert "Niet toegestaan" in response.get_data(as_text=True)


def test_export_holds_everything_and_matches_its_schema(app):
    subject_id = rich_person(app)
    client = log_in(app, "privacy_officer")
    client.get(f"/admin/subjects/{subject_id}")
    missing = post(client, f"/admin/subjects/{subject_id}/export", format="json")
    assert missing.status_code == 400
    assert "Schrijf hoe je de persoon hebt herkend" in missing.get_data(as_text=True)
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        _client, key = clients.create(db.session, library, "Laposta", ["newsletter"])
        db.session.commit()
    app.test_client().post(
        "/api/v1/consent/check",
        json={"purpose": "newsletter", "recipients": ["jan.de.vries@example.nl"]},
        headers={"Authorization": f"Bearer {key}"},
    )
    asked = post(
        client, f"/admin/subjects/{subject_id}/export",
        format="json", identification="pas en geboortedatum gecontroleerd",
    )  # fmt: skip
    assert asked.status_code == 303  # Post/Redirect/Get
    assert asked.headers["Location"] == f"/admin/subjects/{subject_id}/copy"
    response = client.get(asked.headers["Location"])
    assert response.headers["Content-Disposition"].startswith("attachment")
    data = response.json
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert data["subject"]["card_number"] == "2100012345678"
    assert [e["action"] for e in data["events"]] == ["requested", "requested", "granted", "granted"]
    assert data["events"][0]["evidence"]["ip_address"] == "192.0.2.44"
    assert len(data["mailings_allowed"]) == 1
    assert [(a["action"], a["reason"]) for a in data["staff_access"]] == [
        ("view", None),
        ("export", "pas en geboortedatum gecontroleerd"),
    ]
    page = post(
        client, f"/admin/subjects/{subject_id}/export", format="html", identification="pas",
    ).headers["Location"]  # fmt: skip
    assert "jan.de.vries@example.nl" in client.get(page).get_data(as_text=True)
    # A reload shows the same copy and audits nothing more; the export was audited once.
    reloaded = client.get(page).get_data(as_text=True)
    assert "jan.de.vries@example.nl" in reloaded and "192.0.2.44" in reloaded
    assert exports_audited(app, subject_id) == 2


def exports_audited(app, subject_id):
    with app.app_context():
        return db.session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.subject_id == subject_id, AuditEntry.action == "export")
        )


def test_an_export_copy_needs_its_audited_request(app):
    """The copy's page opens only after the POST that recorded why, in the same session."""
    subject_id = rich_person(app)
    officer = log_in(app, "privacy_officer")
    unasked = officer.get(f"/admin/subjects/{subject_id}/copy")
    assert (unasked.status_code, unasked.headers["Location"]) == (
        303,
        f"/admin/subjects/{subject_id}",
    )
    post(officer, f"/admin/subjects/{subject_id}/export", format="html", identification="pas")
    other_session = log_in_again(
        app, app.test_client(), "privacy_officer.borne@bibliotheek.example"
    )
    elsewhere = other_session.get(f"/admin/subjects/{subject_id}/copy")
    assert elsewhere.status_code == 303
    assert "jan.de.vries@example.nl" not in elsewhere.get_data(as_text=True)
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=6)):
        assert officer.get(f"/admin/subjects/{subject_id}/copy").status_code == 303
    assert exports_audited(app, subject_id) == 1


def test_erasure_leaves_no_trace_of_the_address_but_keeps_the_ledger(app):
    subject_id = rich_person(app)
    client = log_in(app, "privacy_officer")
    with app.app_context():
        events_before = db.session.scalar(select(ConsentEvent.id).order_by(ConsentEvent.id.desc()))
    unconfirmed = post(client, f"/admin/subjects/{subject_id}/erase", identification="pas gezien")
    assert unconfirmed.status_code == 400
    response = post(
        client, f"/admin/subjects/{subject_id}/erase", identification="pas gezien", confirm="yes"
    )
    assert response.headers["Location"] == f"/admin/subjects/{subject_id}"  # a reload is a GET
    assert "zijn gewist" in client.get(response.headers["Location"]).get_data(as_text=True)

    with app.app_context():
        # The address, card number and evidence appear in no text column of any table.
        for table in db.metadata.sorted_tables:
            columns = [
                c
                for c in table.columns
                if isinstance(c.type, String | Text) or c.type.__class__.__name__ == "JSON"
            ]
            for column in columns:
                found = db.session.execute(
                    select(table.c.id if "id" in table.c else column).where(
                        column.cast(Text).like("%jan.de.vries%")
                        | column.cast(Text).like("%2100012345678%")
                        | column.cast(Text).like("%192.0.2.44%")
                    )
                ).first()
                assert found is None, f"{table.name}.{column.name}"
        # The ledger rows remain, now ending in 'erased'.
        subject = db.session.get(Subject, subject_id)
        assert subject.erased_at is not None
        actions = [e.action for e in reversed(ledger.history(db.session, subject))]
        assert actions[:4] == ["requested", "requested", "granted", "granted"]
        assert actions[-2:] == ["erased", "erased"]
        assert (
            db.session.scalar(select(ConsentEvent.id).order_by(ConsentEvent.id.desc()))
            > events_before
        )
        assert ledger.verify(db.session) == []

    decision = newsletter_decision(app, "jan.de.vries@example.nl")
    assert (decision.allowed, decision.reason) == (False, "suppressed")


def test_erasure_is_partial_while_a_retention_duty_holds(app):
    subject_id = rich_person(app)
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        ledger.grant(db.session, subject, "direct_debit", channel="staff", actor="staff:1")
        db.session.commit()
    client = log_in(app, "privacy_officer")
    done = post(client, f"/admin/subjects/{subject_id}/erase", identification="pas", confirm="yes")
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "wettelijke bewaarplicht" in page
    # In the names staff know, not the codes: "Gestopt: newsletter" read as jargon.
    assert "<p>Automatische incasso: bewaard tot" in page and "<p>direct_debit" not in page
    assert "Toestemming ingetrokken voor: Nieuwsbrief" in page
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        assert subject.erased_at is None
        states = {s.purpose.code: s.status for s in ledger.state_of(db.session, subject)}
        assert states["newsletter"] == "withdrawn" and states["direct_debit"] == "granted"


def test_restriction_stops_mail_and_new_consent_until_lifted(app):
    subject_id = rich_person(app)
    client = log_in(app, "privacy_officer")
    post(client, f"/admin/subjects/{subject_id}/restriction", reason="betwist de gegevens")

    def check():
        with app.app_context():
            library = db.session.scalar(select(Library).where(Library.slug == "borne"))
            return ledger.check_many(
                db.session, library, "newsletter", ["jan.de.vries@example.nl"],
                suppression_key=app.config["SUPPRESSION_KEY"],
            )[0]  # fmt: skip

    assert (check().allowed, check().reason) == (False, "restricted")
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        with pytest.raises(ledger.Restricted):
            ledger.grant(db.session, subject, "direct_marketing", channel="staff")
        # Stopping mail always works, restricted or not.
        assert ledger.withdraw(db.session, subject, "acquisitions", channel="one_click")
        db.session.commit()
    post(client, f"/admin/subjects/{subject_id}/restriction", reason="opgelost", lift="yes")
    assert check().allowed is True


def test_the_audit_log_shows_who_looked(app):
    subject_id = rich_person(app)
    desk = log_in(app, "desk")
    desk.get(f"/admin/subjects/{subject_id}")
    officer = log_in(app, "privacy_officer")
    page = officer.get(f"/admin/audit?subject={subject_id}").get_data(as_text=True)
    link = f'<a href="/admin/subjects/{subject_id}">j…@example.nl</a>'
    assert f"Anna bekeek de gegevens van {link}" in page


def test_no_console_page_of_one_library_shows_another(app):
    subject_id = rich_person(app)
    client = log_in(app, "privacy_officer", library="zoetermeer")
    for method, url, _allowed in MATRIX:
        if "{id}" not in url:
            continue
        url = url.format(id=subject_id, receipt="00000000-0000-5000-8000-000000000000")
        response = (
            client.get(url)
            if method == "get"
            else post(
                client,
                url,
                identification="x",
                confirm="yes",
                reason="x",
                note="x",
                purpose="newsletter",
            )
        )
        assert response.status_code == 404, url
    with app.app_context():
        assert db.session.get(Subject, subject_id).erased_at is None
    assert "jan.de.vries" not in client.get("/admin/audit").get_data(as_text=True)


def test_signing_up_anew_lifts_the_suppression_of_an_erased_address(app, outbox):
    from .conftest import link_in, signup

    subject_id = rich_person(app)
    officer = log_in(app, "privacy_officer")
    post(officer, f"/admin/subjects/{subject_id}/erase", identification="pas", confirm="yes")
    member = app.test_client()
    signup(member, "jan.de.vries@example.nl")
    member.post(link_in(outbox[-1], "confirm"))
    decision = newsletter_decision(app, "jan.de.vries@example.nl")
    assert (decision.allowed, decision.reason) == (True, "granted")
    assert decision.subject_id != subject_id  # a new person, not the erased one


def test_cli_export_shows_hard_bounces_and_complaints(app, runner):
    """What a check answers (suppressed) can be traced in the export: the suppression with
    its reason, and the mail that stopped, as ledger events from the sender's report."""
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        for email in ("bounced@example.nl", "complainer@example.nl"):
            result = ledger.signup(
                db.session, library, email, ["newsletter", "acquisitions"],
                language="nl", channel="web_form",
            )  # fmt: skip
            ledger.confirm(db.session, result.subject, result.request_ids)
        api_client, key = clients.create(db.session, library, "Laposta", ["newsletter"])
        db.session.commit()
        actor = f"client:{api_client.id}"
    api = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    for number, (kind, email) in enumerate(
        [("hard_bounce", "bounced@example.nl"), ("complaint", "complainer@example.nl")]
    ):
        event = {"id": f"r{number}", "type": kind, "email": email}
        assert api.post("/api/v1/events", json=event, headers=auth).json["status"] == "processed"
        check = api.post(
            "/api/v1/consent/check",
            json={"purpose": "newsletter", "recipients": [email]},
            headers=auth,
        )
        assert check.json["results"][0]["reason"] == "suppressed"

        result = runner.invoke(args=["subject", "export", email, "--library", "borne"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
        assert data["suppression"]["reason"] == kind
        channel = {"hard_bounce": "provider_bounce", "complaint": "provider_complaint"}[kind]
        stopped = [(e["purpose"], e["actor"]) for e in data["events"] if e["channel"] == channel]
        assert sorted(stopped) == [("acquisitions", actor), ("newsletter", actor)]
        assert {c["purpose"]: c["status"] for c in data["consents"]}["newsletter"] == "withdrawn"


def test_member_gets_a_copy_of_their_data_by_a_signed_link(app, outbox):
    from consentsvc import tokens

    subject_id = rich_person(app)
    log_in(app, "desk").get(f"/admin/subjects/{subject_id}")
    with app.app_context():
        prefs = f"/preferences/{tokens.make_preferences(subject_id)}"
    member = app.test_client()
    # The preference link proves the mailbox: the copy opens at once, nothing is mailed.
    assert "Bekijk een kopie van je gegevens" in member.get(prefs).get_data(as_text=True)
    mails = len(outbox)
    page = member.get(prefs + "/data").get_data(as_text=True)
    assert "jan.de.vries@example.nl" in page and "2100012345678" in page
    assert "vanaf internetadres 192.0.2.44" in page
    assert "Anna" in page  # the desk employee who opened the record
    assert len(outbox) == mails
    data = member.get(prefs + "/data?format=json").json
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
    # Download links from earlier mails open the same copy; another kind of token does not,
    # and they expire.
    with app.app_context():
        link = f"/download/{tokens.make_download(subject_id)}"
    assert "Anna" in member.get(link).get_data(as_text=True)
    assert member.get(prefs.replace("/preferences/", "/download/")).status_code == 400
    app.config["DOWNLOAD_MAX_AGE"] = 0
    import time

    time.sleep(1.1)
    expired = member.get(link)
    assert expired.status_code == 410


def test_correcting_an_address_needs_a_confirmation_from_the_new_one(app, outbox):
    from .conftest import link_in

    subject_id = rich_person(app)
    officer = log_in(app, "privacy_officer")
    url = f"/admin/subjects/{subject_id}/email"
    assert post(officer, url, email="nieuw@example.nl").status_code == 400  # no identification
    response = post(officer, url, email="Nieuw@Example.nl", identification="pas gezien")
    assert response.status_code == 303
    mail = outbox[-1]
    assert mail.recipients == ["nieuw@example.nl"]
    assert mail.subject == "Bevestig je nieuwe e-mailadres bij Bibliotheek Borne"
    link = link_in(mail, "email")
    member = app.test_client()
    assert "Ja, gebruik dit adres" in member.get(link).get_data(as_text=True)
    with app.app_context():
        assert (
            db.session.get(Subject, subject_id).email == "jan.de.vries@example.nl"
        )  # GET changed nothing
    assert "We gebruiken nu nieuw@example.nl" in member.post(link).get_data(as_text=True)
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        assert (subject.email, subject.pending_email) == ("nieuw@example.nl", None)
        states = {s.purpose.code: s.status for s in ledger.state_of(db.session, subject)}
        assert states["newsletter"] == "granted"  # consent moves with the person
    assert "niets te bevestigen" in member.post(link).get_data(as_text=True)
    # An address another member already has is refused.
    other = person(app, "piet@example.nl")
    taken = post(
        officer, f"/admin/subjects/{other}/email", email="nieuw@example.nl", identification="pas"
    )
    assert taken.status_code == 400
    assert "heeft dit adres al" in taken.get_data(as_text=True)


def test_admin_makes_and_revokes_a_key_that_works(app):
    admin = log_in(app, "admin")
    made = post(admin, "/admin/clients", name="Spotler", purpose="newsletter")
    assert made.status_code == 303  # Post/Redirect/Get: a reload makes no second key
    page = admin.get(made.headers["Location"]).get_data(as_text=True)
    assert "hij staat hier maar één keer" in page
    key = re.search(r'<code class="secret">(csk_[^<]+)</code>', page).group(1)
    # Shown once: the next look at the page no longer has it.
    assert key not in admin.get("/admin/clients").get_data(as_text=True)
    check = {"purpose": "newsletter", "recipients": ["a@example.nl"]}
    api = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    assert api.post("/api/v1/consent/check", json=check, headers=headers).status_code == 200
    assert "Laatst gebruikt" in admin.get("/admin/clients").get_data(as_text=True)
    with app.app_context():
        client_id = db.session.scalar(select(clients.ApiClient.id))
    post(admin, f"/admin/clients/{client_id}/revoke")
    assert api.post("/api/v1/consent/check", json=check, headers=headers).status_code == 401
    # Another library's admin cannot touch it.
    other = log_in(app, "admin", library="zoetermeer")
    assert post(other, f"/admin/clients/{client_id}/revoke").status_code == 404
    assert "Spotler" not in other.get("/admin/clients").get_data(as_text=True)


def test_admin_adds_a_webhook_only_to_a_safe_address(app):
    admin = log_in(app, "admin")
    refused = post(admin, "/admin/webhooks", url="http://10.0.0.5/hook", event="consent.withdrawn")
    assert refused.status_code == 400
    assert "Alleen adressen die met https:// beginnen" in refused.get_data(as_text=True)
    added = post(admin, "/admin/webhooks", url="https://1.1.1.1/hook", event="consent.withdrawn")
    assert added.status_code == 303
    assert "whsec_" in admin.get(added.headers["Location"]).get_data(as_text=True)
    assert "whsec_" not in admin.get("/admin/webhooks").get_data(as_text=True)
    assert "wachtend 0, bezorgd 0, opgegeven 0" in admin.get("/admin/webhooks").get_data(
        as_text=True
    )


def test_a_material_change_asks_holders_to_agree_again(app, outbox):
    from .conftest import link_in

    dutch = rich_person(app)  # agreed to the newsletter in Dutch
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        english = ledger.signup(
            db.session, library, "anne@example.nl", ["newsletter"], language="en", channel="x"
        )
        ledger.confirm(db.session, english.subject, english.request_ids)
        english.subject.language = "en"
        db.session.commit()
        newsletter_id = ledger.purpose_by_code(library, "newsletter").id
    admin = log_in(app, "admin")
    response = post(
        admin, f"/admin/purposes/{newsletter_id}/texts", language="nl", title="Nieuwsbrief",
        body="Nu ook met tips van andere bibliotheken.", material="yes",
    )  # fmt: skip
    assert response.status_code == 303 and "asked=1" in response.headers["Location"]
    [mail] = [m for m in outbox if m.subject.startswith("Bibliotheek Borne heeft een tekst")]
    assert mail.recipients == ["jan.de.vries@example.nl"]

    def decision(email):
        with app.app_context():
            library = db.session.scalar(select(Library).where(Library.slug == "borne"))
            return ledger.check_many(
                db.session, library, "newsletter", [email],
                suppression_key=app.config["SUPPRESSION_KEY"],
            )[0]  # fmt: skip

    paused = decision("jan.de.vries@example.nl")
    assert (paused.allowed, paused.reason) == (False, "reconfirm_requested")
    assert decision("anne@example.nl").allowed  # her English wording did not change
    app.test_client().post(link_in(mail, "confirm"))
    assert decision("jan.de.vries@example.nl").allowed
    with app.app_context():
        subject = db.session.get(Subject, dutch)
        grant = ledger.history(db.session, subject)[0]
        assert grant.consent_text.body == "Nu ook met tips van andere bibliotheken."
        assert grant.consent_text.version == 2
        assert ledger.verify(db.session) == []


def test_admin_adds_and_closes_staff_accounts(app):
    admin = log_in(app, "admin")
    weak = post(
        admin,
        "/admin/staff",
        name="Bas",
        email="bas@bibliotheek.example",
        role="desk",
        password="kort",
    )
    assert weak.status_code == 400
    assert "minstens 12 tekens" in weak.get_data(as_text=True)
    added = post(
        admin, "/admin/staff", name="Bas", email="bas@bibliotheek.example", role="desk",
        password="een lang genoeg wachtwoord",
    )  # fmt: skip
    assert added.status_code == 303  # Post/Redirect/Get: a reload adds nobody twice
    assert "Bas kan nu inloggen." in admin.get(added.headers["Location"]).get_data(as_text=True)
    bas = app.test_client()
    login = {"email": "bas@bibliotheek.example", "password": "een lang genoeg wachtwoord"}
    assert (
        bas.post(
            "/admin/login", data={**login, "csrf_token": csrf_token(bas, "/admin/login")}
        ).status_code
        == 303
    )
    with app.app_context():
        from consentsvc.models import StaffUser

        bas_id = db.session.scalar(
            select(StaffUser.id).where(StaffUser.email == "bas@bibliotheek.example")
        )
        admin_id = db.session.scalar(select(StaffUser.id).where(StaffUser.role == "admin"))
    post(admin, f"/admin/staff/{bas_id}/deactivate")
    # A closed account is logged out and cannot log in again.
    assert bas.get("/admin/").status_code == 302
    again = bas.post("/admin/login", data={**login, "csrf_token": csrf_token(bas, "/admin/login")})
    assert again.status_code == 401
    assert post(admin, f"/admin/staff/{admin_id}/deactivate").status_code == 400


@pytest.mark.parametrize("url", [url for method, url, _ in MATRIX if method == "post"])
def test_every_console_form_needs_its_csrf_token(app, url):
    """Without the form's token nothing happens, for htmx requests too."""
    client = log_in(app, "admin")
    ids = matrix_ids(app)
    url = url.format(id=person(app), **ids)
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(AuditEntry))
    for headers in ({}, {"HX-Request": "true"}):
        response = client.post(url, data={"purpose": "newsletter", "note": "x"}, headers=headers)
        assert response.status_code == 400, url
        assert "Dit formulier is verlopen" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == before


@pytest.mark.parametrize("number", ["99999999999999999999", "2147483648", "0"])
def test_ids_out_of_range_are_not_found(app, number):
    """Numbers no row can have are a plain 404, never a database overflow."""
    clients_by_role = {role: log_in(app, role) for role in ("privacy_officer", "admin")}
    for method, url, allowed in MATRIX:
        if "{" not in url:
            continue
        client = clients_by_role["admin" if "admin" in allowed else "privacy_officer"]
        url = re.sub(r"\{[a-z]+\}", number, url)
        response = client.get(url) if method == "get" else post(client, url)
        assert response.status_code == 404, url
    audit = clients_by_role["privacy_officer"].get(f"/admin/audit?staff={number}&subject=²")
    assert audit.status_code == 200


# -- who may give the privacy officer's role ------------------------------------------------------


def staff_by_email(app, email):
    with app.app_context():
        user = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
        if user is not None:
            db.session.expunge(user)
        return user


def audit_of(app, action, library="borne"):
    with app.app_context():
        return [
            (e.staff.email, e.detail)
            for e in db.session.scalars(
                select(AuditEntry)
                .join(Library, Library.id == AuditEntry.library_id)
                .where(AuditEntry.action == action, Library.slug == library)
                .order_by(AuditEntry.id)
            )
        ]


NEW_OFFICER = {
    "name": "Femke", "email": "femke@bibliotheek.example", "role": "privacy_officer",
    "password": "een lang genoeg wachtwoord",
}  # fmt: skip


def test_an_admin_cannot_make_a_privacy_officer_to_export_or_erase_as(app):
    admin = log_in(app, "admin")
    assert "privacy_officer" not in admin.get("/admin/staff").get_data(as_text=True)
    refused = post(admin, "/admin/staff", **NEW_OFFICER)
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert "Alleen een functionaris gegevensbescherming kan iemand die rol geven." in page
    assert staff_by_email(app, NEW_OFFICER["email"]) is None
    assert audit_of(app, "staff.add") == []


def test_an_admin_of_several_libraries_cannot_make_one_in_another_library_either(app):
    admin = log_in(app, "admin")
    with app.app_context():
        user = db.session.scalar(select(StaffUser).where(StaffUser.role == "admin"))
        other = db.session.scalar(select(Library).where(Library.slug == "zoetermeer"))
        staff.add_library(user, other)
        db.session.commit()
        other_id = other.id
    post(admin, "/admin/library/switch", library=str(other_id))
    refused = post(admin, "/admin/staff", working_in=str(other_id), **NEW_OFFICER)
    assert refused.status_code == 400
    also = post(admin, "/admin/staff", also=str(other_id), **NEW_OFFICER)
    assert also.status_code == 400
    assert staff_by_email(app, NEW_OFFICER["email"]) is None


def test_an_admin_cannot_close_the_privacy_officers_account(app):
    officer = log_in(app, "privacy_officer")
    admin = log_in(app, "admin")
    officer_row = staff_by_email(app, "privacy_officer.borne@bibliotheek.example")
    page = admin.get("/admin/staff").get_data(as_text=True)
    assert f"/admin/staff/{officer_row.id}/deactivate" not in page
    refused = post(admin, f"/admin/staff/{officer_row.id}/deactivate")
    assert refused.status_code == 400
    assert "Alleen een functionaris gegevensbescherming kan dit account sluiten." in (
        refused.get_data(as_text=True)
    )
    assert staff_by_email(app, officer_row.email).active
    assert officer.get("/admin/audit").status_code == 200


def test_a_privacy_officer_gives_the_role_and_takes_it_away_audited(app):
    officer = log_in(app, "privacy_officer")
    page = officer.get("/admin/staff").get_data(as_text=True)
    assert '<option value="privacy_officer">Functionaris gegevensbescherming</option>' in page
    assert '<option value="admin">' not in page and '<option value="desk">' not in page
    for role in ("admin", "desk"):
        refused = post(officer, "/admin/staff", **{**NEW_OFFICER, "role": role})
        assert refused.status_code == 400
        assert "Alleen een beheerder kan iemand die rol geven." in refused.get_data(as_text=True)
    added = post(officer, "/admin/staff", **NEW_OFFICER)
    assert added.status_code == 303
    femke = staff_by_email(app, NEW_OFFICER["email"])
    assert femke.role == "privacy_officer"
    me = "privacy_officer.borne@bibliotheek.example"
    assert audit_of(app, "staff.add") == [(me, f"staff {femke.id} privacy_officer")]
    # The new privacy officer can do the work of one.
    femke_client = app.test_client()
    login = {"email": femke.email, "password": NEW_OFFICER["password"]}
    token = csrf_token(femke_client, "/admin/login")
    assert femke_client.post("/admin/login", data={**login, "csrf_token": token}).status_code == 303
    assert femke_client.get("/admin/audit").status_code == 200
    # Closing the account takes the role away, and says so in the library's audit log.
    assert post(officer, f"/admin/staff/{femke.id}/deactivate").status_code == 303
    assert not staff_by_email(app, femke.email).active
    assert audit_of(app, "staff.deactivate") == [(me, f"staff {femke.id} privacy_officer")]
    assert femke_client.get("/admin/audit").status_code == 302
    # A privacy officer closes no admin or desk account.
    admin_row = staff_by_email(app, make_staff(app, "admin"))
    assert post(officer, f"/admin/staff/{admin_row.id}/deactivate").status_code == 400
    assert staff_by_email(app, admin_row.email).active


def test_the_first_privacy_officer_comes_from_the_command_line_audited(app):
    result = app.test_cli_runner().invoke(
        args=["staff", "create", "--library", "borne", "--email", "fg@bibliotheek.example",
              "--name", "Femke", "--role", "privacy_officer", "--password", "a long enough secret"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    femke = staff_by_email(app, "fg@bibliotheek.example")
    assert audit_of(app, "staff.add") == [
        ("fg@bibliotheek.example", f"staff {femke.id} privacy_officer, command line")
    ]


# -- destructive actions ask first ------------------------------------------------------------


def test_destructive_actions_show_what_happens_and_wait_for_a_second_step(app):
    ids = matrix_ids(app)
    with app.app_context():
        zoetermeer = db.session.scalar(select(Library).where(Library.slug == "zoetermeer"))
        helper = staff.create(
            db.session, zoetermeer, "ilse@regio.example", "Ilse", "admin", "x" * 12
        )
        staff.add_library(helper, db.session.scalar(select(Library).where(Library.slug == "borne")))
        db.session.commit()
        helper_id = helper.id
    admin = log_in(app, "admin")
    steps = [
        (f"/admin/clients/{ids['client']}/revoke", "Laposta kan met deze sleutel niets meer"),
        (f"/admin/webhooks/{ids['endpoint']}/remove", "Er gaat niets meer naar dit adres"),
        (f"/admin/staff/{ids['staff']}/deactivate", "Kees wordt meteen uitgelogd"),
        (
            f"/admin/staff/{helper_id}/access/remove",
            "Ilse kan niet meer werken in Bibliotheek Borne",
        ),
    ]
    for url, consequence in steps:
        shown = admin.get(url)
        assert shown.status_code == 200, url
        page = shown.get_data(as_text=True)
        assert consequence in page, url
        assert f'<form method="post" action="{url}">' in page
    # Looking at the question changed nothing.
    with app.app_context():
        assert db.session.get(clients.ApiClient, ids["client"]).revoked_at is None
        assert db.session.get(outbox.WebhookEndpoint, ids["endpoint"]).active
        assert db.session.get(StaffUser, ids["staff"]).active
        assert len(db.session.get(StaffUser, helper_id).other_libraries) == 1
    for url, _ in steps:
        done = post(admin, url)
        assert done.status_code == 303, url
        assert admin.get(done.headers["Location"]).status_code == 200
    with app.app_context():
        assert db.session.get(clients.ApiClient, ids["client"]).revoked_at is not None
        assert not db.session.get(outbox.WebhookEndpoint, ids["endpoint"]).active
        assert not db.session.get(StaffUser, ids["staff"]).active
        assert db.session.get(StaffUser, helper_id).other_libraries == []
    # Asking again about something already done is a plain "not here any more".
    assert admin.get(f"/admin/clients/{ids['client']}/revoke").status_code == 404
