"""The staff console's main tasks in a real browser, on the demo library's members."""

from playwright.sync_api import expect
from sqlalchemy import select

from consentsvc import ledger
from consentsvc.models import ApiClient, AuditEntry, ConsentEvent, StaffUser

from .conftest import Contexts
from .live import STAFF_PASSWORD, LiveService, log_in, open_action, submit
from .test_accessibility import violations

# Demo members (consentsvc.demo.seed_people): numbers 1 and 2 get the newsletter only, 3
# also acquisitions, 5 stopped the newsletter later; none of them pays by direct debit, so
# an erasure is complete. Each test uses its own person.
OBJECTOR, EXPORTED, ERASED, AT_THE_DESK, BY_PHONE = (
    "fatima.jansen@example.nl",
    "pieter.jansen@example.nl",
    "sanne.jansen@example.nl",
    "anouk.jansen@example.nl",
    "kees.jansen@example.nl",
)


def open_person(page, address: str) -> None:
    """Search while typing (htmx), then open the person from the results."""
    page.fill("#q", address.split("@")[0])
    result = page.locator("#results a", has_text=address)
    expect(result).to_have_count(1)
    expect(page.locator("#results h2")).to_have_text("1 persoon gevonden")
    result.click()
    expect(page.locator("h1")).to_have_text(address)


def person_id(live: LiveService, address: str) -> int:
    with live.session() as session:
        subject = ledger.find_subject(session, live.library(session), address)
        assert subject is not None
        return subject.id


def audited(live: LiveService, action: str, subject_id: int) -> list[str]:
    """Who (staff e-mail) the audit log says did this to the person."""
    with live.session() as session:
        return list(
            session.scalars(
                select(StaffUser.email)
                .join(AuditEntry, AuditEntry.staff_id == StaffUser.id)
                .where(AuditEntry.action == action, AuditEntry.subject_id == subject_id)
            )
        )


def staff_id(live: LiveService, role: str) -> int:
    with live.session() as session:
        found = session.scalar(select(StaffUser.id).where(StaffUser.email == live.staff[role]))
        assert found is not None
        return found


def test_privacy_officer_records_an_objection(live: LiveService, contexts: Contexts):
    page = contexts.staff_page("privacy_officer")
    officer = [live.staff["privacy_officer"]]
    open_person(page, OBJECTOR)
    assert audited(live, "view", person_id(live, OBJECTOR)) == officer
    assert live.states(OBJECTOR)["direct_marketing"] is None

    open_action(page, "stop")
    page.select_option("#stop-purpose", "direct_marketing")
    page.check("#objection")
    page.fill("#stop-note", "Belde op 12 mei, wil geen aanbiedingen meer")
    submit(page, "form[action$='/stop']", "[role=status]:text-is('Opgeslagen.')")
    state = page.locator("#consents .state", has_text="Aanbiedingen voor leden")
    expect(state.locator(".state-word")).to_have_text("Bezwaar gemaakt")
    assert live.states(OBJECTOR)["direct_marketing"] == "objected"
    assert audited(live, "objection", person_id(live, OBJECTOR)) == officer


def test_privacy_officer_exports_everything_held(live: LiveService, contexts: Contexts):
    page = contexts.staff_page("privacy_officer")
    open_person(page, EXPORTED)
    open_action(page, "export")
    page.fill("#export-identification", "Pas en geboortedatum gezien")
    # The heading names the person with their address masked; the copy has it in full.
    submit(page, "form[action$='/export']", "h1:has-text('p…@example.nl')")
    expect(page.locator("#copy-about")).to_contain_text(EXPORTED)
    # In the words the person reads on their own data page, not the ledger's codes.
    expect(page.locator("#copy-choices")).to_contain_text("Nieuwsbrief: Aan")
    expect(page.locator("main")).not_to_contain_text("granted")
    expect(page.locator("ol.history")).to_contain_text("Aanmeldformulier op de website")
    assert audited(live, "export", person_id(live, EXPORTED)) == [live.staff["privacy_officer"]]


def test_privacy_officer_erases_a_person(live: LiveService, contexts: Contexts):
    page = contexts.staff_page("privacy_officer")
    erased_id = person_id(live, ERASED)
    open_person(page, ERASED)
    open_action(page, "erase")
    page.fill("#erase-identification", "Pas gezien aan de balie")
    page.check("#confirm")
    submit(page, "form[action$='/erase']", "main [role=status]")
    expect(page.locator("main [role=status]")).to_contain_text("gewist")
    assert page.url.endswith(f"/admin/subjects/{erased_id}")  # a reload erases nothing again
    person = live.subject(erased_id)
    assert person.erased_at is not None and person.email != ERASED
    assert audited(live, "erase", erased_id) == [live.staff["privacy_officer"]]
    assert set(live.states_of(erased_id).values()) <= {None, "erased"}
    page.goto("/admin/?q=sanne.jansen")
    expect(page.locator("#results h2")).to_have_text("0 personen gevonden")


def test_desk_records_consent_given_at_the_desk(live: LiveService, contexts: Contexts):
    page = contexts.staff_page("desk")
    expect(page.locator("nav.staff")).not_to_contain_text("Audit")
    open_person(page, AT_THE_DESK)
    assert live.states(AT_THE_DESK)["newsletter"] == "withdrawn"
    expect(page.locator("form[action$='/erase']")).to_have_count(0)  # not for the desk

    # Choosing the purpose is choosing its current text in the member's language.
    open_action(page, "consent")
    page.select_option("#text", label="Nieuwsbrief — Nederlands, versie 1 (huidig)")
    page.check("#how-desk")
    page.fill("#note", "Aan de balie gevraagd, tekst voorgelezen")
    submit(page, "form[action$='/consent']", "[role=status]:text-is('Opgeslagen.')")
    # The newsletter needs double opt-in: the person gets a mail to confirm, over SMTP.
    assert live.states(AT_THE_DESK)["newsletter"] == "pending"
    confirm_link = live.link_from_mail(AT_THE_DESK, "confirm")
    subject_id, desk_id = person_id(live, AT_THE_DESK), staff_id(live, "desk")
    with live.session() as session:
        event = session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subject_id == subject_id)
            .order_by(ConsentEvent.id.desc())
        ).first()
        assert event is not None
        assert (event.action, event.channel, event.actor, event.evidence.details["how"]) == (
            "requested", "staff", f"staff:{desk_id}", "desk",
        )  # fmt: skip
    page.goto(confirm_link)
    submit(page, "form[action^='/confirm/']", "h1:text-is('Bedankt, je bent aangemeld')")
    assert live.states(AT_THE_DESK)["newsletter"] == "granted"


def letter_spacing(page, selector: str) -> float:
    """The computed letter-spacing of an input, in pixels ("normal" is none)."""
    value = page.locator(selector).evaluate("el => getComputedStyle(el).letterSpacing")
    return 0.0 if value == "normal" else float(value.removesuffix("px"))


def test_only_the_login_code_is_spaced_out(live: LiveService, contexts: Contexts):
    """Retention months read "84", not "8 4": the spacing is for the six-digit code only."""
    admin = contexts.staff_page("admin")
    admin.goto("/admin/library")
    months = "#retention_payment"
    admin.fill(months, "84")
    assert letter_spacing(admin, months) == 0.0
    # Account page: setting up a login code shows the spaced code field.
    desk = contexts.staff_page("desk")
    desk.goto("/admin/account")
    desk.click("form[action='/admin/account/code'] button[type=submit]")
    desk.wait_for_selector("#code")
    assert letter_spacing(desk, "#code") > 2
    login = contexts.page()
    login.goto("/admin/login")
    login.fill("#email", live.staff_with_login_code())
    login.fill("#password", STAFF_PASSWORD)
    submit(login, "form[action='/admin/login']", "#code")
    assert letter_spacing(login, "#code") > 2


def events_of(live: LiveService, subject_id: int, action: str) -> int:
    with live.session() as session:
        return len(
            session.scalars(
                select(ConsentEvent.id).where(
                    ConsentEvent.subject_id == subject_id, ConsentEvent.action == action
                )
            ).all()
        )


def test_desk_consent_keeps_every_input_on_an_error_and_a_reload_records_nothing_twice(
    live: LiveService, contexts: Contexts
):
    page = contexts.staff_page("desk")
    open_person(page, BY_PHONE)
    subject_id = person_id(live, BY_PHONE)
    assert live.states(BY_PHONE)["direct_marketing"] is None
    offers = "Aanbiedingen voor leden — Nederlands, versie 1 (huidig)"
    open_action(page, "consent")
    page.select_option("#text", label=offers)
    page.check("#how-phone")
    # Past the browser's own check of `required`: the service's answer is what counts.
    page.locator("form[action$='/consent']").evaluate("form => { form.noValidate = true; }")
    submit(page, "form[action$='/consent']", ".error-summary")
    expect(page.locator(".error-summary")).to_contain_text("Schrijf een korte notitie")
    # Nothing was reset: the purpose, the way it was given are as chosen.
    expect(page.locator("#text option:checked")).to_have_text(offers)
    expect(page.locator("#how-phone")).to_be_checked()
    assert violations(page) == []  # errors beside their fields, WCAG 2.1 AA
    # The address stays the person's page: a reload shows it, never a "method not allowed".
    assert page.url.endswith(f"/admin/subjects/{subject_id}")
    page.click(".error-summary a[href='#note']")
    expect(page.locator("#note")).to_be_focused()
    granted_before = events_of(live, subject_id, "granted")
    page.fill("#note", "Belde op, wil de aanbiedingen toch")
    submit(page, "form[action$='/consent']", "[role=status]:text-is('Opgeslagen.')")
    assert live.states(BY_PHONE)["direct_marketing"] == "granted"
    assert events_of(live, subject_id, "granted") == granted_before + 1
    # A reload after saving shows the page again; it does not send the form a second time.
    page.reload()
    expect(page.locator("h1")).to_have_text(BY_PHONE)
    assert "/consent" not in page.url
    assert events_of(live, subject_id, "granted") == granted_before + 1


def test_revoking_a_key_asks_first_and_works_without_javascript(
    live: LiveService, contexts: Contexts
):
    for javascript in (True, False):
        key = live.api_key(["newsletter"])
        with live.session() as session:
            client = session.scalar(select(ApiClient).where(ApiClient.key_prefix == key[:10]))
            assert client is not None
            client_id = client.id
        page = contexts.staff_page("admin", java_script_enabled=javascript)
        page.goto("/admin/clients")
        link = page.locator(f"a[href='/admin/clients/{client_id}/revoke']")
        link.click()
        expect(page.locator("h1")).to_have_text("De sleutel van sender intrekken?")
        expect(page.locator("main")).to_contain_text("Dit kan niet ongedaan worden gemaakt")
        # Going back changes nothing.
        page.click("text=Nee, terug")
        expect(page.locator("h1")).to_have_text("API-sleutels")
        assert revoked(live, client_id) is False
        link.click()
        if javascript:
            assert violations(page) == []  # the confirmation step, WCAG 2.1 AA
        submit(page, f"form[action='/admin/clients/{client_id}/revoke']", "[role=status]")
        expect(page.locator("[role=status]")).to_contain_text(
            "De sleutel van sender is ingetrokken."
        )
        assert page.url.endswith("/admin/clients")
        assert revoked(live, client_id) is True


def revoked(live: LiveService, client_id: int) -> bool:
    with live.session() as session:
        client = session.get(ApiClient, client_id)
        assert client is not None
        return client.revoked_at is not None


def test_the_colour_preview_follows_what_is_typed(live: LiveService, contexts: Contexts):
    page = contexts.staff_page("admin")
    page.goto("/admin/library")
    preview = page.locator("#colour-preview")
    expect(page.locator("#colour-picker")).to_be_visible()  # shown by site.js
    page.fill("#colour", "#ffeeaa")
    expect(preview.locator(".contrast-figure")).to_have_text("1,2 : 1")
    expect(preview.locator(".contrast-verdict")).to_have_text(
        "te licht voor witte tekst: kies een donkerdere kleur"
    )
    page.fill("#colour", "#1f4e79")
    expect(preview.locator(".contrast-figure")).to_have_text("8,7 : 1")
    expect(preview).not_to_have_class("too-light")
    band = preview.locator(".preview-page").evaluate("e => getComputedStyle(e).borderTopColor")
    assert band == "rgb(31, 78, 121)"
    # Nothing is saved by looking: the library keeps its colour until the form is sent.
    with live.session() as session:
        assert live.library(session).colour != "#ffeeaa"


def test_the_librarys_colour_comes_along_with_the_login(live: LiveService, contexts: Contexts):
    """htmx swaps in the body only: the colours must not stay the login page's neutral ones."""
    page = contexts.page()
    log_in(page, live.staff["privacy_officer"])
    assert page.url.endswith("/admin/")
    with live.session() as session:
        colour = live.library(session).colour
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    header = page.locator("header.site").evaluate("e => getComputedStyle(e).borderTopColor")
    assert header == f"rgb({red}, {green}, {blue})"
