"""Two things a member meets before the preference centre: the language switch, which with
htmx must also change <html lang> (screen readers pick their voice from it, WCAG 3.1.1), on
member pages and in the console; and links that are too old or broken, whose pages must
say whose library it is when that is known and always offer the way to a new link."""

from playwright.sync_api import Page, expect

from .conftest import Contexts
from .live import LiveService

BORNE_COLOUR = "rgb(0, 102, 110)"  # #00666e, the demo library's colour


def html_lang(page: Page) -> str | None:
    return page.locator("html").get_attribute("lang")


def mark(page: Page) -> None:
    """Set a marker on the window: it survives only swaps, not full page loads."""
    page.evaluate("window.__marker = 'same page'")


def assert_swapped_by_htmx(page: Page) -> None:
    assert page.evaluate("window.__marker") == "same page"


def test_language_switch_on_a_member_page_changes_html_lang(live: LiveService, contexts: Contexts):
    page = contexts.page()
    page.goto("/borne/signup?lang=nl")
    assert html_lang(page) == "nl"
    mark(page)

    page.click("header a[hreflang=en]")
    expect(page.locator("h1")).to_have_text("Get mail from Bibliotheek Borne")
    assert_swapped_by_htmx(page)
    assert html_lang(page) == "en"

    # Back: htmx restores the Dutch page from the server; its language comes along.
    page.go_back()
    expect(page.locator("h1")).to_have_text("Mail krijgen van Bibliotheek Borne")
    assert html_lang(page) == "nl"


def test_language_choice_in_the_preference_centre_changes_html_lang(
    live: LiveService, contexts: Contexts
):
    member, _ = live.new_member("taal")
    page = contexts.page()
    page.goto(f"/preferences/{live.token('preferences', member.subject_id)}")
    mark(page)
    page.select_option("#language", "en")
    page.click("#language-choice button[type=submit]")
    expect(page.locator("h1")).to_have_text("Your mail settings")
    assert_swapped_by_htmx(page)
    assert html_lang(page) == "en"
    expect(page.locator("#saved-language")).to_have_text("Your choice has been saved.")


def test_language_switch_in_the_console_changes_html_lang(live: LiveService, contexts: Contexts):
    page = contexts.staff_page("desk")
    page.goto("/admin/?lang=nl")
    assert html_lang(page) == "nl"
    mark(page)
    page.click("header a[hreflang=en]")
    expect(page.locator("header a[hreflang=en]")).to_have_attribute("aria-current", "true")
    assert_swapped_by_htmx(page)
    assert html_lang(page) == "en"
    page.click("header a[hreflang=nl]")
    expect(page.locator("header a[hreflang=nl]")).to_have_attribute("aria-current", "true")
    assert html_lang(page) == "nl"


def test_an_expired_link_is_in_the_librarys_colours_and_mails_a_new_one(
    live: LiveService, contexts: Contexts
):
    member, _ = live.new_member("verlopen", language="en")
    old = live.backdated_token(
        "preferences", member.subject_id, age=live.app.config["PREFERENCES_MAX_AGE"] + 60
    )
    page = contexts.page()
    page.goto(f"/preferences/{old}")
    expect(page.locator("h1")).to_have_text("This link has expired")
    # The library's logo names it, with its name as alt text.
    expect(page.locator(".library-name img")).to_have_attribute("alt", "Bibliotheek Borne")
    colour = page.evaluate("getComputedStyle(document.querySelector('.library-name')).color")
    assert colour == BORNE_COLOUR
    assert html_lang(page) == "en"  # the member's own language
    expect(page.locator("main")).not_to_contain_text("410")

    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_have_text("Check your mail")
    page.goto(live.link_from_mail(member.email, "preferences"))
    expect(page.locator("h1")).to_have_text("Your mail settings")


def test_a_bad_link_leads_to_a_new_link_from_the_members_library(
    live: LiveService, contexts: Contexts
):
    member, _ = live.new_member("kapot")
    page = contexts.page()
    page.goto("/preferences/this-link-was-cut-in-two")
    expect(page.locator("h1")).to_have_text("Deze link werkt niet")
    expect(page.locator("main")).not_to_contain_text("Foutcode")
    expect(page.locator("main")).not_to_contain_text("400")

    page.select_option("#library", "borne")
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_have_text("Je mailinstellingen veranderen")
    expect(page.locator(".library-name img")).to_have_attribute("alt", "Bibliotheek Borne")
    page.fill("#email", member.email)
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_have_text("Kijk in je mail")
    page.goto(live.link_from_mail(member.email, "preferences"))
    expect(page.locator("h1")).to_have_text("Je mailinstellingen")
