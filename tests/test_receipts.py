"""Signed consent receipts: what they hold, the member's pages, and `receipt verify`."""

import hashlib
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from consentsvc import create_app, ledger, receipts, signing, tokens
from consentsvc.extensions import db
from consentsvc.ledger import chain
from consentsvc.models import ConsentEvent, Library, Subject

from .conftest import TEST_CONFIG, link_in, signup, work_outbox

RECEIPT_LINK = re.compile(r'href="(/preferences/[^"/]+/receipts/[0-9a-f-]{36})"')
DOWNLOAD_LINK = re.compile(r'href="(/preferences/[^"/]+/receipts/[0-9a-f-]{36}/download)"')


def confirmed(client, outbox, email="jan@example.nl", library="borne"):
    """Sign up and confirm; the page shown after confirming."""
    signup(client, email, library=library)
    return client.post(link_in(outbox[-1], "confirm"))


def subject_of(app, email="jan@example.nl"):
    with app.app_context():
        return db.session.scalar(select(Subject.id).where(Subject.email == email))


def prefs(app, email="jan@example.nl"):
    with app.app_context():
        return f"/preferences/{tokens.make_preferences(subject_of(app, email))}"


def events_of(app, email="jan@example.nl"):
    """(action, receipt id or None, event hash, seq) of a person's events, oldest first."""
    with app.app_context():
        rows = db.session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subject_id == subject_of(app, email))
            .order_by(ConsentEvent.id)
        )
        return [
            (e.action, receipts.receipt_id(e) if receipts.has_receipt(e) else None, e.hash, e.seq)
            for e in rows
        ]


def published(client):
    return client.get("/.well-known/consent-receipt-key").get_json()


def download(client, url):
    response = client.get(url)
    assert response.status_code == 200, url
    return response


def test_the_confirmation_links_a_receipt_that_verifies(app, client, outbox):
    page = confirmed(client, outbox).get_data(as_text=True)
    (receipt_url,) = RECEIPT_LINK.findall(page)
    [(_, none, _, _), (action, rid, event_hash, seq)] = events_of(app)
    with app.app_context():
        commitment = db.session.scalar(
            select(ConsentEvent.evidence_commitment).where(ConsentEvent.hash == event_hash)
        )
    assert none is None and action == "granted"
    assert receipt_url.endswith(f"/receipts/{rid}")
    # The id is the chain's, derived from the event's hash.
    assert rid == chain.receipt_id(event_hash)

    response = download(client, receipt_url + "/download")
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == f'attachment; filename="receipt-{rid}.json"'
    assert response.headers["Cache-Control"] == "no-store"
    document = response.get_json()
    payload = signing.verify(document, published(client))
    # The same bytes every time: nothing stored, nothing that changes.
    assert download(client, receipt_url + "/download").data == response.data

    assert payload["receipt_id"] == rid
    assert payload["conforms_to"] == "ISO/IEC TS 27560:2023"
    assert payload["controller"]["name"] == "Bibliotheek Borne"
    assert payload["pii_principal"] == {"subject_id": subject_of(app), "email": "jan@example.nl"}
    assert payload["purpose"]["code"] == "newsletter"
    assert payload["purpose"]["legal_basis"] == "consent"
    assert payload["event"]["action"] == "granted"
    assert payload["event"]["channel"] == "email_link"
    assert payload["event"]["confirms_request"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", payload["event"]["time"])
    assert payload["chain"] == {
        "library": "borne", "seq": seq, "event_hash": event_hash,
        "evidence_commitment": commitment,
    }  # fmt: skip
    assert re.fullmatch("[0-9a-f]{64}", commitment)  # the confirmation's evidence
    assert payload["keys_url"] == "http://localhost/.well-known/consent-receipt-key"
    notice = payload["notice"]
    with app.app_context():
        event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.action == "granted"))
        assert event.hash == event_hash
        text = event.consent_text
        assert (notice["version"], notice["language"]) == (text.version, text.language)
        assert (notice["title"], notice["text"], notice["sha256"]) == (
            text.title,
            text.body,
            text.sha256,
        )
    # Anyone can recompute the text's hash from the receipt alone.
    assert (
        notice["sha256"]
        == hashlib.sha256(f"{notice['title']}\n\n{notice['text']}".encode()).hexdigest()
    )


def test_history_links_each_grant_and_withdrawal_to_its_receipt(app, client, outbox):
    confirmed(client, outbox)
    url = prefs(app)
    client.post(url, data={"purpose": "newsletter", "choice": "off"})
    page = client.get(url + "/history").get_data(as_text=True)
    ids = [rid for _action, rid, _h, _s in events_of(app) if rid]
    assert len(ids) == 2  # the grant and the withdrawal; the request has none
    links = RECEIPT_LINK.findall(page)
    assert [link.rsplit("/", 1)[1] for link in links] == ids[::-1]  # newest first
    assert [d.rsplit("/", 2)[1] for d in DOWNLOAD_LINK.findall(page)] == ids[::-1]
    assert "Bewijs" in page

    keys = published(client)
    withdrawal = signing.verify(download(client, links[0] + "/download").get_json(), keys)
    grant = signing.verify(download(client, links[1] + "/download").get_json(), keys)
    assert (withdrawal["event"]["action"], grant["event"]["action"]) == ("withdrawn", "granted")
    assert withdrawal["event"]["channel"] == "preference_centre"
    # A withdrawal names the text of the consent it ended.
    assert withdrawal["notice"] == grant["notice"]
    assert withdrawal["chain"]["seq"] > grant["chain"]["seq"]


def test_the_receipt_page_says_it_in_words_in_dutch_and_english(app, client, outbox):
    page = confirmed(client, outbox).get_data(as_text=True)
    (receipt_url,) = RECEIPT_LINK.findall(page)
    with app.app_context():
        event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.action == "granted"))
        text = event.consent_text
        body, title = text.body, text.title
        # Shown in the service's time zone, as on the history page.
        local = event.occurred_at.astimezone(ZoneInfo("Europe/Amsterdam"))

    dutch = client.get(receipt_url).get_data(as_text=True)
    assert "Je gaf toestemming" in dutch
    assert title in dutch and body in dutch
    assert local.strftime("%H:%M:%S") in dutch and str(local.year) in dutch
    assert "Link in je mail" in dutch
    assert "ondertekend" in dutch
    assert f'href="{receipt_url}/download"' in dutch
    assert "/.well-known/consent-receipt-key" in dutch

    english = client.get(receipt_url + "?lang=en").get_data(as_text=True)
    assert "You gave permission" in english
    assert "Link in your mail" in english
    assert "signed" in english
    assert body in english  # the text as it was shown, in its own language


def test_someone_elses_receipt_is_not_found(app, client, outbox):
    confirmed(client, outbox, "jan@example.nl")
    confirmed(client, outbox, "piet@example.nl")
    confirmed(client, outbox, "anna@example.nl", library="zoetermeer")
    jan = [rid for _a, rid, _h, _s in events_of(app, "jan@example.nl") if rid]
    anna = [rid for _a, rid, _h, _s in events_of(app, "anna@example.nl") if rid]
    piet_url = prefs(app, "piet@example.nl")
    jan_url = prefs(app, "jan@example.nl")
    assert client.get(f"{jan_url}/receipts/{jan[0]}").status_code == 200
    for url in (
        f"{piet_url}/receipts/{jan[0]}",  # another member of the same library
        f"{piet_url}/receipts/{jan[0]}/download",
        f"{jan_url}/receipts/{anna[0]}",  # a member of another library
        f"{jan_url}/receipts/{anna[0]}/download",
        f"{jan_url}/receipts/{uuid.uuid4()}",  # nobody's
        f"{jan_url}/receipts/not-a-receipt",
    ):
        assert client.get(url).status_code == 404, url
    # A changed link is refused as on every member page.
    assert client.get(f"/preferences/x{jan_url[13:]}/receipts/{jan[0]}").status_code == 400


def test_a_request_has_no_receipt(app, client, outbox):
    signup(client, "jan@example.nl")
    work_outbox(app)  # the worker records the signup
    with app.app_context():
        [event] = db.session.scalars(select(ConsentEvent)).all()
        assert event.action == "requested"
        with pytest.raises(ValueError):
            receipts.payload(db.session, event)
        subject = db.session.get(Subject, event.subject_id)
        fake = chain.receipt_id(event.hash)
        assert receipts.find(db.session, subject, fake) is None
    assert client.get(f"{prefs(app)}/receipts/{fake}").status_code == 404


def test_the_controller_names_its_privacy_officer_or_its_contact(app, client, outbox):
    confirmed(client, outbox)
    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        borne.isil, borne.contact_email = "NL-BorOB", "info@bibliotheekborne.nl"
        borne.privacy_officer_name, borne.privacy_officer_email = "Femke", "fg@bibliotheekborne.nl"
        db.session.commit()
        event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.action == "granted"))
        controller = receipts.payload(db.session, event)["controller"]
        assert controller["isil"] == "NL-BorOB"
        assert controller["contact"]["role"] == "privacy_officer"
        assert (controller["contact"]["name"], controller["contact"]["email"]) == (
            "Femke", "fg@bibliotheekborne.nl",
        )  # fmt: skip
        borne.privacy_officer_name = borne.privacy_officer_email = None
        db.session.commit()
        contact = receipts.payload(db.session, event)["controller"]["contact"]
        assert (contact["role"], contact["email"]) == ("library", "info@bibliotheekborne.nl")


def test_an_objection_has_a_receipt(app, client, outbox):
    confirmed(client, outbox)
    with app.app_context():
        subject = db.session.get(Subject, subject_of(app))
        event = ledger.object_to(
            db.session, subject, "newsletter", channel="staff", actor="staff:1"
        )
        db.session.commit()
        assert event is not None and receipts.has_receipt(event)
        document = receipts.receipt(db.session, event)
        db.session.commit()
        keys = signing.published_keys(db.session)
    assert signing.verify(document, keys)["event"]["action"] == "objected"


# -- receipt verify ------------------------------------------------------------------------------


@pytest.fixture
def receipt_file(app, client, outbox, tmp_path):
    page = confirmed(client, outbox).get_data(as_text=True)
    (receipt_url,) = RECEIPT_LINK.findall(page)
    path = tmp_path / "receipt.json"
    path.write_bytes(download(client, receipt_url + "/download").data)
    return path


def run(app, *args):
    return app.test_cli_runner().invoke(args=["receipt", "verify", *map(str, args)])


def test_cli_says_a_receipt_is_valid(app, receipt_file):
    result = run(app, receipt_file)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("valid: signed with key ")
    rid = json.loads(receipt_file.read_text())["payload"]["receipt_id"]
    assert f"receipt {rid}" in result.output
    assert "granted newsletter at " in result.output


def test_cli_checks_offline_with_a_key_file(app, client, receipt_file, tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(published(client)))
    # A service whose database cannot be reached: --keys needs none.
    nowhere = create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path}/missing/x.sqlite"})
    result = nowhere.test_cli_runner().invoke(
        args=["receipt", "verify", str(receipt_file), "--keys", str(keys)]
    )
    assert result.exit_code == 0, result.output
    # Another key set does not know the key.
    other = tmp_path / "other.json"
    x = signing.public_x(signing.private_key(signing.new_key()))
    other.write_text(json.dumps({"keys": [signing.jwk(signing.thumbprint(x), x)]}))
    result = nowhere.test_cli_runner().invoke(
        args=["receipt", "verify", str(receipt_file), "--keys", str(other)]
    )
    assert result.exit_code == 1
    assert "no published key has id" in result.output and "unknown_kid" in result.output


def test_cli_refuses_a_changed_receipt(app, receipt_file):
    document = json.loads(receipt_file.read_text())
    document["payload"]["event"]["channel"] = "staff"
    receipt_file.write_text(json.dumps(document))
    result = run(app, receipt_file)
    assert result.exit_code == 1
    assert "INVALID: signature does not match key" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("content", "exit_code", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00garbage", 2, "not UTF-8 text"),
        (b'{"payload": {"a": 1}, "signature": ', 2, "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 2, "not JSON"),
        (b" " * (1024 * 1024 + 1), 2, "larger than 1024 KiB"),
        (b'{"hello": "world"}', 1, "expected an object with payload and signature"),
        (b"[1, 2, 3]", 1, "malformed"),
        (b'{"payload": {}, "signature": {"alg": "none"}}', 1, "not EdDSA"),
    ],
)
def test_cli_explains_bad_files(app, tmp_path, content, exit_code, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    result = run(app, path)
    assert result.exit_code == exit_code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_explains_a_missing_file(app, tmp_path, receipt_file):
    result = run(app, tmp_path / "nothing.json")
    assert result.exit_code == 2
    assert "cannot read" in result.output and "No such file" in result.output
    keys = tmp_path / "keys.json"
    keys.write_text("not json")
    result = run(app, receipt_file, "--keys", keys)
    assert result.exit_code == 2
    assert "cannot read key set" in result.output


# -- the recipes in docs/proof.md, for auditors who do not read Python ---------------------------


def doc_block(language):
    """The code block of a language in docs/proof.md's receipt section."""
    text = (Path(__file__).parent.parent / "docs" / "proof.md").read_text()
    section = text[text.index("## Consent receipts") :]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


@pytest.mark.parametrize(
    ("language", "tools", "command", "success"),
    [
        ("js", ["node"], ["node", "verify-receipt.mjs"], "valid: receipt "),
        ("sh", ["sh", "jq", "basenc", "openssl"], ["sh", "verify-receipt.sh"],
         "Signature Verified Successfully"),
    ],
)  # fmt: skip
def test_the_documented_recipes_check_a_real_receipt(
    client, receipt_file, tmp_path, language, tools, command, success
):
    if missing := [tool for tool in tools if shutil.which(tool) is None]:
        pytest.skip(f"{', '.join(missing)} not installed")
    (tmp_path / command[1]).write_text(doc_block(language))
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(published(client)))

    def check(path):
        return subprocess.run(  # noqa: S603 - our own script, our own files
            [*command, str(path), str(keys)], cwd=tmp_path, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip

    valid = check(receipt_file)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert success in valid.stdout
    # One changed letter in the text shown to the member, and it fails.
    document = json.loads(receipt_file.read_text())
    document["payload"]["notice"]["text"] = document["payload"]["notice"]["text"].replace(
        "a", "o", 1
    )
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document, ensure_ascii=False))
    assert check(changed).returncode != 0
