"""The preference centre with htmx, as a member sees and hears it: the card that changed
stays where it was on screen, its confirmation appears in it and is announced, and the
focus stays on (or next to) the control that was used; at phone and desktop width, with
the mouse and with the keyboard. Without JavaScript the answer opens at that card."""

import pytest
from playwright.sync_api import Page, expect

from .conftest import Contexts
from .live import LiveService

WIDTHS = [320, 1280]
# (purpose, the button pressed, where the focus must be afterwards)
CHANGES = [
    ("newsletter", "toggle-newsletter", "toggle-newsletter"),  # on → off
    ("acquisitions", "toggle-acquisitions", "toggle-acquisitions"),  # off → on
    # Offers for members: one switch too (no second "I never want this" button).
    ("direct_marketing", "toggle-direct_marketing", "toggle-direct_marketing"),
]

WHERE = """code => ({
  scroll: window.scrollY,
  top: document.getElementById('purpose-' + code).getBoundingClientRect().top,
  focused: document.activeElement.id || document.activeElement.tagName,
})"""


def open_centre(live: LiveService, contexts: Contexts, width: int, javascript: bool = True):
    member, _ = live.new_member("plek", purposes=("newsletter",))
    page = contexts.page(viewport={"width": width, "height": 700}, java_script_enabled=javascript)
    page.goto(f"/preferences/{live.token('preferences', member.subject_id)}")
    return member, page


def bring_to_middle(page: Page, code: str) -> None:
    """Scroll so the card starts 200 px below the top of the screen, as if read there."""
    page.evaluate(
        """code => {
          const card = document.getElementById('purpose-' + code);
          window.scrollTo(0, card.getBoundingClientRect().top + window.scrollY - 200);
        }""",
        code,
    )


def in_view(page: Page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    viewport = page.viewport_size
    assert box is not None and viewport is not None
    return box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]


@pytest.mark.parametrize("how", ["mouse", "keyboard"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("code", "button", "focus_after"), CHANGES, ids=[c[0] for c in CHANGES])
def test_the_changed_card_stays_put_and_keeps_the_focus(
    live: LiveService, contexts: Contexts, width, how, code, button, focus_after
):
    member, page = open_centre(live, contexts, width)
    bring_to_middle(page, code)
    control = page.locator(f"#{button}")
    if how == "keyboard":
        control.focus()
    before = page.evaluate(WHERE, code)

    with page.expect_response(lambda r: r.request.method == "POST"):
        if how == "mouse":
            control.click()
        else:
            page.keyboard.press("Enter")
    saved = page.locator(f"#purpose-{code} #saved-{code}")
    expect(saved).to_have_text("Je keuze is opgeslagen.")
    after = page.evaluate(WHERE, code)

    assert abs(after["top"] - before["top"]) <= 1, (before, after)
    assert abs(after["scroll"] - before["scroll"]) <= 1, (before, after)
    assert after["focused"] == focus_after
    assert in_view(page, f"#saved-{code}")
    # The live region was in the page before the change, and now says what changed.
    expect(page.locator("#notice[role=status]")).to_contain_text("Je keuze is opgeslagen.")
    expected = {
        "newsletter": "withdrawn",
        "acquisitions": "granted",
        "direct_marketing": "granted",
    }
    assert live.states_of(member.subject_id)[code] == expected[code]


@pytest.mark.parametrize("width", WIDTHS)
def test_stop_all_mail_keeps_its_place_and_the_focus_nearby(
    live: LiveService, contexts: Contexts, width
):
    member, page = open_centre(live, contexts, width)
    page.locator("#stop-all").scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, 100)")
    before = page.evaluate("document.getElementById('stop-all').getBoundingClientRect().top")
    page.locator("#stop-all button").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#saved-all")).to_have_text("Je keuze is opgeslagen.")
    after = page.evaluate("document.getElementById('stop-all').getBoundingClientRect().top")
    assert abs(after - before) <= 1
    assert page.evaluate("document.activeElement.id") == "saved-all"  # not <body>
    expect(page.locator("#notice")).to_have_text("Alle mail is gestopt. Je keuze is opgeslagen.")
    assert live.states_of(member.subject_id)["newsletter"] == "withdrawn"


@pytest.mark.parametrize("width", WIDTHS)
def test_without_javascript_the_answer_opens_at_the_card(
    live: LiveService, contexts: Contexts, width
):
    member, page = open_centre(live, contexts, width, javascript=False)
    bring_to_middle(page, "acquisitions")
    page.locator("#toggle-acquisitions").click()
    page.wait_for_url("**?saved=acquisitions#purpose-acquisitions")
    expect(page.locator("#purpose-acquisitions #saved-acquisitions")).to_be_visible()
    top = page.evaluate(
        "document.getElementById('purpose-acquisitions').getBoundingClientRect().top"
    )
    assert abs(top) <= 1  # the browser jumped to the card
    assert in_view(page, "#saved-acquisitions")
    assert live.states_of(member.subject_id)["acquisitions"] == "granted"


def test_direct_debit_is_not_under_mails(live: LiveService, contexts: Contexts):
    _, page = open_centre(live, contexts, 1280)
    mails = page.locator("section[aria-labelledby=mails-title]")
    others = page.locator("section[aria-labelledby=other-title]")
    expect(mails.locator(".purpose h3")).to_have_text(
        ["Nieuwsbrief", "Aanwinstenmail", "Aanbiedingen voor leden"]
    )
    expect(others.locator("h2")).to_have_text("Andere toestemmingen")
    expect(others.locator(".purpose h3")).to_have_text(["Automatische incasso"])
    expect(others.locator("button")).to_have_count(0)


def test_a_button_pressed_right_after_a_change_still_works_in_place(
    live: LiveService, contexts: Contexts
):
    """htmx makes swapped-in forms work when it settles; with a settle delay a quick second
    press posted the whole page, and the member lost their place and focus."""
    member, page = open_centre(live, contexts, 1280)
    page.evaluate("window.stillTheSamePage = true")
    toggle = page.locator("#toggle-newsletter")
    # The gap was 20 ms, so one press in a few fell into it: press eight times.
    expected = ["false", "true"] * 4
    for key, checked in zip(["Enter", "Space"] * 4, expected, strict=True):
        toggle.focus()
        page.keyboard.press(key)
        expect(toggle).to_have_attribute("aria-checked", checked)
        expect(toggle).to_be_focused()
    assert page.evaluate("window.stillTheSamePage === true")
    assert "saved=" not in page.url
    assert live.states_of(member.subject_id)["newsletter"] == "granted"
