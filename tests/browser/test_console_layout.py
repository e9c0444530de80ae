"""How the console is laid out in a real browser: a person's page in two columns with its
forms folded away, one column on a phone; the navigation on one row, the page shown marked."""

from playwright.sync_api import Page, expect

from .conftest import Contexts
from .live import LiveService, open_action
from .pages import CONSOLE_PAGES
from .test_screenshots import NARROW, WIDE


def box(page: Page, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found is not None, selector
    return found


def visible_forms(page: Page) -> int:
    """Forms in the page's main part a person can see (the search and language are outside)."""
    return page.locator("main form:visible").count()


def test_a_persons_page_puts_who_and_the_timeline_side_by_side(
    live: LiveService, contexts: Contexts
):
    role, opener = CONSOLE_PAGES["subject"]
    page = contexts.staff_page(role, viewport=WIDE)
    opener(live, page, "nl")
    who, side = box(page, "section.who"), box(page, ".person-side")
    # The timeline's column (the mandates and family first, then the timeline) is beside
    # who the person is, not under it.
    assert box(page, "#timeline")["x"] >= who["x"] + who["width"]
    assert side["y"] < who["y"] + who["height"]
    # Every action is there by name, in its group, and none of their forms is in the way.
    panel = page.locator(".actions-panel")
    expect(panel.locator("h3")).to_have_text(
        ["Toestemming", "Rechten van de persoon", "Gevarenzone"]
    )
    expect(panel.locator("details > summary")).to_have_count(8)
    assert visible_forms(page) == 0
    # An access request: one click opens its form and only that one.
    open_action(page, "export")
    assert visible_forms(page) == 1
    expect(page.locator("#export-identification")).to_be_visible()
    # An objection and an erasure are reached the same way, without scrolling past others.
    for name, field in (("stop", "#stop-note"), ("erase", "#erase-identification")):
        open_action(page, name)
        expect(page.locator(field)).to_be_visible()

    page.set_viewport_size(NARROW)
    who, actions = box(page, "section.who"), box(page, ".actions-panel")
    timeline = box(page, "#timeline")
    assert who["y"] < actions["y"] < timeline["y"]  # one column: who, actions, timeline
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]


def test_a_refused_form_opens_again_with_its_error(live: LiveService, contexts: Contexts):
    role, opener = CONSOLE_PAGES["subject_errors"]
    page = contexts.staff_page(role, viewport=WIDE)
    opener(live, page, "nl")
    expect(page.locator("#act-export")).to_have_attribute("open", "")
    expect(page.locator("#act-erase")).not_to_have_attribute("open", "")
    page.click(".error-summary a")
    expect(page.locator("#export-identification")).to_be_focused()


def test_the_navigation_is_one_row_and_marks_the_page_shown(live: LiveService, contexts: Contexts):
    page = contexts.staff_page("admin", viewport=WIDE)
    nav = page.locator("nav.staff")
    expect(nav.locator("[aria-current=page]")).to_have_text("Persoon zoeken")
    tops = nav.locator(":scope > ul > li").evaluate_all(
        "items => items.map(i => Math.round(i.getBoundingClientRect().top))"
    )
    assert len(tops) >= 7 and len(set(tops)) == 1, tops  # one row at desktop width
    # A person's page belongs to the search.
    opener = CONSOLE_PAGES["subject"][1]
    opener(live, page, "nl")
    expect(nav.locator("[aria-current=page]")).to_have_text("Persoon zoeken")
    # A setting is marked inside its group, and the group itself shows it holds the page.
    page.goto("/admin/webhooks")
    expect(nav.locator("details.current > summary")).to_have_text("Instellingen")
    nav.locator("details > summary").click()
    expect(nav.locator("details [aria-current=page]")).to_have_text("Webhooks")
    expect(nav.locator("[aria-current=page]")).to_have_count(1)
