"""axe-core on every member and console page, in Dutch and in English: no WCAG 2.1 A or AA
violation may remain."""

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

from .conftest import Contexts
from .live import LiveService
from .pages import CONSOLE_PAGES, MEMBER_PAGES

AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}
axe = Axe()


def violations(page: Page) -> list[str]:
    """One readable line per broken rule, naming the elements that break it."""
    found = axe.run(page, options=AXE_OPTIONS).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(
            f"{' '.join(node['target'])}: {node.get('failureSummary', '').splitlines()[-1]}"
            for node in v["nodes"][:5]
        )
        for v in found
    ]


LANGUAGES = ["nl", "en"]


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", MEMBER_PAGES)
def test_member_page_is_accessible(live: LiveService, contexts: Contexts, name: str, lang: str):
    page = contexts.page()
    MEMBER_PAGES[name](live, page, lang)
    assert page.locator("html").get_attribute("lang") == lang
    assert violations(page) == [], f"{name} in {lang}"


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", CONSOLE_PAGES)
def test_console_page_is_accessible(live: LiveService, contexts: Contexts, name: str, lang: str):
    role, opener = CONSOLE_PAGES[name]
    page = contexts.staff_page(role) if role else contexts.page()
    opener(live, page, lang)
    assert page.locator("html").get_attribute("lang") == lang
    assert violations(page) == [], f"{name} in {lang}"


def test_the_check_finds_a_broken_page(live: LiveService, contexts: Contexts):
    # Guards against a check that passes because it looks at nothing: the signup page with
    # its e-mail label taken away and its text made pale must fail on exactly those rules.
    page = contexts.page()
    MEMBER_PAGES["signup"](live, page, "nl")
    page.evaluate("""() => {
      document.querySelector('label[for=email]').remove();
      document.querySelector('main p').style.color = '#ccc';
    }""")
    assert {line.split(" ")[0] for line in violations(page)} == {"label", "color-contrast"}
