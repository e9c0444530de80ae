"""Family access in a real browser: ask in the preference centre, accept from the real mail
in the other person's browser, change the other's mail, stop it; the answer page on a phone."""

import time

import pytest
from playwright.sync_api import expect

from .conftest import Contexts
from .live import LiveService, plain_text
from .test_screenshots import NARROW, WIDE, shoot


def mail_text(live: LiveService, address: str, words: str, timeout: float = 15) -> str:
    """The newest mail to this address that says these words, once the worker sent it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for envelope in reversed(live.inbox.messages):
            if address in envelope.rcpt_tos and words in (text := plain_text(envelope.content)):
                return text
        time.sleep(0.05)
    raise AssertionError(f"no mail to {address} saying {words!r} within {timeout} s")


@pytest.mark.parametrize("javascript", [True, False], ids=["htmx", "no-javascript"])
def test_ask_accept_change_and_stop(live: LiveService, contexts: Contexts, javascript: bool):
    holder, _ = live.new_member("ouder")
    giver, _ = live.new_member("kind")
    page = contexts.page(java_script_enabled=javascript)
    page.goto(f"/preferences/{live.token('preferences', holder.subject_id)}")
    if javascript:
        page.evaluate("window.__marker = 'still the same page'")
    page.fill("#family-email", giver.email)
    page.click("#family-ask")
    expect(page.locator("#saved-family")).to_contain_text("Kennen we dit adres?")
    expect(page.locator("#family")).not_to_contain_text(giver.email)

    # The other person, in a browser of their own, from the mail that names who asks.
    assert holder.email in mail_text(live, giver.email, "wil jouw mailinstellingen")
    other = contexts.page(java_script_enabled=javascript)
    other.goto(live.link_from_mail(giver.email, "family"))
    expect(other.locator("h1")).to_have_text("Iemand wil jouw mailinstellingen beheren")
    expect(other.locator("#asker")).to_have_text(holder.email)
    other.click("#family-accept")
    expect(other.locator("h1")).to_have_text("Je zei ja")

    page.goto(f"/preferences/{live.token('preferences', holder.subject_id)}")
    if javascript:
        page.evaluate("window.__marker = 'still the same page'")
    person = page.locator("#family .family-person")
    expect(person.locator("h3")).to_contain_text(giver.email)
    # The other person's mails are switches too, named by mail, person and state.
    switch = person.get_by_role("switch", name=f"Aanwinstenmail, {giver.email}: Uit")
    expect(switch).to_have_attribute("aria-checked", "false")
    switch.click()
    expect(page.locator("#saved-family")).to_contain_text("Opgeslagen")
    if javascript:
        # The page's one live region announces it (out of band).
        expect(page.locator("#notice")).to_contain_text("Opgeslagen")
    expect(
        person.get_by_role("switch", name=f"Aanwinstenmail, {giver.email}: Aan")
    ).to_have_attribute("aria-checked", "true")
    assert live.states_of(giver.subject_id)["acquisitions"] == "granted"
    told = mail_text(live, giver.email, "aangezet")
    assert f"{holder.email} heeft deze mail voor jou aangezet: Aanwinstenmail." in told

    person.locator("button[id^='family-end-']").click()
    expect(page.locator("#saved-family")).to_contain_text("Deze toegang is gestopt")
    expect(page.locator("#family")).not_to_contain_text(giver.email)
    assert "beheert jouw mailinstellingen niet meer" in mail_text(live, giver.email, "niet meer")
    if javascript:
        # htmx swapped the section; the page was never reloaded.
        assert page.evaluate("window.__marker") == "still the same page"


def test_the_answer_page_fits_a_phone(live: LiveService, contexts: Contexts):
    holder, _ = live.new_member("vrager")
    giver, _ = live.new_member("gevraagde")
    page = contexts.page(viewport=WIDE)
    page.goto(f"/preferences/{live.token('preferences', holder.subject_id)}")
    page.fill("#family-email", giver.email)
    page.click("#family-ask")
    expect(page.locator("#saved-family")).to_be_visible()
    page.goto(live.link_from_mail(giver.email, "family"))
    expect(page.locator("#family-accept")).to_be_visible()
    assert shoot(page, "family-accept") <= NARROW["width"]
    # Both answers are real buttons a thumb can reach.
    for button in ("#family-accept", "#family-refuse"):
        box = page.locator(button).bounding_box()
        assert box is not None and box["height"] >= 40 and box["x"] >= 0, button
