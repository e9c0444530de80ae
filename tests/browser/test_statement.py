"""The preference centre's notice of a changed privacy statement, put away with "Gelezen":
with htmx in place (focus on its confirmation, never lost to the page), and without
JavaScript by a plain form; either way it does not come back on a reload."""

import pytest
from playwright.sync_api import expect

from .conftest import Contexts
from .live import LiveService
from .pages import preferences_statement


@pytest.mark.parametrize("javascript", [True, False])
def test_gelezen_puts_the_notice_away(live: LiveService, contexts: Contexts, javascript: bool):
    page = contexts.page(viewport={"width": 320, "height": 700}, java_script_enabled=javascript)
    preferences_statement(live, page, "nl")
    expect(page.locator("#statement-title")).to_have_text("Ons privacy statement is veranderd")
    expect(page.locator("footer")).to_contain_text("geldt een nieuw privacy statement")
    address = page.url
    page.click("#statement-seen")
    saved = page.locator("#saved-statement")
    expect(saved).to_have_text("Gelezen. Je ziet dit bericht niet meer.")
    expect(page.locator("#statement-title")).to_have_count(0)
    if javascript:
        assert page.url == address  # swapped in place, not a new page
        expect(saved).to_be_focused()
        expect(page.locator("#notice")).to_have_text("Je keuze is opgeslagen.")
    else:
        assert "saved=statement" in page.url
    page.reload()
    expect(page.locator("#statement-title")).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
