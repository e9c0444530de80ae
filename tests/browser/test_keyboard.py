"""Signup and the preference centre with the keyboard only: Tab, Shift+Tab, Space, Enter."""

from playwright.sync_api import Page, expect

from .conftest import Contexts
from .live import LiveService

# What has the focus: an element's id, or else its tag and text.
FOCUSED = """() => {
  const e = document.activeElement;
  return e.id ? '#' + e.id : e.tagName.toLowerCase() + ':' + e.textContent.trim();
}"""


def focused(page: Page) -> str:
    return page.evaluate(FOCUSED)


def tab(page: Page, key: str = "Tab") -> str:
    page.keyboard.press(key)
    return focused(page)


def test_signup_with_the_keyboard_only(live: LiveService, contexts: Contexts):
    page = contexts.page()
    address = live.unique_email("toetsenbord")
    page.goto("/borne/signup")

    assert tab(page) == "a:Naar de inhoud"
    assert [tab(page), tab(page)] == ["a:Nederlands", "a:English"]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert focused(page) == "a:Naar de inhoud"
    page.keyboard.press("Enter")  # the skip link jumps past the header
    assert tab(page) == "#email"
    page.keyboard.type(address)
    assert tab(page) == "#purpose-newsletter"
    page.keyboard.press("Space")
    assert tab(page) == "#purpose-acquisitions"
    assert tab(page, "Shift+Tab") == "#purpose-newsletter"
    expect(page.locator("#purpose-newsletter")).to_be_checked()
    expect(page.locator("#purpose-acquisitions")).not_to_be_checked()
    assert [tab(page), tab(page)] == ["#purpose-acquisitions", "button:Aanmelden"]
    page.keyboard.press("Enter")

    expect(page.locator("h1")).to_have_text("Kijk in je mail")
    live.link_from_mail(address, "confirm")  # the worker has recorded the signup
    states = live.states(address)
    assert (states["newsletter"], states["acquisitions"]) == ("pending", None)


def test_preference_centre_with_the_keyboard_only(live: LiveService, contexts: Contexts):
    member, _ = live.new_member("toetsen", purposes=("newsletter",))
    page = contexts.page()
    page.goto(f"/preferences/{live.token('preferences', member.subject_id)}")

    stops = [tab(page) for _ in range(6)]
    assert stops == [
        "a:Naar de inhoud", "a:Nederlands", "a:English",
        "#toggle-newsletter", "#toggle-acquisitions", "#toggle-direct_marketing",
    ]  # fmt: skip
    assert tab(page, "Shift+Tab") == "#toggle-acquisitions"
    assert tab(page, "Shift+Tab") == "#toggle-newsletter"

    toggle = page.locator("#toggle-newsletter")
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-checked", "false")
    expect(toggle).to_have_accessible_name("Nieuwsbrief: Uit")
    # The list was swapped in place; the focus stays on the button just used, so the
    # member can go on from where they were.
    expect(toggle).to_be_focused()
    assert live.states_of(member.subject_id)["newsletter"] == "withdrawn"

    page.keyboard.press("Space")
    expect(toggle).to_have_attribute("aria-checked", "true")
    expect(toggle).to_have_accessible_name("Nieuwsbrief: Aan")
    expect(toggle).to_be_focused()
    assert live.states_of(member.subject_id)["newsletter"] == "granted"

    for _ in range(10):
        if tab(page) == "#stop-all-button":
            break
    assert focused(page) == "#stop-all-button"
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_have_text("Alle mail is gestopt. Je keuze is opgeslagen.")
    assert live.states_of(member.subject_id)["newsletter"] == "withdrawn"
