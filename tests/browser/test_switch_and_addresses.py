"""The preference centre's switches as a keyboard and screen-reader user meets them, with
and without JavaScript; and the address bar after every form, which must show a page that
a reload shows again (Post/Redirect/Get, or htmx pushing the page's own address)."""

import pytest
from playwright.sync_api import Page, expect

from .conftest import Contexts
from .live import STAFF_PASSWORD, LiveService
from .pages import member_since

JAVASCRIPT = pytest.mark.parametrize("javascript", [True, False], ids=["htmx", "no-javascript"])


def centre(live: LiveService, contexts: Contexts, javascript: bool, member: bool = False) -> Page:
    person, _ = live.new_member("schakel", purposes=("newsletter",))
    if member:
        member_since(live, person.subject_id)
    page = contexts.page(java_script_enabled=javascript)
    page.goto(f"/preferences/{live.token('preferences', person.subject_id)}")
    return page


def names_of_switches(page: Page) -> list[tuple[str, str]]:
    return [
        (switch.get_attribute("id") or "", switch.get_attribute("aria-checked") or "")
        for switch in page.get_by_role("switch").all()
    ]


@JAVASCRIPT
def test_every_mail_is_a_switch_named_by_its_title_and_state(
    live: LiveService, contexts: Contexts, javascript
):
    page = centre(live, contexts, javascript)
    mails = page.locator("section[aria-labelledby=mails-title]")
    for name, checked in [
        ("Nieuwsbrief: Aan", "true"),
        ("Aanwinstenmail: Uit", "false"),
        ("Aanbiedingen voor leden: Uit", "false"),
    ]:
        switch = mails.get_by_role("switch", name=name, exact=True)
        expect(switch).to_have_attribute("aria-checked", checked)
        expect(switch).to_have_js_property("tagName", "BUTTON")  # Space and Enter press it
    # No button pushes towards "on": every switch has the same look, on or off.
    styles = page.evaluate("""() => [...document.querySelectorAll('button.switch')].map(b => {
        const s = getComputedStyle(b);
        return [s.backgroundColor, s.color, s.borderTopColor, s.fontWeight].join(' ');
    })""")
    assert len(set(styles)) == 1, styles


@JAVASCRIPT
@pytest.mark.parametrize("key", ["Space", "Enter"])
def test_a_switch_works_with_the_keyboard(live: LiveService, contexts: Contexts, javascript, key):
    page = centre(live, contexts, javascript)
    switch = page.locator("#toggle-acquisitions")
    switch.focus()
    # A visible focus ring around the switch.
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press(key)
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(switch).to_have_accessible_name("Aanwinstenmail: Aan")
    expect(page.locator("#notice")).to_have_text("Aanwinstenmail: Aan. Je keuze is opgeslagen.")
    if javascript:
        expect(switch).to_be_focused()  # swapped in place, the focus stayed on it
        assert "saved=" not in page.url
    else:
        assert page.url.endswith("?saved=acquisitions#purpose-acquisitions")
    page.locator("#toggle-acquisitions").focus()
    page.keyboard.press(key)
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(switch).to_have_accessible_name("Aanwinstenmail: Uit")


@JAVASCRIPT
def test_offers_for_a_member_say_why_and_have_one_action(
    live: LiveService, contexts: Contexts, javascript
):
    page = centre(live, contexts, javascript, member=True)
    card = page.locator("#purpose-direct_marketing")
    expect(card.locator(".why")).to_have_text(
        "Je krijgt dit omdat je lid bent. Je kunt het stoppen."
    )
    expect(card.locator("button")).to_have_count(1)
    switch = card.get_by_role("switch", name="Aanbiedingen voor leden: Aan")
    expect(switch).to_have_attribute("aria-checked", "true")
    switch.focus()
    page.keyboard.press("Space")
    # Stopped: an objection, and the one action is now to start it again.
    switch = card.get_by_role("switch", name="Aanbiedingen voor leden: Uit: je hebt nee gezegd")
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(card.locator(".why")).to_have_text(
        "Je hebt gezegd dat je dit niet wilt. Je kunt het weer aanzetten."
    )
    expect(card.locator("button")).to_have_count(1)


@JAVASCRIPT
def test_after_signup_the_address_is_the_page_shown(
    live: LiveService, contexts: Contexts, javascript
):
    page = contexts.page(java_script_enabled=javascript)
    address = live.unique_email("adres")
    page.goto("/borne/signup")
    page.fill("#email", address)
    page.check("#purpose-newsletter")
    page.click("form[action='/borne/signup'] button[type=submit]")
    expect(page.locator("h1")).to_have_text("Kijk in je mail")
    assert page.url.endswith("/borne/signup/sent"), page.url
    assert address.split("@")[0] not in page.url
    page.reload()
    expect(page.locator("h1")).to_have_text("Kijk in je mail")
    expect(page.locator("main .address")).to_have_text(address)
    page.go_back()
    expect(page.locator("form[action='/borne/signup']")).to_be_visible()
    assert page.url.endswith("/borne/signup")
    # "Wrong address?" leads back to the form, at its own address.
    page.go_forward()
    page.get_by_role("link", name="Verkeerd adres? Vul het formulier opnieuw in.").click()
    expect(page.locator("form[action='/borne/signup']")).to_be_visible()
    # Refused: the errors are shown at the form's own address.
    page.click("form[action='/borne/signup'] button[type=submit]")
    expect(page.locator(".error-summary a[href='#email']")).to_have_text("Vul je e-mailadres in.")
    assert page.url.endswith("/borne/signup")


@JAVASCRIPT
def test_after_login_the_address_is_the_page_shown(
    live: LiveService, contexts: Contexts, javascript
):
    page = contexts.page(java_script_enabled=javascript)
    page.goto("/admin/login")
    page.fill("#email", "nobody@borne.example")
    page.fill("#password", "not the password")
    page.click("form[action='/admin/login'] button[type=submit]")
    expect(page.locator(".error-summary")).to_be_visible()
    assert page.url.endswith("/admin/login")  # a refused form stays at its own address
    page.reload()
    expect(page.locator("#password")).to_be_visible()
    page.fill("#email", live.staff["desk"])
    page.fill("#password", STAFF_PASSWORD)
    page.click("form[action='/admin/login'] button[type=submit]")
    page.wait_for_selector("#q")
    assert page.url.endswith("/admin/"), page.url
    page.reload()
    expect(page.locator("#q")).to_be_visible()
