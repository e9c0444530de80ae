"""Member pages: what they say, what they refuse, and that refusing changes nothing."""

import re
import time
from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy import func, select

from consentsvc import ledger, tokens
from consentsvc.extensions import db
from consentsvc.models import ConsentEvent, Library, Subject

from .conftest import csrf_token, link_in, signup, switch_in

# The header of a Borne page: its logo, with the library's name as alt text.
BORNE_LOGO = (
    r'<p class="library-name"><img class="library-logo" src="/borne/logo\?v=[0-9a-f]{16}" '
    r'alt="Bibliotheek Borne"></p>'
)


def event_count(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ConsentEvent))


def subject_id(app, email="jan@example.nl"):
    with app.app_context():
        return db.session.scalar(select(Subject.id).where(Subject.email == email))


def purpose_id(app, code, library="borne"):
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        return ledger.purpose_by_code(lib, code).id


def confirmed(client, outbox, email="jan@example.nl", purposes=("newsletter",)):
    signup(client, email, purposes)
    client.post(link_in(outbox[-1], "confirm"))


# -- signup -----------------------------------------------------------------------------------


def test_signup_page_shows_library_purposes_and_current_texts(client):
    page = client.get("/borne/signup").get_data(as_text=True)
    assert "Bibliotheek Borne" in page
    assert 'name="purpose" value="newsletter"' in page
    assert 'name="purpose" value="acquisitions"' in page
    # Direct debit and direct marketing are not something to sign up for.
    assert 'value="direct_debit"' not in page and 'value="direct_marketing"' not in page
    assert "Ja, stuur mij de nieuwsbrief van Bibliotheek Borne" in page
    assert '<label for="email">Je e-mailadres</label>' in page


def test_signup_page_in_english(client):
    page = client.get("/borne/signup?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "Yes, send me the newsletter of Bibliotheek Borne" in page
    assert "Get mail from Bibliotheek Borne" in page
    # The choice sticks for the next page.
    assert "Change your mail settings" in client.get("/borne/preferences").get_data(as_text=True)


def test_dutch_unless_the_member_chooses_english(client):
    # An English browser is not a choice: many Dutch members have one.
    page = client.get("/borne/signup", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert '<html lang="nl">' in page.get_data(as_text=True)
    page = client.get("/zoetermeer/signup?lang=en", headers={"Accept-Language": "nl"})
    assert '<html lang="en">' in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": " ", "purpose": ["newsletter"]}, "Vul je e-mailadres in."),
        ({"email": "jan@", "purpose": ["newsletter"]}, "Vul een geldig e-mailadres in"),
        ({"email": "x" * 300 + "@example.nl", "purpose": ["newsletter"]}, "Vul een geldig"),
        ({"email": "jan@example.nl"}, "Kies minstens één soort mail."),
    ],
)
def test_signup_errors_are_explained_and_store_nothing(app, client, outbox, data, message):
    data["csrf_token"] = csrf_token(client, "/borne/signup")
    response = client.post("/borne/signup", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in page
    assert 'role="alert"' in page
    # The summary links to the field, and the field names its message.
    field = "email" if "purpose" in data else "purpose-newsletter"
    assert f'<li><a href="#{field}">{message}' in page
    if field == "email":
        assert 'aria-invalid="true" aria-describedby="email-error"' in page
    assert event_count(app) == 0 and subject_id(app) is None and outbox == []


@pytest.mark.parametrize("code", ["direct_debit", "horoscope", "direct_marketing"])
def test_signup_for_a_purpose_not_offered_is_refused(app, client, outbox, code):
    response = signup(client, "jan@example.nl", ["newsletter", code])
    assert response.status_code == 400
    assert "Deze keuze bestaat hier niet." in response.get_data(as_text=True)
    assert event_count(app) == 0 and outbox == []


def test_signup_without_csrf_token_from_elsewhere_is_refused(app, client, outbox):
    response = client.post(
        "/borne/signup",
        data={"email": "jan@example.nl", "purpose": "newsletter"},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 400
    assert "Dit formulier is verlopen" in response.get_data(as_text=True)
    assert event_count(app) == 0 and outbox == []


def test_cross_site_post_from_the_library_website(app, outbox):
    # The library's own website, in another origin, with no cookies and no form token.
    website = app.test_client(use_cookies=False)
    response = website.post(
        "/borne/signup",
        data={"email": "jan@example.nl", "purpose": "newsletter"},
        headers={"Origin": "http://127.0.0.1:8000", "Referer": "http://127.0.0.1:8000/nieuws"},
    )
    # Post/Redirect/Get: a page of its own, which a reload shows again without posting.
    assert response.status_code == 303
    assert response.headers["Location"] == "/borne/signup/sent"
    assert "jan@example.nl" not in response.headers["Location"]
    # A browser that keeps no cookies still gets the page, without the address.
    page = website.get(response.headers["Location"]).get_data(as_text=True)
    assert "Kijk in je mail" in page and "jan@example.nl" not in page
    assert "We sturen een mail naar het adres dat je invulde." in page
    assert len(outbox) == 1
    with app.app_context():
        subject = db.session.get(Subject, subject_id(app))
        request = ledger.history(db.session, subject)[0]
        assert request.evidence.origin == "http://127.0.0.1:8000"
        assert request.consent_text.title == "Nieuwsbrief"


def test_same_answer_for_new_pending_and_confirmed_addresses(client, outbox):
    new = signup(client, "new@example.nl").get_data(as_text=True)
    pending = signup(client, "new@example.nl").get_data(as_text=True)
    confirmed(client, outbox, "old@example.nl")
    subscribed = signup(client, "old@example.nl").get_data(as_text=True)

    def main(page, email):
        # The address typed is repeated on the page, whoever it belongs to.
        assert f'We sturen een mail naar <span class="address">{email}</span>.' in page
        return re.search(r"<main.*</main>", page, re.S).group(0).replace(email, "<typed>")

    assert main(new, "new@example.nl") == main(pending, "new@example.nl")
    assert main(pending, "new@example.nl") == main(subscribed, "old@example.nl")
    assert 'href="/borne/signup">Verkeerd adres? Vul het formulier opnieuw in.</a>' in new


def test_a_subscriber_signing_up_again_is_mailed_at_most_once_an_hour(app, client, outbox):
    confirmed(client, outbox)
    assert len(outbox) == 1
    signup(client, "jan@example.nl")
    assert len(outbox) == 2
    assert outbox[1].subject == "Je bent al aangemeld bij Bibliotheek Borne"
    link_in(outbox[1], "preferences")
    for _ in range(3):
        signup(client, "jan@example.nl")
    assert len(outbox) == 2


def test_pending_signup_again_is_not_mailed_again_inside_the_hour(client, outbox):
    for _ in range(4):
        signup(client, "jan@example.nl")
    assert len(outbox) == 1
    # A new purpose is news: that one does get a mail.
    signup(client, "jan@example.nl", ["acquisitions"])
    assert len(outbox) == 2
    assert "Aanwinstenmail" in outbox[1].body and "Nieuwsbrief" not in outbox[1].body


def test_mail_is_text_and_html_in_the_members_language(client, outbox):
    client.get("/borne/signup?lang=en")
    signup(client, "jan@example.nl")
    [mail] = outbox
    assert mail.subject == "Confirm your subscription to Bibliotheek Borne"
    assert "The link works for 7 days." in mail.body
    assert '<html lang="en">' in mail.html
    assert mail.extra_headers["Auto-Submitted"] == "auto-generated"


# -- confirm ----------------------------------------------------------------------------------


def test_expired_confirm_link_offers_a_new_mail(app, client, outbox):
    signup(client, "jan@example.nl")
    link = link_in(outbox[0], "confirm")
    app.config["CONFIRM_MAX_AGE"] = 0
    time.sleep(1.1)
    response = client.get(link)
    page = response.get_data(as_text=True)
    assert response.status_code == 410
    assert "Deze link is verlopen" in page
    assert client.post(link).status_code == 410
    assert event_count(app) == 1
    # The cool-down has passed (set to zero here): the new mail carries a working link.
    app.config["MAIL_COOLDOWN"] = 0
    response = client.post(link + "/resend")
    assert response.status_code == 303
    assert response.headers["Location"] == "/borne/preferences/sent"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Kijk in je mail" in page and "met een nieuwe link" in page
    assert len(outbox) == 2
    app.config["CONFIRM_MAX_AGE"] = 3600
    client.post(link_in(outbox[1], "confirm"))
    with app.app_context():
        [state] = [
            s
            for s in ledger.state_of(db.session, db.session.get(Subject, subject_id(app)))
            if s.purpose.code == "newsletter"
        ]
        assert state.status == "granted"


# -- preference centre -------------------------------------------------------------------------


def prefs_url(app, email="jan@example.nl"):
    with app.app_context():
        return f"/preferences/{tokens.make_preferences(subject_id(app, email))}"


def test_preferences_plain_form_post_without_javascript(app, client, outbox):
    confirmed(client, outbox)
    url = prefs_url(app)
    response = client.post(url, data={"purpose": "newsletter", "choice": "off"})
    assert response.status_code == 303
    # The page opens at the card that changed, with the notice in that card.
    assert response.headers["Location"].endswith("?saved=newsletter#purpose-newsletter")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    card = re.search(r'<li class="purpose" id="purpose-newsletter".*?</li>', page, re.S).group(0)
    assert (
        '<p class="saved" id="saved-newsletter" tabindex="-1">Je keuze is opgeslagen.</p>' in card
    )
    assert "Nieuwsbrief: Uit. Je keuze is opgeslagen." in page  # the live region
    # The same switch, now off: its name says the purpose and the state in words.
    assert switch_in(page, "newsletter") == (False, "Nieuwsbrief: Uit", "on")
    response = client.post(url, data={"purpose": "acquisitions", "choice": "on"})
    assert response.status_code == 303
    with app.app_context():
        subject = db.session.get(Subject, subject_id(app))
        assert {s.purpose.code: s.status for s in ledger.state_of(db.session, subject)} == {
            "newsletter": "withdrawn",
            "acquisitions": "granted",
            "direct_marketing": None,
            "direct_debit": None,
        }
        grant = ledger.history(db.session, subject)[0]
        assert (grant.channel, grant.consent_text.title) == ("preference_centre", "Aanwinstenmail")


def _statements_of(app, send):
    """The SQL statements one request runs (BEGINs left out), and its answer."""
    from sqlalchemy import event

    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def note(_conn, _cursor, statement, *_rest):
        if not statement.startswith("BEGIN"):
            seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", note)
    try:
        response = send()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return seen, response


def test_the_preference_page_and_a_one_click_read_what_they_show_once(app, client, outbox):
    """Every member page reads its person, the library, the purposes and their texts
    once; the preference page its states, mandates, family and privacy statements in one
    query each; a one-click reads them before SQLite's write lock and renders without
    reading them again (docs/performance.md)."""
    confirmed(client, outbox)
    url = prefs_url(app)
    client.get(url)  # the worker's first request loads what every request shares
    seen, page = _statements_of(app, lambda: client.get(url))
    assert page.status_code == 200 and "Nieuwsbrief" in page.get_data(as_text=True)
    tables = [re.search(r"FROM (\w+)", s).group(1) for s in seen]
    assert sorted(tables) == sorted(
        ["subject", "library", "purpose", "consent_text", "consent_state", "sepa_mandate",
         "privacy_statement", "family_access"]
    ), seen  # fmt: skip
    with app.test_request_context():
        token = tokens.make_unsubscribe(subject_id(app), purpose_id(app, "newsletter"))
    seen, done = _statements_of(
        app, lambda: client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    )
    assert done.status_code == 200 and "Je bent afgemeld" in done.get_data(as_text=True)
    assert sum(s.startswith("SELECT subject.") for s in seen) == 2, seen  # read, then locked
    assert sum("FROM privacy_statement" in s for s in seen) == 1, seen
    assert sum("FROM library" in s for s in seen) == 1, seen


def test_preferences_htmx_swaps_only_the_fragment(app, client, outbox):
    confirmed(client, outbox)
    response = client.post(
        prefs_url(app),
        data={"purpose": "newsletter", "choice": "off"},
        headers={"HX-Request": "true"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert page.lstrip().startswith('<div id="purposes">')
    assert "<html" not in page
    notice = '<div id="notice" hx-swap-oob="innerHTML">Nieuwsbrief: Uit. Je keuze is opgeslagen.'
    assert notice in page
    assert 'id="saved-newsletter"' in page
    # The same id: htmx puts the focus back on it.
    assert switch_in(page, "newsletter") == (False, "Nieuwsbrief: Uit", "on")
    assert "HX-Request" in response.headers["Vary"]


def test_boosted_form_posts_get_a_redirect_to_the_whole_page(app, client, outbox):
    confirmed(client, outbox)
    headers = {"HX-Request": "true", "HX-Boosted": "true"}
    response = client.post(
        prefs_url(app), data={"purpose": "newsletter", "choice": "off"}, headers=headers
    )
    assert response.status_code == 303


def test_stop_everything(app, client, outbox):
    confirmed(client, outbox, purposes=("newsletter", "acquisitions"))
    url = prefs_url(app)
    with app.app_context():
        ledger.grant(
            db.session, db.session.get(Subject, subject_id(app)), "direct_marketing",
            channel="staff", actor="staff:1",
        )  # fmt: skip
        db.session.commit()
    with app.app_context():
        subject = db.session.get(Subject, subject_id(app))
        ledger.grant(db.session, subject, "direct_debit", channel="staff", actor="staff:1")
        db.session.commit()
    client.post(url + "/stop-all")
    with app.app_context():
        subject = db.session.get(Subject, subject_id(app))
        assert {s.purpose.code: s.status for s in ledger.state_of(db.session, subject)} == {
            "newsletter": "withdrawn",
            "acquisitions": "withdrawn",
            "direct_marketing": "objected",
            # Stopping mail does not cancel a payment mandate.
            "direct_debit": "granted",
        }
        assert ledger.check_many(
            db.session, subject.library, "acquisitions", ["jan@example.nl"],
            suppression_key=app.config["SUPPRESSION_KEY"],
        )[0].allowed is False  # fmt: skip


def test_direct_debit_cannot_be_switched_on_by_the_member(app, client, outbox):
    confirmed(client, outbox)
    url = prefs_url(app)
    page = client.get(url).get_data(as_text=True)
    assert "Hiervoor teken je een machtiging" in page
    before = event_count(app)
    response = client.post(url, data={"purpose": "direct_debit", "choice": "on"})
    assert response.status_code == 400
    assert event_count(app) == before


def test_language_choice_changes_pages_and_mails(app, client, outbox):
    confirmed(client, outbox)
    url = prefs_url(app)
    fresh = app.test_client()
    response = fresh.post(url + "/language", data={"language": "en"})
    assert response.status_code == 303
    assert "Your mail settings" in app.test_client().get(url).get_data(as_text=True)
    signup(app.test_client(), "jan@example.nl")
    assert outbox[-1].subject == "You are already subscribed to Bibliotheek Borne"
    assert fresh.post(url + "/language", data={"language": "de"}).status_code == 400


def test_history_shows_every_choice_with_its_text_version(app, client, outbox):
    confirmed(client, outbox)
    client.post(prefs_url(app), data={"purpose": "newsletter", "choice": "off"})
    page = client.get(prefs_url(app) + "/history").get_data(as_text=True)
    assert page.index("<strong>Nieuwsbrief</strong>: Afgemeld") < page.index(
        "<strong>Nieuwsbrief</strong>: Toestemming gegeven"
    )
    assert "Aangemeld, wacht op bevestiging" in page
    assert "Toestemming gegeven" in page
    assert "Link in je mail" in page
    assert "Tekstversie 1" in page


def test_expired_preference_link_offers_a_new_one(app, client, outbox):
    confirmed(client, outbox)
    url = prefs_url(app)
    app.config["PREFERENCES_MAX_AGE"] = 0
    time.sleep(1.1)
    response = client.get(url)
    assert response.status_code == 410
    assert "Mail mij een nieuwe link" in response.get_data(as_text=True)
    assert client.post(url, data={"purpose": "newsletter", "choice": "off"}).status_code == 410
    client.post(url + "/resend")
    assert outbox[-1].subject == "Je link naar je mailinstellingen bij Bibliotheek Borne"


# -- unsubscribe --------------------------------------------------------------------------------


def test_unsubscribe_link_never_expires(app, client, outbox, monkeypatch):
    confirmed(client, outbox)
    ten_years_ago = time.time() - 10 * 365 * 24 * 3600
    with app.app_context(), monkeypatch.context() as m:
        m.setattr(time, "time", lambda: ten_years_ago)
        token = tokens.make_unsubscribe(subject_id(app), purpose_id(app, "newsletter"))
    assert "Je bent afgemeld" in client.post(f"/unsubscribe/{token}").get_data(as_text=True)
    with app.app_context():
        subject = db.session.get(Subject, subject_id(app))
        assert ledger.status_of(db.session, subject, subject.library.purposes[0]) == "withdrawn"


def test_unsubscribe_pages_do_not_open_the_preference_centre(app, client, outbox):
    # Unsubscribe links never expire and pass through mailing processors.
    confirmed(client, outbox)
    with app.app_context():
        token = tokens.make_unsubscribe(subject_id(app), purpose_id(app, "newsletter"))
    for response in (client.get(f"/unsubscribe/{token}"), client.post(f"/unsubscribe/{token}")):
        page = response.get_data(as_text=True)
        assert "/preferences/" not in page
        assert 'href="/borne/preferences"' in page
        assert "jan@example.nl" not in page


def test_unsubscribe_page_for_someone_already_out(app, client, outbox):
    confirmed(client, outbox)
    with app.app_context():
        token = tokens.make_unsubscribe(subject_id(app), purpose_id(app, "acquisitions"))
    page = client.get(f"/unsubscribe/{token}").get_data(as_text=True)
    assert "Je bent al afgemeld" in page
    assert 'href="/borne/preferences"' in page


def test_rotated_keys_keep_old_links_working_until_retired(app, client, outbox, tmp_path):
    confirmed(client, outbox)
    with app.app_context():
        token = tokens.make_unsubscribe(subject_id(app), purpose_id(app, "newsletter"))
    app.config["SECRET_KEY_FALLBACKS"] = [app.config["SECRET_KEY"]]
    app.config["SECRET_KEY"] = "a-new-key-after-rotation-0123456789abc"
    assert "Afmelden voor: Nieuwsbrief" in client.get(f"/unsubscribe/{token}").get_data(
        as_text=True
    )
    app.config["SECRET_KEY_FALLBACKS"] = []
    response = client.get(f"/unsubscribe/{token}")
    assert response.status_code == 400
    assert "Deze link werkt niet" in response.get_data(as_text=True)


# -- bad input ------------------------------------------------------------------------------


def tampered(token):
    return token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")


def test_bad_tampered_and_wrong_kind_tokens_change_nothing(app, client, outbox):
    confirmed(client, outbox)
    sid = subject_id(app)
    with app.app_context():
        prefs = tokens.make_preferences(sid)
        unsub = tokens.make_unsubscribe(sid, purpose_id(app, "newsletter"))
        confirm = tokens.make_confirm(sid, [1])
        foreign = tokens.make_unsubscribe(sid, purpose_id(app, "newsletter", "zoetermeer"))
    before = event_count(app)
    cases = [
        ("post", f"/unsubscribe/{prefs}"),  # a preference token used to unsubscribe
        ("post", f"/unsubscribe/{confirm}"),
        ("post", f"/unsubscribe/{tampered(unsub)}"),
        ("post", f"/unsubscribe/{foreign}"),  # another library's purpose
        ("post", "/unsubscribe/not-a-token"),
        ("post", f"/preferences/{unsub}/stop-all"),
        ("post", f"/preferences/{tampered(prefs)}/stop-all"),
        ("get", f"/preferences/{confirm}"),
        ("post", f"/confirm/{prefs}"),
        ("post", f"/confirm/{unsub}"),
        ("get", "/confirm/" + "x" * 2000),
    ]
    for method, url in cases:
        response = getattr(client, method)(url, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 400, url
        assert "Deze link werkt niet" in response.get_data(as_text=True), url
    assert event_count(app) == before


def test_token_for_a_subject_that_no_longer_exists(app, client):
    with app.app_context():
        token = tokens.make_preferences(999_999)
    response = client.get(f"/preferences/{token}")
    assert response.status_code == 400
    assert "Deze link werkt niet" in response.get_data(as_text=True)


@pytest.mark.parametrize("url", ["/nowhere/signup", "/nowhere/preferences", "/nowhere/theme.css"])
def test_unknown_library_is_a_404_page(client, url):
    response = client.get(url)
    assert response.status_code == 404
    assert "Pagina niet gevonden" in response.get_data(as_text=True)


def test_oversized_form_is_refused(app, client):
    response = client.post("/borne/signup", data={"email": "a@example.nl", "filler": "x" * 100_000})
    assert response.status_code == 413
    assert "Te veel gegevens" in response.get_data(as_text=True)
    assert event_count(app) == 0


def test_garbage_preference_choice_is_refused(app, client, outbox):
    confirmed(client, outbox)
    before = event_count(app)
    for data in ({"purpose": "newsletter", "choice": "maybe"}, {"purpose": "x", "choice": "on"}):
        response = client.post(prefs_url(app), data=data)
        assert response.status_code == 400
    assert event_count(app) == before


# -- "mail me my preference link" ------------------------------------------------------------


def test_link_request_says_the_same_for_known_and_unknown(app, client, outbox):
    confirmed(client, outbox)

    def ask(email):
        data = {"email": email, "csrf_token": csrf_token(client, "/borne/preferences")}
        response = client.post("/borne/preferences", data=data, follow_redirects=True)
        assert response.request.path == "/borne/preferences/sent"
        page = response.get_data(as_text=True)
        main = re.search(r"<main.*</main>", page, re.S).group(0)
        # The page repeats what was typed, and beyond that says the same.
        assert f'<span class="address">{email}</span>' in main
        assert 'href="/borne/preferences">Verkeerd adres?' in main
        return main.replace(email, "ADDRESS")

    assert ask("jan@example.nl") == ask("nobody@example.nl")
    assert len(outbox) == 2
    assert outbox[1].recipients == ["jan@example.nl"]
    # Opening the form again forgets the address: the next person at a shared computer
    # does not find it on the page.
    client.get("/borne/preferences")
    again = client.get("/borne/preferences/sent").get_data(as_text=True)
    assert "nobody@example.nl" not in again and "Kennen we dit adres?" in again
    page = client.get(link_in(outbox[1], "preferences")).get_data(as_text=True)
    assert "Je mailinstellingen" in page
    # Asking again inside the hour sends nothing more.
    ask("jan@example.nl")
    assert len(outbox) == 2


@pytest.mark.parametrize(
    ("email", "message"),
    [("", "Vul je e-mailadres in."), ("nope", "Vul een geldig e-mailadres in, zoals")],
)
def test_link_request_with_an_empty_or_invalid_address(client, email, message):
    """The same error pattern as the signup form: a summary, and the message at the field."""
    data = {"email": email, "csrf_token": csrf_token(client, "/borne/preferences")}
    response = client.post("/borne/preferences", data=data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    summary = page.split('<div class="error-summary"', 1)[1].split("</div>", 1)[0]
    assert "Kijk het formulier nog even na" in summary
    assert f'<li><a href="#email">{message}' in summary
    error = '<p class="field-error" id="email-error"><span class="visually-hidden">Fout: </span>'
    assert error + message in page
    assert 'aria-invalid="true" aria-describedby="email-error"' in page
    # Refused through htmx (hx-boost), the address bar stays at the form's own address.
    data["csrf_token"] = csrf_token(client, "/borne/preferences")
    boosted = client.post(
        "/borne/preferences", data=data, headers={"HX-Request": "true", "HX-Boosted": "true"}
    )
    assert (boosted.status_code, boosted.headers["HX-Push-Url"]) == (400, "false")


def test_rate_limits_per_client_address(app_factory):
    app = app_factory(RATELIMIT_ENABLED=True, LINK_REQUEST_RATE_LIMIT="2 per minute")
    client = app.test_client()
    statuses = []
    for _ in range(3):
        data = {"email": "a@example.nl", "csrf_token": csrf_token(client, "/borne/preferences")}
        statuses.append(client.post("/borne/preferences", data=data))
    assert [r.status_code for r in statuses] == [303, 303, 429]
    assert "Te vaak geprobeerd" in statuses[-1].get_data(as_text=True)
    assert "Retry-After" in statuses[-1].headers


def test_unsubscribe_and_undo_loops_do_not_mail_without_end(app, client, outbox):
    confirmed(client, outbox)
    with app.app_context():
        token = tokens.make_unsubscribe(subject_id(app), purpose_id(app, "newsletter"))
    client.post(f"/unsubscribe/{token}")
    client.post(f"/unsubscribe/{token}/undo")
    assert len(outbox) == 2  # a real mistake, undone at once, gets its mail
    for _ in range(4):
        client.post(f"/unsubscribe/{token}")
        client.post(f"/unsubscribe/{token}/undo")
    assert len(outbox) == 3  # and then no more until a quiet hour has passed


def test_offers_have_one_switch_and_an_objection_is_still_recorded(app, client, outbox):
    confirmed(client, outbox)
    url = prefs_url(app)
    page = client.get(url).get_data(as_text=True)
    card = page.split('id="purpose-direct_marketing"', 1)[1].split("</li>", 1)[0]
    # One control, not "switch on" beside "I never want this".
    assert card.count("<button") == 1 and "Ik wil dit nooit" not in card
    assert switch_in(page, "direct_marketing") == (False, "Aanbiedingen voor leden: Uit", "on")
    # "never" (an objection) is still taken, as the family section and old pages send it.
    client.post(url, data={"purpose": "direct_marketing", "choice": "never"})
    page = client.get(url).get_data(as_text=True)
    assert switch_in(page, "direct_marketing") == (
        False,
        "Aanbiedingen voor leden: Uit: je hebt nee gezegd",
        "on",
    )
    assert "Je hebt gezegd dat je dit niet wilt. Je kunt het weer aanzetten." in page
    with app.app_context():
        subject = db.session.get(Subject, subject_id(app))
        offers = ledger.purpose_by_code(subject.library, "direct_marketing")
        assert ledger.status_of(db.session, subject, offers) == "objected"


def test_htmx_errors_replace_the_whole_body(app, client, outbox):
    confirmed(client, outbox)
    response = client.post(
        prefs_url(app),
        data={"purpose": "direct_debit", "choice": "on"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 400
    assert response.headers["HX-Retarget"] == "body"
    assert response.headers["HX-Reswap"] == "innerHTML"


def test_history_restore_gets_the_whole_page(app, client, outbox):
    confirmed(client, outbox)
    headers = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    page = client.get(prefs_url(app), headers=headers).get_data(as_text=True)
    assert page.startswith("<!doctype html>") and "<h1>Je mailinstellingen</h1>" in page


def test_batch_signed_tokens_read_like_single_ones(app):
    from itsdangerous import URLSafeTimedSerializer

    with app.app_context():
        [unsubscribe] = tokens.make_many_unsubscribe([(41, 3)])
        [preferences] = tokens.make_many_preferences([41])
        assert tokens.read_unsubscribe(unsubscribe) == tokens.UnsubscribeLink(41, 3)
        assert tokens.read_preferences(preferences) == 41
        # Plain itsdangerous reads them too: the format is the standard one.
        plain = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=tokens.SALTS["unsubscribe"])
        assert plain.loads(unsubscribe) == [41, 3]
        assert tokens.read_unsubscribe(plain.dumps([41, 3])) == tokens.UnsubscribeLink(41, 3)


def test_batch_signed_tokens_are_the_bytes_dumps_makes_and_survive_a_key_rotation(app_factory):
    # The batch path signs by hand (one derived key, one HMAC per token): it must write
    # exactly what itsdangerous writes, or links already in inboxes would read differently.
    app = app_factory()
    with app.app_context(), time_machine.travel(datetime(2026, 12, 1, 12, 0, tzinfo=UTC)):
        pairs = [(41, 3), (2**62, 1), (7, 12)]
        batch = tokens.make_many_unsubscribe(pairs) + tokens.make_many_preferences([41, 2**62])
        single = [tokens.make_unsubscribe(s, p) for s, p in pairs] + [
            tokens.make_preferences(s) for s in (41, 2**62)
        ]
        assert batch == single
        old_key = app.config["SECRET_KEY"]
    rotated = app_factory(
        SECRET_KEY="a-new-secret-key-after-rotation-0123456789", SECRET_KEY_FALLBACKS=[old_key]
    )
    with rotated.app_context():
        assert tokens.read_unsubscribe(batch[1]) == tokens.UnsubscribeLink(2**62, 1)
        [fresh] = tokens.make_many_unsubscribe([(41, 3)])
        assert fresh != batch[0]  # signed with the new key now
        assert tokens.read_unsubscribe(fresh) == tokens.UnsubscribeLink(41, 3)
    with app.app_context(), pytest.raises(tokens.InvalidToken):
        tokens.read_unsubscribe(fresh)  # the old key alone does not know the new one


# -- purposes that are not mail (item 5) ----------------------------------------------------------


def section(page, heading_id):
    """The <section> of a page that the heading with this id names."""
    return re.search(rf'<section aria-labelledby="{heading_id}">.*?</section>', page, re.S).group(0)


@pytest.mark.parametrize(
    ("lang", "mails", "others"),
    [("nl", "Mails", "Andere toestemmingen"), ("en", "Mails", "Other permissions")],
)
def test_direct_debit_has_its_own_section_in_the_centre(app, client, outbox, lang, mails, others):
    confirmed(client, outbox)
    page = client.get(prefs_url(app) + f"?lang={lang}").get_data(as_text=True)
    mail_part, other_part = section(page, "mails-title"), section(page, "other-title")
    assert f'<h2 id="mails-title">{mails}</h2>' in mail_part
    assert f'<h2 id="other-title">{others}</h2>' in other_part
    assert 'id="purpose-newsletter"' in mail_part and 'id="purpose-direct_debit"' not in mail_part
    assert 'id="purpose-direct_debit"' in other_part and 'id="purpose-newsletter"' not in other_part
    # No control to switch it on; why, in the member's words.
    assert 'id="toggle-direct_debit"' not in other_part
    assert ("machtiging" if lang == "nl" else "mandate") in other_part


def test_a_mandate_alone_shows_no_stop_all_mail(app, client, outbox):
    confirmed(client, outbox)
    url = prefs_url(app)
    client.post(url, data={"purpose": "newsletter", "choice": "off"})
    with app.app_context():
        subject = db.session.get(Subject, subject_id(app))
        ledger.grant(db.session, subject, "direct_debit", channel="staff", actor="staff:1")
        db.session.commit()
    page = client.get(url).get_data(as_text=True)
    assert ">Stop alle mail</button>" not in page
    assert 'id="toggle-direct_debit"' in section(page, "other-title")  # it can be stopped here


def direct_debit_unsubscribe(app):
    sid, pid = subject_id(app), purpose_id(app, "direct_debit")
    with app.app_context():
        subject = db.session.get(Subject, sid)
        ledger.grant(db.session, subject, "direct_debit", channel="staff", actor="staff:1")
        db.session.commit()
        return tokens.make_unsubscribe(sid, pid)


def direct_debit_status(app):
    sid = subject_id(app)
    with app.app_context():
        subject = db.session.get(Subject, sid)
        return ledger.status_of(
            db.session, subject, ledger.purpose_by_code(subject.library, "direct_debit")
        )


def test_one_click_on_a_direct_debit_link_records_nothing(app, client, outbox):
    confirmed(client, outbox)
    token = direct_debit_unsubscribe(app)
    before = event_count(app)
    # A mailbox provider's RFC 8058 POST: no cookie, no form token.
    response = app.test_client().post(
        f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Deze link kan dit niet stoppen" in page
    assert "Automatische incasso is geen mail" in page
    assert "Bibliotheek Borne" in page and "/borne/theme.css" in page
    for url in (f"/unsubscribe/{token}", f"/unsubscribe/{token}/undo"):
        assert "Deze link kan dit niet stoppen" in client.post(url).get_data(as_text=True)
    assert "Deze link kan dit niet stoppen" in client.get(f"/unsubscribe/{token}").get_data(
        as_text=True
    )
    assert event_count(app) == before
    assert direct_debit_status(app) == "granted"
    assert len(outbox) == 1  # only the confirmation of the signup


# -- the member's data copy (items 3 and 4) --------------------------------------------------

INTERNAL_CODES = re.compile(
    r"newsletter|acquisitions|direct_marketing|direct_debit|web_form|preference_centre|"
    r"email_link|one_click|legitimate_interest|: (?:granted|withdrawn|objected|pending|none)\b|"
    r"\d{2}:\d{2}:\d{2}|\.\d{6}|\+00:00"
)


def main_text(page):
    """What a member reads in the main part of a page: its text, without the markup."""
    main = re.search(r"<main.*?</main>", page, re.S).group(0)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


def test_a_member_who_just_asked_for_their_link_sees_their_copy_at_once(app, client, outbox):
    confirmed(client, outbox)
    data = {"email": "jan@example.nl", "csrf_token": csrf_token(client, "/borne/preferences")}
    client.post("/borne/preferences", data=data)
    prefs = link_in(outbox[-1], "preferences")
    mails = len(outbox)
    page = client.get(prefs).get_data(as_text=True)
    assert f'href="{prefs}/data"' in page
    response = client.get(prefs + "/data")
    copy = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "Je gegevens" in copy and "jan@example.nl" in copy
    assert "<strong>Nieuwsbrief</strong>: Aan" in copy
    assert len(outbox) == mails  # nothing to wait for, nothing mailed
    download = client.get(prefs + "/data?format=json")
    assert download.headers["Cache-Control"] == "no-store"
    assert (
        download.headers["Content-Disposition"] == 'attachment; filename="borne-mijn-gegevens.json"'
    )
    assert download.json["subject"]["email"] == "jan@example.nl"


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (
            "nl",
            [
                "Nieuwsbrief</strong>: Aan",
                "Aanwinstenmail</strong>: Uit",
                "Automatische incasso</strong>: Uit",
                "Aanmeldformulier op de website",
            ],
        ),
        (
            "en",
            [
                "Newsletter</strong>: On",
                "New arrivals</strong>: Off",
                "Direct debit</strong>: Off",
                "Signup form on the website",
            ],
        ),
    ],
)
def test_the_copy_speaks_the_members_words(app, client, outbox, lang, words):
    confirmed(client, outbox)
    url = prefs_url(app)
    client.post(url, data={"purpose": "direct_marketing", "choice": "never"})
    with app.app_context():
        subject = db.session.get(Subject, subject_id(app))
        subject.language = lang
        db.session.commit()
    page = client.get(url + "/data").get_data(as_text=True)
    assert f'<html lang="{lang}">' in page
    for word in words:
        assert word in page
    text = main_text(page)
    assert INTERNAL_CODES.search(text) is None, INTERNAL_CODES.search(text)
    # Times in the member's timezone, to the minute: the signup was seconds ago.
    with app.app_context():
        signed_up = db.session.get(Subject, subject_id(app)).created_at
    local = signed_up.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Amsterdam"))
    assert f"{local:%H:%M}" in text
    assert 'rel="stylesheet"' in page  # print rules live in the one stylesheet


def test_old_download_links_still_open_the_copy_and_expire_kindly(app, client, outbox):
    confirmed(client, outbox)
    with app.app_context():
        link = f"/download/{tokens.make_download(subject_id(app))}"
    assert "<strong>Nieuwsbrief</strong>: Aan" in client.get(link).get_data(as_text=True)
    app.config["DOWNLOAD_MAX_AGE"] = 0
    time.sleep(1.1)
    response = client.get(link)
    page = response.get_data(as_text=True)
    assert response.status_code == 410
    assert "Bibliotheek Borne" in page and "/borne/theme.css" in page
    assert f'action="{link}/resend"' in page
    app.config["MAIL_COOLDOWN"] = 0
    resent = client.post(link + "/resend", follow_redirects=True).get_data(as_text=True)
    assert "Kijk in je mail" in resent
    assert outbox[-1].subject == "Je link naar je mailinstellingen bij Bibliotheek Borne"


# -- bad and expired links (item 6) --------------------------------------------------------------


def test_an_expired_link_names_its_library_and_offers_a_new_one(app, client, outbox):
    confirmed(client, outbox)
    with app.app_context():
        subject = db.session.get(Subject, subject_id(app))
        subject.language = "en"
        db.session.commit()
    url = prefs_url(app)
    app.config["PREFERENCES_MAX_AGE"] = 0
    time.sleep(1.1)
    page = client.get(url).get_data(as_text=True)
    # The library's logo names it (its name as alt text), from the service's own origin.
    assert re.search(BORNE_LOGO, page)
    assert 'href="/borne/theme.css"' in page
    assert '<html lang="en">' in page  # the member's own language
    assert f'<form method="post" action="{url}/resend">' in page
    assert "Error code" not in page and "410" not in main_text(page)


def test_a_bad_link_leads_to_the_members_library(app, client):
    response = client.get("/preferences/this-is-not-a-real-link")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Deze link werkt niet" in page
    assert "Foutcode" not in page and "400" not in main_text(page)
    assert '<form method="get" action="/preferences"' in page
    assert '<option value="borne">Bibliotheek Borne</option>' in page
    chosen = client.get("/preferences?library=borne")
    assert (chosen.status_code, chosen.headers["Location"]) == (303, "/borne/preferences")
    # An unknown library leads back to the choice, not to an error.
    assert '<select id="library"' in client.get("/preferences?library=nowhere").get_data(
        as_text=True
    )


def test_no_status_code_in_member_error_pages(client):
    page = client.get("/nowhere/signup").get_data(as_text=True)
    assert "Pagina niet gevonden" in page
    assert "Foutcode" not in page and "404" not in main_text(page)


def test_an_expired_address_change_link_names_its_library_and_changes_nothing(app, client, outbox):
    confirmed(client, outbox)
    sid = subject_id(app)
    with app.app_context():
        subject = db.session.get(Subject, sid)
        ledger.request_email_change(db.session, subject, "jan.nieuw@example.nl")
        db.session.commit()
        token = tokens.make_email_change(sid, ledger.email_fingerprint("jan.nieuw@example.nl"))
    app.config["CONFIRM_MAX_AGE"] = 0
    time.sleep(1.1)
    for response in (client.get(f"/email/{token}"), client.post(f"/email/{token}")):
        page = response.get_data(as_text=True)
        assert response.status_code == 410
        assert re.search(BORNE_LOGO, page)
        assert "Vraag Bibliotheek Borne om je de mail opnieuw te sturen" in page
    with app.app_context():
        assert db.session.get(Subject, sid).email == "jan@example.nl"
