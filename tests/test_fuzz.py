"""Signed links under attack: whatever arrives as a token is refused cleanly, never crashes.

Hypothesis writes the tokens: random text and bytes, genuine tokens cut or changed, tokens
of one kind offered as another, payloads of the wrong shape under a genuine signature, and
tokens signed with a key that has been retired.
"""

from __future__ import annotations

import string
from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from consentsvc import ledger, tokens
from consentsvc.extensions import db
from consentsvc.models import Library

# The app is made once per test, not per example: reading a token changes nothing.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

OLD_KEY = "an-old-key-that-was-rotated-out-0123456789"

# kind -> (make, read); the ids belong to nobody, so over HTTP even these are bad links.
NOBODY = 987_654
KINDS = {
    "confirm": (lambda: tokens.make_confirm(NOBODY, [NOBODY]), tokens.read_confirm),
    "preferences": (lambda: tokens.make_preferences(NOBODY), tokens.read_preferences),
    "unsubscribe": (lambda: tokens.make_unsubscribe(NOBODY, 1), tokens.read_unsubscribe),
    "download": (lambda: tokens.make_download(NOBODY), tokens.read_download),
    "email_change": (
        lambda: tokens.make_email_change(NOBODY, "0123456789abcdef"),
        tokens.read_email_change,
    ),
    "family": (lambda: tokens.make_family(NOBODY, NOBODY), tokens.read_family),
    "guardian_confirm": (
        lambda: tokens.make_guardian_confirm(NOBODY, [NOBODY], "0123456789abcdef"),
        tokens.read_guardian_confirm,
    ),
    "mandate": (lambda: tokens.make_mandate(NOBODY, NOBODY), tokens.read_mandate),
}
READERS = [read for _make, read in KINDS.values()]

# Text as it can arrive in a URL path: any character, and bytes read as Latin-1 (how WSGI
# hands over a path that is not UTF-8).
any_text = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.", max_size=120),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@pytest.fixture
def ctx(app):
    with app.test_request_context():
        yield app


def refused(read, token):
    """True when a reader refuses the token the one way the views expect."""
    try:
        read(token)
    except tokens.InvalidToken:
        return True
    return False


@FUZZ
@given(token=any_text)
def test_any_text_is_refused_by_every_reader(ctx, token):
    for read in READERS:
        assert refused(read, token), (read.__name__, token)


@FUZZ
@given(data=st.data())
def test_a_changed_or_cut_token_is_refused(ctx, data):
    kind = data.draw(st.sampled_from(sorted(KINDS)))
    make, read = KINDS[kind]
    token = make()
    position = data.draw(st.integers(0, len(token) - 1))
    change = data.draw(st.sampled_from(["cut", "replace", "insert"]))
    if change == "cut":
        changed = token[:position]
    else:
        char = data.draw(st.characters(codec="utf-8"))
        rest = token[position + 1 :] if change == "replace" else token[position:]
        changed = token[:position] + char + rest
    assume(changed != token)
    assert refused(read, changed)


B64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def spellings(token):
    """Every spelling of the token whose parts decode to the same bytes: the last base64
    character of a part carries 2 or 4 bits that decoding drops."""
    parts = token.split(".")
    variants = {token}
    for index, part in enumerate(parts):
        spare = {2: 4, 3: 2}.get(len(part) % 4, 0)
        if not spare:
            continue
        value = B64URL.index(part[-1])
        for low in range(2**spare):
            char = B64URL[(value >> spare << spare) | low]
            variants.add(".".join([*parts[:index], part[:-1] + char, *parts[index + 1 :]]))
    return variants


def test_only_the_canonical_spelling_of_a_token_is_accepted(ctx):
    """Before, …WRA, …WRB, …WRC and …WRD all opened the same link."""
    for kind, (make, read) in KINDS.items():
        token = make()
        others = spellings(token) - {token}
        assert len(others) >= 3, kind  # the signature alone has four spellings
        assert not refused(read, token), kind
        for other in others:
            assert refused(read, other), (kind, other)


def test_non_canonical_spellings_are_a_bad_link_on_every_route(app):
    """Over HTTP, with a real person's links: the canonical one opens the page, every
    other spelling gets the friendly bad-link page."""
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        result = ledger.signup(
            db.session, borne, "jan@example.nl", ["newsletter"], language="nl", channel="web_form"
        )
        db.session.commit()
        subject_id, request_ids = result.subject.id, result.request_ids
        purpose_id = ledger.purpose_by_code(borne, "newsletter").id
    with app.test_request_context():
        links = {
            "/confirm/": tokens.make_confirm(subject_id, request_ids),
            "/preferences/": tokens.make_preferences(subject_id),
            "/unsubscribe/": tokens.make_unsubscribe(subject_id, purpose_id),
            "/download/": tokens.make_download(subject_id),
        }
    client = app.test_client()
    for prefix, token in links.items():
        for other in spellings(token) - {token}:
            response = client.get(prefix + other)
            assert response.status_code == 400, prefix + other
            assert "Deze link werkt niet" in response.get_data(as_text=True)
        assert client.get(prefix + token).status_code == 200, prefix


def test_characters_itsdangerous_would_skip_do_not_pass(ctx):
    """itsdangerous drops non-ASCII characters and accepts padding before it decodes the
    signature: such a changed link was accepted before tokens.TOKEN."""
    for make, read in KINDS.values():
        token = make()
        for changed in (token[:-3] + "é" + token[-3:], token + "==", " " + token, token + "\n"):
            assert refused(read, changed), changed


def test_a_token_of_one_kind_is_never_another(ctx):
    for kind, (make, _read) in KINDS.items():
        token = make()
        for other, (_make, read) in KINDS.items():
            if other == kind:
                assert not refused(read, token), kind
            else:
                assert refused(read, token), (kind, "read as", other)


@FUZZ
@given(
    payload=json_values,
    kind=st.sampled_from(sorted(KINDS)),
    signed_as=st.sampled_from(sorted(KINDS)),
)
def test_genuine_signatures_over_any_payload_give_a_link_or_a_refusal(
    ctx, payload, kind, signed_as
):
    """Even with the key, a payload of the wrong shape or kind is refused, not crashed on."""
    token = tokens._serializer(signed_as).dumps(payload)
    read = KINDS[kind][1]
    try:
        link = read(token)
    except tokens.InvalidToken:
        return
    assert signed_as == kind
    # Accepted only with ids a database column can hold.
    assert all(isinstance(v, int) and 0 < v < 2**63 for v in ids_in(link)), link


def ids_in(link):
    if isinstance(link, int):
        return [link]
    if isinstance(link, tokens.ConfirmLink):
        return [link.subject_id, *link.request_ids]
    if isinstance(link, tokens.UnsubscribeLink):
        return [link.subject_id, link.purpose_id]
    if isinstance(link, tokens.FamilyLink):
        return [link.access_id, link.giver_id]
    if isinstance(link[0], tokens.ConfirmLink):  # guardian_confirm
        confirm, fingerprint = link
        assert isinstance(fingerprint, str) and len(fingerprint) == 16
        return [confirm.subject_id, *confirm.request_ids]
    subject_id, second = link
    if not isinstance(second, str):  # mandate: (subject id, mandate id)
        return [subject_id, second]
    assert len(second) == 16  # email_change: (subject id, address fingerprint)
    return [subject_id]


@FUZZ
@given(subject_id=st.integers(1, 2**62), purpose_id=st.integers(1, 2**31 - 1))
def test_old_key_works_while_in_the_fallbacks_and_not_after(app, subject_id, purpose_id):
    with app.test_request_context():
        app.config.update(SECRET_KEY=OLD_KEY, SECRET_KEY_FALLBACKS=[])
        made = {
            "unsubscribe": tokens.make_unsubscribe(subject_id, purpose_id),
            "preferences": tokens.make_preferences(subject_id),
            "confirm": tokens.make_confirm(subject_id, [purpose_id]),
        }
        current = "the-new-key-after-rotation-0123456789abcdef"
        app.config.update(SECRET_KEY=current, SECRET_KEY_FALLBACKS=[OLD_KEY])
        assert tokens.read_unsubscribe(made["unsubscribe"]) == tokens.UnsubscribeLink(
            subject_id, purpose_id
        )
        assert tokens.read_preferences(made["preferences"]) == subject_id
        assert tokens.read_confirm(made["confirm"]).request_ids == [purpose_id]
        # New links are signed with the new key only.
        plain = URLSafeTimedSerializer(current, salt=tokens.SALTS["preferences"])
        assert plain.loads(tokens.make_preferences(subject_id)) == subject_id

        app.config.update(SECRET_KEY_FALLBACKS=[])
        assert refused(tokens.read_unsubscribe, made["unsubscribe"])
        assert refused(tokens.read_preferences, made["preferences"])
        assert refused(tokens.read_confirm, made["confirm"])


# -- the same over HTTP -----------------------------------------------------------------------


def token_rules(app):
    """Every member URL that takes a token, with the methods it answers."""
    return [
        (rule.rule, sorted((rule.methods or set()) & {"GET", "POST"}))
        for rule in app.url_map.iter_rules()
        if "<token>" in rule.rule
    ]


def test_every_token_route_is_fuzzed(app):
    paths = {rule for rule, _methods in token_rules(app)}
    # Fails when a new token route appears, so that it is thought about here.
    assert paths == {
        "/confirm/<token>", "/confirm/<token>/resend",
        "/preferences/<token>", "/preferences/<token>/stop-all",
        "/preferences/<token>/language", "/preferences/<token>/history",
        "/preferences/<token>/data", "/preferences/<token>/resend",
        "/download/<token>", "/download/<token>/resend", "/email/<token>",
        "/unsubscribe/<token>", "/unsubscribe/<token>/undo",
        "/preferences/<token>/privacy-statement",
        "/preferences/<token>/family", "/preferences/<token>/family/change",
        "/preferences/<token>/family/end", "/family/<token>",
        "/guardian/confirm/<token>",
        "/mandate/<token>", "/preferences/<token>/mandates/<id:mandate_id>/end",
        "/preferences/<token>/receipts/<uuid:receipt>",
        "/preferences/<token>/receipts/<uuid:receipt>/download",
    }  # fmt: skip


@FUZZ
@given(data=st.data())
def test_random_tokens_on_every_token_route_give_a_friendly_refusal(app, data):
    client = app.test_client()
    rules = token_rules(app)
    with app.test_request_context():
        genuine = [make() for make, _read in KINDS.values()]
    token = data.draw(
        st.one_of(
            any_text.filter(bool),
            # A genuine token of another kind: e.g. a preferences token on /download.
            st.sampled_from(genuine),
        )
    )
    rule, methods = data.draw(st.sampled_from(rules))
    method = data.draw(st.sampled_from(methods))
    url = rule.replace("<token>", quote(token, safe="")).replace("<id:mandate_id>", "1")
    url = url.replace("<uuid:receipt>", "6b0c3e9e-8f0a-4d6e-9c1b-2a3f4e5d6c7b")
    response = client.open(url, method=method, data={"List-Unsubscribe": "One-Click"})
    page = response.get_data(as_text=True)
    assert response.status_code < 500, (method, url)
    if response.status_code == 400:
        assert "Deze link werkt niet" in page, (method, url)
    elif response.status_code == 404:
        assert "Pagina niet gevonden" in page, (method, url)
    elif response.status_code == 308 and "//" in unquote(url):
        # A "/" in the token makes an empty path segment; Werkzeug redirects to the address
        # without it (on this site), which then gets one of the answers above.
        assert urlsplit(response.headers["Location"]).netloc in ("", "localhost")
    elif response.status_code == 405 and "//" in unquote(url):
        # Or the address without it is another page, which takes no POST (a token "/" on
        # /download/<token>/resend is /download/resend): the friendly refusal all the same.
        assert "Zo kan het niet" in page, (method, url)
    else:
        pytest.fail(f"{method} {url} answered {response.status_code}")
    assert response.headers["Referrer-Policy"] == "no-referrer"
