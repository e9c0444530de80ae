"""Screenshots of the member pages (and the newer console pages) in Dutch, wide and
phone-narrow, for a person to look at (tests/browser/screenshots/, not kept in git); narrow
pages must not scroll sideways."""

import pytest
from playwright.sync_api import Page

from .conftest import SCREENSHOTS, Contexts
from .live import LiveService
from .pages import CONSOLE_PAGES, MEMBER_PAGES

WIDE, NARROW = {"width": 1280, "height": 800}, {"width": 320, "height": 740}


def shoot(page: Page, name: str) -> int:
    """Take the page wide and narrow; return its width at the narrow size."""
    SCREENSHOTS.mkdir(exist_ok=True)
    for size in (WIDE, NARROW):
        page.set_viewport_size(size)
        path = SCREENSHOTS / f"{name}-{size['width']}.png"
        path.unlink(missing_ok=True)
        page.screenshot(path=path, full_page=True)
        assert path.stat().st_size > 1000, path
    return page.evaluate("document.documentElement.scrollWidth")


@pytest.mark.parametrize("name", MEMBER_PAGES)
def test_member_page_screenshots(live: LiveService, contexts: Contexts, name: str):
    page = contexts.page(viewport=WIDE)
    MEMBER_PAGES[name](live, page, "nl")
    # At 320 px nothing may stick out: a member on a phone never scrolls sideways.
    assert shoot(page, name) <= NARROW["width"]


# The console pages this issue added; the older ones (a person's page among them) still
# scroll sideways on a phone, which the console redesign takes on.
NEW_CONSOLE_PAGES = [
    "retention", "import", "import_preview", "library",
    "privacy_statement", "privacy_statement_errors", "privacy_statement_confirm",
    "mandates", "mandate_errors", "auditor_form", "auditor", "auditor_errors",
    "reports", "new_library", "audit", "audit_errors", "export",
]  # fmt: skip


@pytest.mark.parametrize("name", NEW_CONSOLE_PAGES)
def test_console_page_screenshots(live: LiveService, contexts: Contexts, name: str):
    role, opener = CONSOLE_PAGES[name]
    page = contexts.staff_page(role, viewport=WIDE)
    opener(live, page, "nl")
    assert shoot(page, f"console-{name}") <= NARROW["width"]


def test_the_auditor_s_view_prints_without_the_console(live: LiveService, contexts: Contexts):
    """On paper: the answer only, without navigation, form or footer."""
    role, opener = CONSOLE_PAGES["auditor"]
    page = contexts.staff_page(role, viewport=WIDE)
    opener(live, page, "nl")
    assert page.locator("nav.staff").is_visible()
    page.emulate_media(media="print")
    for hidden in ("nav.staff", "form[action='/admin/auditor']", "footer.site", ".languages"):
        assert not page.locator(hidden).is_visible(), hidden
    assert page.locator("#auditor-facts").is_visible()
    assert page.locator(".auditor-events > li").first.is_visible()
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / "console-auditor-print.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 1000
