"""Pages load nothing from, and send nothing to, any site but the service itself.

Every browser test checks this for the pages it visits (the `contexts` fixture); this test
makes sure the check sees what a page really loads: documents, styles, htmx and its calls.
"""

from .conftest import Contexts
from .live import LiveService
from .pages import CONSOLE_PAGES, MEMBER_PAGES


def test_requests_are_recorded_and_stay_on_the_services_origin(
    live: LiveService, contexts: Contexts
):
    page = contexts.page()
    for name in ("signup_sent", "preferences_changed", "download"):
        MEMBER_PAGES[name](live, page, "nl")
    role, opener = CONSOLE_PAGES["search"]
    assert role is not None
    opener(live, contexts.staff_page(role), "nl")

    kinds = {kind for kind, _url in contexts.requests}
    assert {"document", "stylesheet", "script", "xhr"} <= kinds
    urls = {url.split("?")[0] for _kind, url in contexts.requests}
    assert f"{live.base_url}/static/vendor/htmx.min.js" in urls
    assert f"{live.base_url}/borne/theme.css" in urls
    assert contexts.foreign() == []
