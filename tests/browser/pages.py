"""Every member and console page, each with the steps that bring a browser to it.

An opener takes the live service, a page and a language, and leaves the page showing the
named page in that language; the accessibility and screenshot tests walk these lists.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from playwright.sync_api import Page
from sqlalchemy import select

from consentsvc import ledger, outbox
from consentsvc.models import (
    OutboxMessage,
    PrivacyStatement,
    SepaMandate,
    Subject,
    WebhookEndpoint,
)

from .live import STAFF_PASSWORD, LiveService, open_action, submit

Opener = Callable[[LiveService, Page, str], None]

SIGNUP_FORM = "form[action='/borne/signup']"
LINK_FORM = "form[action='/borne/preferences']"
# A page that only says what happened has no form in its main part.
NO_FORM = "main:not(:has(form))"


def go(page: Page, path: str, lang: str) -> None:
    page.goto(f"{path}{'&' if '?' in path else '?'}lang={lang}")


# -- member pages ---------------------------------------------------------------------------


def signup(live: LiveService, page: Page, lang: str) -> None:
    go(page, "/borne/signup", lang)


def signup_errors(live: LiveService, page: Page, lang: str) -> None:
    signup(live, page, lang)
    submit(page, SIGNUP_FORM, ".error-summary")


def signup_sent(live: LiveService, page: Page, lang: str) -> None:
    signup(live, page, lang)
    page.fill("#email", live.unique_email("aanmelding"))
    page.check("#purpose-newsletter")
    submit(page, SIGNUP_FORM, NO_FORM)


def confirm(live: LiveService, page: Page, lang: str) -> None:
    member, requests = live.new_member(purposes=("newsletter", "acquisitions"), confirmed=False)
    go(page, f"/confirm/{live.token('confirm', member.subject_id, requests)}", lang)


def confirmed(live: LiveService, page: Page, lang: str) -> None:
    confirm(live, page, lang)
    submit(page, "form[action^='/confirm/']", "main a[href^='/preferences/']")


def confirm_used(live: LiveService, page: Page, lang: str) -> None:
    member, requests = live.new_member()
    go(page, f"/confirm/{live.token('confirm', member.subject_id, requests)}", lang)


def _preference_token(live: LiveService) -> str:
    member, _ = live.new_member(purposes=("newsletter", "acquisitions"))
    return live.token("preferences", member.subject_id)


def preferences(live: LiveService, page: Page, lang: str) -> None:
    go(page, f"/preferences/{_preference_token(live)}", lang)


def preferences_changed(live: LiveService, page: Page, lang: str) -> None:
    preferences(live, page, lang)
    page.click("#toggle-newsletter")
    page.wait_for_selector("#notice:not(:empty)")


def member_since(live: LiveService, subject_id: int) -> None:
    """Make the person a member (as the library system reports it): in Borne, which mails
    members offers unless they object, they then get them without a choice of their own."""
    with live.session() as session:
        subject = session.get_one(Subject, subject_id)
        subject.membership_started_on = date(2020, 3, 1)


def preferences_member(live: LiveService, page: Page, lang: str) -> None:
    """The centre of a member who gets the offers for members because they are one."""
    member, _ = live.new_member(purposes=("newsletter",))
    member_since(live, member.subject_id)
    go(page, f"/preferences/{live.token('preferences', member.subject_id)}", lang)


def history(live: LiveService, page: Page, lang: str) -> None:
    go(page, f"/preferences/{_preference_token(live)}/history", lang)


def receipt(live: LiveService, page: Page, lang: str) -> None:
    """The signed receipt of a grant, reached from the history page."""
    history(live, page, lang)
    href = page.get_attribute("main a[href*='/receipts/']:not([download])", "href")
    assert href is not None
    go(page, href, lang)


def unsubscribe(live: LiveService, page: Page, lang: str) -> None:
    member, _ = live.new_member()
    token = live.token("unsubscribe", member.subject_id, live.purpose_id("newsletter"))
    go(page, f"/unsubscribe/{token}", lang)


def unsubscribed(live: LiveService, page: Page, lang: str) -> None:
    unsubscribe(live, page, lang)
    submit(page, "form[action^='/unsubscribe/']", "form[action$='/undo']")


def request_link(live: LiveService, page: Page, lang: str) -> None:
    go(page, "/borne/preferences", lang)


def request_link_errors(live: LiveService, page: Page, lang: str) -> None:
    request_link(live, page, lang)
    submit(page, LINK_FORM, ".error-summary")


def link_sent(live: LiveService, page: Page, lang: str) -> None:
    request_link(live, page, lang)
    page.fill("#email", live.unique_email("link"))
    submit(page, LINK_FORM, NO_FORM)


def download(live: LiveService, page: Page, lang: str) -> None:
    member, _ = live.new_member(purposes=("newsletter", "acquisitions"))
    go(page, f"/download/{live.token('download', member.subject_id)}", lang)


def data_copy(live: LiveService, page: Page, lang: str) -> None:
    member, _ = live.new_member(purposes=("newsletter", "acquisitions"))
    with live.session() as session:
        subject = session.get(Subject, member.subject_id)
        assert subject is not None
        subject.card_number = "2100012345678"
        # As the library system reports it: the page says since when and until when.
        subject.membership_started_on = date(2020, 3, 1)
        subject.membership_ended_on = date(2025, 12, 31)
        ledger.object_to(session, subject, "direct_marketing", channel=ledger.Channel.STAFF)
    go(page, f"/preferences/{live.token('preferences', member.subject_id)}/data", lang)


def not_mail(live: LiveService, page: Page, lang: str) -> None:
    member, _ = live.new_member()
    token = live.token("unsubscribe", member.subject_id, live.purpose_id("direct_debit"))
    go(page, f"/unsubscribe/{token}", lang)


def find_library(live: LiveService, page: Page, lang: str) -> None:
    go(page, "/preferences", lang)


def expired(live: LiveService, page: Page, lang: str) -> None:
    member, _ = live.new_member()
    max_age = live.app.config["PREFERENCES_MAX_AGE"]
    token = live.backdated_token("preferences", member.subject_id, age=max_age + 60)
    go(page, f"/preferences/{token}", lang)
    page.wait_for_selector("form[action$='/resend']")


def bad_link(live: LiveService, page: Page, lang: str) -> None:
    go(page, "/preferences/this-is-not-a-real-link", lang)


def not_found(live: LiveService, page: Page, lang: str) -> None:
    go(page, "/no-such-library/signup", lang)


def email_change(live: LiveService, page: Page, lang: str) -> None:
    member, _ = live.new_member()
    new_address = live.unique_email("nieuw")
    with live.session() as session:
        subject = session.get(Subject, member.subject_id)
        assert subject is not None
        ledger.request_email_change(session, subject, new_address)
    token = live.token("email_change", member.subject_id, ledger.email_fingerprint(new_address))
    go(page, f"/email/{token}", lang)


def email_changed(live: LiveService, page: Page, lang: str) -> None:
    email_change(live, page, lang)
    submit(page, "form[action^='/email/']", "main [role=status]")


def preferences_statement(live: LiveService, page: Page, lang: str) -> None:
    """The centre with a changed privacy statement to read. In Zoetermeer, whose pages no
    other browser test looks at, so its footer and notice change no other page."""
    address = live.unique_email("statement")
    with live.session() as session:
        library = live.library(session, "zoetermeer")
        result = ledger.signup(
            session, library, address, ["newsletter"], language=lang,
            channel=ledger.Channel.WEB_FORM,
        )  # fmt: skip
        ledger.confirm(session, result.subject, result.request_ids)
        subject_id = result.subject.id
        # Written directly, without its notices: the live worker has nobody to mail.
        session.add(PrivacyStatement(
            library_id=library.id, version=ledger.next_statement_version(session, library),
            url="https://www.bibliotheekzoetermeer.nl/privacy",
            effective_on=date.today() + timedelta(days=14), published_by="test",
            published_at=datetime.now(UTC),
            summary_nl="We bewaren je gegevens nu 5 jaar.\nDat was 7 jaar.",
            summary_en="We now keep your data for 5 years.\nIt was 7.",
        ))  # fmt: skip
    go(page, f"/preferences/{live.token('preferences', subject_id)}", lang)
    page.wait_for_selector("#statement-seen")


def _family_request(live: LiveService) -> tuple[str, str]:
    """A member's request to manage another member's mail, decided by the worker: the
    holder's preference token and the link in the other person's mail."""
    holder, _ = live.new_member("ouder")
    giver, _ = live.new_member("kind", purposes=("newsletter", "acquisitions"))
    with live.session() as session:
        asker = session.get(Subject, holder.subject_id)
        access = ledger.request_family_access(session, asker, giver.email, per_day=5, max_age=3600)
        assert access is not None
        access_id = access.id
    return live.token("preferences", holder.subject_id), live.token(
        "family", access_id, giver.subject_id
    )


def family_answer(live: LiveService, page: Page, lang: str) -> None:
    go(page, f"/family/{_family_request(live)[1]}", lang)


def family_answered(live: LiveService, page: Page, lang: str) -> None:
    family_answer(live, page, lang)
    submit(page, "form:has(#family-accept)", "main a[href^='/preferences/']")


def preferences_family(live: LiveService, page: Page, lang: str) -> None:
    holder_token, answer_token = _family_request(live)
    go(page, f"/family/{answer_token}", lang)
    submit(page, "form:has(#family-accept)", "main a[href^='/preferences/']")
    go(page, f"/preferences/{holder_token}", lang)
    page.wait_for_selector("#family .family-person")


def guardian_confirm(live: LiveService, page: Page, lang: str) -> None:
    """What a young member's parent or guardian sees from their mail (docs/minors.md)."""
    member, requests = live.new_member(purposes=("newsletter", "acquisitions"), confirmed=False)
    guardian = live.unique_email("ouder")
    with live.session() as session:
        subject = session.get_one(Subject, member.subject_id)
        subject.marked_minor, subject.guardian_email = True, guardian
    fingerprint = ledger.email_fingerprint(guardian)
    token = live.token("guardian_confirm", member.subject_id, requests, fingerprint)
    go(page, f"/guardian/confirm/{token}", lang)


def guardian_confirmed(live: LiveService, page: Page, lang: str) -> None:
    guardian_confirm(live, page, lang)
    submit(page, "form[action^='/guardian/confirm/']", NO_FORM)


def _demo_mandate(live: LiveService, reference: str) -> tuple[int, int]:
    """(subject id, mandate id) of a demo mandate: BORNE-00000 runs, BORNE-00004 waits for
    the member's online confirmation."""
    with live.session() as session:
        mandate = session.scalar(select(SepaMandate).where(SepaMandate.reference == reference))
        assert mandate is not None
        return mandate.subject_id, mandate.id


def mandate_confirm(live: LiveService, page: Page, lang: str) -> None:
    subject_id, mandate_id = _demo_mandate(live, "BORNE-00004")
    go(page, f"/mandate/{live.token('mandate', subject_id, mandate_id)}", lang)


def mandate_end(live: LiveService, page: Page, lang: str) -> None:
    subject_id, mandate_id = _demo_mandate(live, "BORNE-00000")
    token = live.token("preferences", subject_id)
    go(page, f"/preferences/{token}/mandates/{mandate_id}/end", lang)


MEMBER_PAGES: dict[str, Opener] = {
    opener.__name__: opener
    for opener in (
        signup, signup_errors, signup_sent, confirm, confirmed, confirm_used, preferences,
        preferences_changed, preferences_member, history, receipt, unsubscribe, unsubscribed,
        request_link, request_link_errors, link_sent,
        download, data_copy, not_mail, find_library, expired, bad_link, not_found,
        email_change, email_changed, preferences_statement, family_answer, family_answered,
        preferences_family, guardian_confirm, guardian_confirmed, mandate_confirm, mandate_end,
    )
}  # fmt: skip


# -- console pages --------------------------------------------------------------------------
# Each opener gets a page already logged in with the role named beside it (None: not at all).

DEMO_PERSON = "jan.jansen@example.nl"  # demo member 0: a long and varied history


def _at(path: str) -> Opener:
    def opener(live: LiveService, page: Page, lang: str) -> None:
        go(page, path, lang)

    return opener


def _person_id(live: LiveService, address: str) -> int:
    with live.session() as session:
        subject = ledger.find_subject(session, live.library(session), address)
        assert subject is not None
        return subject.id


def console_clients(live: LiveService, page: Page, lang: str) -> None:
    """The API keys with one key on them (what it may do, never used)."""
    live.api_key(["newsletter", "acquisitions"])
    go(page, "/admin/clients", lang)


def console_webhook_log(live: LiveService, page: Page, lang: str) -> None:
    """A receiver's log with a delivered message, a given-up one (its "send again" button)
    and one waiting for its next try."""
    with live.session() as session:
        library = live.library(session)
        endpoint = WebhookEndpoint(
            library_id=library.id, url="https://hooks.example.nl/consent",
            events=["consent.granted", "consent.withdrawn"], secret=outbox.new_secret(),
        )  # fmt: skip
        session.add(endpoint)
        session.flush()
        now = datetime.now(UTC)
        for number, (status, state) in enumerate(
            [(204, "delivered_at"), (500, "dead_at"), (503, None)]
        ):
            message = OutboxMessage(
                library_id=library.id, channel="webhook", endpoint_id=endpoint.id,
                event_type="consent.withdrawn", message_id=f"msg_browser_{endpoint.id}_{number}",
                payload={"type": "consent.withdrawn", "data": {"library": library.slug}},
                attempts=number + 1, last_status=status, created_at=now,
                next_attempt_at=now + timedelta(days=1),
            )  # fmt: skip
            if state:
                setattr(message, state, now)
            session.add(message)
        endpoint_id = endpoint.id
    go(page, f"/admin/webhooks/{endpoint_id}", lang)


def console_mandate_errors(live: LiveService, page: Page, lang: str) -> None:
    """A person's page after "record a mandate" refused an IBAN with wrong check digits."""
    console_subject(live, page, lang)
    open_action(page, "mandate")
    form = "form[action$='/mandates']"
    for field, value in {
        "#mandate_reference": "BORNE-TEST-1", "#mandate_creditor_id": "NL28ZZZ401234560000",
        "#mandate_iban": "NL91 ABNA 0417 1643 01", "#mandate_holder": "J. Jansen",
        "#mandate_signed_on": "2026-11-30", "#mandate_signed_place": "Borne",
    }.items():  # fmt: skip
        page.fill(field, value)
    submit(page, form, ".error-summary")


def console_login(live: LiveService, page: Page, lang: str) -> None:
    go(page, "/admin/login", lang)


def console_login_failed(live: LiveService, page: Page, lang: str) -> None:
    console_login(live, page, lang)
    page.fill("#email", "nobody@borne.example")
    page.fill("#password", "not the password at all")
    submit(page, "form[action='/admin/login']", ".error-summary")


def console_login_code(live: LiveService, page: Page, lang: str) -> None:
    console_login(live, page, lang)
    page.fill("#email", live.staff_with_login_code())
    page.fill("#password", STAFF_PASSWORD)
    submit(page, "form[action='/admin/login']", "#code")


def console_search(live: LiveService, page: Page, lang: str) -> None:
    go(page, "/admin/?q=jan", lang)
    page.wait_for_selector("#results li a")


def console_subject(live: LiveService, page: Page, lang: str) -> None:
    person_id = _person_id(live, DEMO_PERSON)
    with live.session() as session:
        subject = session.get(Subject, person_id)
        assert subject is not None
        subject.membership_started_on = date(2020, 3, 1)  # "member since", from the library
    go(page, f"/admin/subjects/{person_id}", lang)


def console_subject_errors(live: LiveService, page: Page, lang: str) -> None:
    console_subject(live, page, lang)
    open_action(page, "export")
    # Past the browser's own check of `required`, to see the service's error summary.
    page.locator("form[action$='/export']").evaluate("form => { form.noValidate = true; }")
    submit(page, "form[action$='/export']", ".error-summary")


def console_export(live: LiveService, page: Page, lang: str) -> None:
    console_subject(live, page, lang)
    open_action(page, "export")
    page.fill("#export-identification", "Pas gezien")
    submit(page, "form[action$='/export']", "dl.facts")


def console_erased(live: LiveService, page: Page, lang: str) -> None:
    member, _ = live.new_member("wissen")
    go(page, f"/admin/subjects/{member.subject_id}", lang)
    open_action(page, "erase")
    page.fill("#erase-identification", "Pas gezien")
    page.check("#confirm")
    submit(page, "form[action$='/erase']", "main [role=status]")


def console_import_preview(live: LiveService, page: Page, lang: str) -> None:
    go(page, "/admin/import", lang)
    rows = b"email;status\r\nnieuw.lid@example.nl;subscribed\r\ngeen-adres;subscribed\r\n"
    page.set_input_files("#file", {"name": "lijst.csv", "mimeType": "text/csv", "buffer": rows})
    submit(page, "form[action='/admin/import']", "form[action='/admin/import/confirm']")


STATEMENT_FORM = "form[action='/admin/privacy-statement']"


def console_statement_errors(live: LiveService, page: Page, lang: str) -> None:
    go(page, "/admin/privacy-statement", lang)
    page.fill("#url", "http://www.bibliotheekborne.nl/privacy")
    submit(page, STATEMENT_FORM, ".error-summary")


def console_statement_confirm(live: LiveService, page: Page, lang: str) -> None:
    go(page, "/admin/privacy-statement", lang)
    page.fill("#url", "https://www.bibliotheekborne.nl/privacy/versie-met-een-heel-lang-adres")
    page.fill("#effective_on", (date.today() + timedelta(days=14)).isoformat())
    page.fill("#summary_nl", "We bewaren je gegevens nu 5 jaar.\nDat was 7 jaar.")
    page.fill("#summary_en", "We now keep your data for 5 years.\nIt was 7.")
    # Only the check step: publishing would tell every subscriber of the live service.
    submit(page, STATEMENT_FORM, "form[action='/admin/privacy-statement/publish']")


def console_auditor(live: LiveService, page: Page, lang: str) -> None:
    """The auditor's view of the demo member, opened from their page, for today."""
    go(page, f"/admin/subjects/{_person_id(live, DEMO_PERSON)}", lang)
    page.click("main a[href^='/admin/auditor?subject=']")
    page.wait_for_selector("#auditor-facts")


def console_auditor_errors(live: LiveService, page: Page, lang: str) -> None:
    """The auditor's form after a date that cannot be read."""
    go(page, "/admin/auditor", lang)
    page.fill("#auditor-email", DEMO_PERSON)
    page.locator("#auditor-date").evaluate("input => { input.type = 'text'; }")
    page.fill("#auditor-date", "31-02-2026")
    submit(page, "form[action='/admin/auditor']", ".error-summary")


OFFICER, ADMIN = "privacy_officer", "admin"
CONSOLE_PAGES: dict[str, tuple[str | None, Opener]] = {
    "login": (None, console_login),
    "login_failed": (None, console_login_failed),
    "login_code": (None, console_login_code),
    "search": (OFFICER, console_search),
    "subject": (OFFICER, console_subject),
    "subject_errors": (OFFICER, console_subject_errors),
    "export": (OFFICER, console_export),
    "erased": (OFFICER, console_erased),
    "audit": (OFFICER, _at("/admin/audit")),
    # Filters that cannot be used: a date that does not exist, an unknown action.
    "audit_errors": (OFFICER, _at("/admin/audit?from=31-02-2026&action=onbekend")),
    "account": ("desk", _at("/admin/account")),
    "clients": (ADMIN, console_clients),
    "webhooks": (ADMIN, _at("/admin/webhooks")),
    "webhook_log": (ADMIN, console_webhook_log),
    "purposes": (ADMIN, _at("/admin/purposes")),
    "staff": (ADMIN, _at("/admin/staff")),
    "library": (ADMIN, _at("/admin/library")),
    "retention": (OFFICER, _at("/admin/retention")),
    "reports": (OFFICER, _at("/admin/reports")),
    "new_library": (ADMIN, _at("/admin/libraries/new")),
    "import": (ADMIN, _at("/admin/import")),
    "import_preview": (ADMIN, console_import_preview),
    "privacy_statement": (ADMIN, _at("/admin/privacy-statement")),
    "privacy_statement_errors": (ADMIN, console_statement_errors),
    "privacy_statement_confirm": (ADMIN, console_statement_confirm),
    "mandates": (OFFICER, _at("/admin/mandates")),
    "mandate_errors": ("desk", console_mandate_errors),
    "auditor_form": (OFFICER, _at("/admin/auditor")),
    "auditor": (OFFICER, console_auditor),
    "auditor_errors": (ADMIN, console_auditor_errors),
}
