"""A member's whole journey in a real browser: signup, the confirmation mail over SMTP,
the preference centre, and unsubscribing with the link a sender puts in its mails."""

import re

import httpx
import pytest
from playwright.sync_api import Request, expect

from .conftest import Contexts
from .live import LiveService, submit


def list_unsubscribe_url(live: LiveService, address: str, purpose: str) -> str:
    """The https/http link of List-Unsubscribe, as a sender gets it from the consent check."""
    response = httpx.post(
        f"{live.base_url}/api/v1/consent/check",
        json={"purpose": purpose, "recipients": [address]},
        headers={"Authorization": f"Bearer {live.api_key([purpose])}"},
    )
    [result] = response.json()["results"]
    assert result["allowed"] is True
    match = re.search(r"<(http[^>]+/unsubscribe/[^>]+)>", result["headers"]["List-Unsubscribe"])
    assert match, result["headers"]
    return match.group(1)


@pytest.mark.parametrize("javascript", [True, False], ids=["htmx", "no-javascript"])
def test_signup_confirm_preferences_unsubscribe(live: LiveService, contexts: Contexts, javascript):
    page = contexts.page(java_script_enabled=javascript)
    address = live.unique_email("reis")

    page.goto("/borne/signup")
    page.fill("#email", address)
    page.check("#purpose-newsletter")
    submit(page, "form[action='/borne/signup']", "h1:text-is('Kijk in je mail')")
    # The address bar shows the page that is shown; a reload shows it again, posting nothing.
    assert page.url.endswith("/borne/signup/sent") and address not in page.url
    expect(page.locator("main .address")).to_have_text(address)
    page.reload()
    expect(page.locator("h1")).to_have_text("Kijk in je mail")
    expect(page.locator("main .address")).to_have_text(address)

    # The worker records the signup and sends the confirmation mail over SMTP; its link
    # shows a button, and only the button confirms.
    confirm = live.link_from_mail(address, "confirm")
    assert live.states(address)["newsletter"] == "pending"
    page.goto(confirm)
    assert live.states(address)["newsletter"] == "pending"
    submit(page, "form[action^='/confirm/']", "h1:text-is('Bedankt, je bent aangemeld')")
    # What you now get, and (in a list of its own) the signed receipt of it.
    expect(page.locator("main ul:not(.actions) li")).to_have_text(["Nieuwsbrief"])
    expect(page.locator("main ul.actions li")).to_have_text(["Bewijs: Nieuwsbrief"])
    assert live.states(address)["newsletter"] == "granted"

    # "Mail me my link", as a member who lost it would.
    page.goto("/borne/preferences")
    page.fill("#email", address)
    submit(page, "form[action='/borne/preferences']", "h1:text-is('Kijk in je mail')")
    assert page.url.endswith("/borne/preferences/sent")
    page.go_back()  # the form again, not a "resend the form?" question
    expect(page.locator("form[action='/borne/preferences']")).to_be_visible()
    page.goto(live.link_from_mail(address, "preferences"))
    if javascript:
        page.evaluate("window.__marker = 'still the same page'")
    newsletter = page.locator("#toggle-newsletter")
    expect(page.get_by_role("switch", name="Nieuwsbrief: Aan")).to_have_attribute(
        "aria-checked", "true"
    )

    with page.expect_request(lambda r: r.method == "POST") as switch_off:
        newsletter.click()
    expect(newsletter).to_have_attribute("aria-checked", "false")
    expect(newsletter).to_have_accessible_name("Nieuwsbrief: Uit")
    expect(page.locator("#notice")).to_have_text("Nieuwsbrief: Uit. Je keuze is opgeslagen.")
    expect(page.locator("#purpose-newsletter .saved")).to_have_text("Je keuze is opgeslagen.")
    assert live.states(address)["newsletter"] == "withdrawn"

    with page.expect_request(lambda r: r.method == "POST") as switch_on:
        page.locator("#toggle-acquisitions").click()
    expect(page.locator("#toggle-acquisitions")).to_have_attribute("aria-checked", "true")
    newsletter.click()
    expect(newsletter).to_have_attribute("aria-checked", "true")
    states = live.states(address)
    assert (states["newsletter"], states["acquisitions"]) == ("granted", "granted")
    assert_how_it_was_sent(page, [switch_off.value, switch_on.value], javascript)

    # The sender's unsubscribe link stops this one mail, at once, and nothing else.
    page.goto(list_unsubscribe_url(live, address, "newsletter"))
    assert live.states(address)["newsletter"] == "granted"  # opening it changes nothing
    submit(page, "form[action^='/unsubscribe/']", "h1:text-is('Je bent afgemeld')")
    expect(page.locator("main [role=status]")).to_contain_text("Nieuwsbrief")
    states = live.states(address)
    assert (states["newsletter"], states["acquisitions"]) == ("withdrawn", "granted")


def assert_how_it_was_sent(page, posts: list[Request], javascript: bool) -> None:
    if javascript:
        # htmx swapped the list in place: the page (and the marker set on it) stayed.
        assert all(post.headers.get("hx-request") == "true" for post in posts)
        assert page.evaluate("window.__marker") == "still the same page"
        assert "saved=" not in page.url
    else:
        # Plain form posts, each answered with a redirect to the card with its notice.
        assert all("hx-request" not in post.headers for post in posts)
        assert page.url.endswith("?saved=newsletter#purpose-newsletter")
