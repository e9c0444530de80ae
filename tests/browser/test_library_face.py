"""Each library's own face in a real browser: the header with its logo and the footer with
its contact, privacy officer and complaint link fit a 320 px phone without sideways scrolling."""

import pytest
from playwright.sync_api import expect

from consentsvc.library_face import COMPLAINT_URL

from .conftest import Contexts
from .live import LiveService
from .test_screenshots import NARROW, WIDE, shoot


@pytest.mark.parametrize(
    "slug, path, privacy_officer",
    [
        ("borne", "/borne/signup", "fg@bibliotheekborne.nl"),
        ("zoetermeer", "/zoetermeer/preferences", "privacy@bibliotheekzoetermeer.nl"),
    ],
)
def test_the_header_with_logo_and_the_footer_fit_a_phone(
    live: LiveService, contexts: Contexts, slug: str, path: str, privacy_officer: str
):
    page = contexts.page(viewport=NARROW)
    page.goto(f"{path}?lang=nl")
    logo = page.locator("header.site img.library-logo")
    expect(logo).to_be_visible()
    expect(logo).to_have_attribute("alt", page.locator("footer.site strong").first.inner_text())
    # The image really loaded from the service itself (a broken image has no natural width).
    assert logo.evaluate("img => img.complete && img.naturalWidth > 0")
    assert logo.get_attribute("src").startswith(f"/{slug}/logo?v=")
    box = logo.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= NARROW["width"]
    footer = page.locator("footer.site")
    expect(footer.locator(f"a[href='mailto:{privacy_officer}']")).to_be_visible()
    expect(footer.locator(f"a[href='{COMPLAINT_URL}']")).to_be_visible()
    page.set_viewport_size(WIDE)
    assert shoot(page, f"face-{slug}") <= NARROW["width"]
    # The logo is the only image, and no request left the service's own origin.
    assert all(url.startswith(live.base_url) for _, url in contexts.requests)
