"""Fixtures for the real-browser tests: one live service and one Chromium for the session,
a fresh browser context per use, and a check that no page reaches beyond the service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from ..conftest import needs
from .live import CHROMIUM, CHROMIUM_ARGS, LiveService, log_in

SCREENSHOTS = Path(__file__).parent / "screenshots"
# Long enough for a slow shared machine, short enough that a broken step fails quickly.
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    service = LiveService(tmp_path_factory.mktemp("live"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    needs(
        Path(CHROMIUM).exists(), f"Debian's chromium ({CHROMIUM})",
        "the browser tests need it: apt-get install chromium (make test does, as root)",
    )  # fmt: skip
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


class Contexts:
    """Makes browser contexts that record every request their pages make."""

    def __init__(self, browser: Browser, live: LiveService, logins: dict[str, Any]) -> None:
        self.browser, self.live, self.logins = browser, live, logins
        self.made: list[BrowserContext] = []
        self.requests: list[tuple[str, str]] = []  # (resource type, URL)

    def __call__(self, **options: Any) -> BrowserContext:
        context = self.browser.new_context(base_url=self.live.base_url, **options)
        context.set_default_timeout(TIMEOUT_MS)
        context.on("request", lambda r: self.requests.append((r.resource_type, r.url)))
        self.made.append(context)
        return context

    def page(self, **options: Any) -> Page:
        return self(**options).new_page()

    def staff_page(self, role: str, **options: Any) -> Page:
        """A page on the console's search page, logged in as the demo library's staff member
        with this role.

        The first time per role it logs in on the login page; later contexts start with
        that session's cookies, since a login (argon2) is the slowest step of a page.
        """
        if role in self.logins:
            page = self.page(storage_state=self.logins[role], **options)
            page.goto("/admin/")
            page.wait_for_selector("#q")
            return page
        page = self.page(**options)
        log_in(page, self.live.staff[role])
        self.logins[role] = page.context.storage_state()
        return page

    def foreign(self) -> list[tuple[str, str]]:
        own = self.live.base_url + "/"
        return [(kind, url) for kind, url in self.requests if not url.startswith(own)]


@pytest.fixture(scope="session")
def logins() -> dict[str, Any]:
    """Storage state (cookies) of a logged-in context, per staff role."""
    return {}


@pytest.fixture
def contexts(browser: Browser, live: LiveService, logins: dict[str, Any]) -> Iterator[Contexts]:
    made = Contexts(browser, live, logins)
    yield made
    for context in made.made:
        context.close()
    # Every page of every browser test: nothing may come from or go to another site.
    assert made.foreign() == [], "requests that left the service's origin"
