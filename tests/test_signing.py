"""Ed25519 signatures: canonical bytes, key ids, published keys, rotation, refusals."""

import base64
import copy
import json
import sys
import threading

import pytest
from sqlalchemy import func, select

from consentsvc import config, create_app, signing
from consentsvc.extensions import db
from consentsvc.models import SigningKey

from .conftest import TEST_CONFIG

OTHER_KEY = base64.urlsafe_b64encode(b"another-signing-key-for-rotation").decode()


def signed(app, payload):
    with app.app_context():
        document = signing.sign(db.session, payload)
        db.session.commit()
        return document


def jwks(app):
    with app.app_context():
        return signing.published_keys(db.session)


def flip(text, at):
    """The base64url text with one character at `at` changed to another valid one."""
    char = "B" if text[at] != "B" else "C"
    return text[:at] + char + text[at + 1 :]


def test_canonical_encoding_is_sorted_compact_utf8():
    assert signing.canonical({"b": [1, True, None], "a": "é"}) == (
        '{"a":"é","b":[1,true,null]}'.encode()
    )
    assert signing.canonical({"z": {"y": 1, "x": 2}}) == b'{"z":{"x":2,"y":1}}'
    with pytest.raises(TypeError):
        signing.canonical({"a": 1.5})


def test_key_id_is_the_rfc7638_thumbprint():
    # RFC 8037, appendix A.3: the thumbprint of its example Ed25519 key.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    assert signing.thumbprint(x) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_a_signed_document_verifies_and_is_deterministic(app):
    payload = {"receipt_id": "r-1", "text": "Ik wil de nieuwsbrief", "seq": 3}
    document = signed(app, payload)
    assert document == signed(app, payload)  # same bytes every time
    signature = document["signature"]
    assert signature["alg"] == "EdDSA" and signature["crv"] == "Ed25519"
    assert len(base64.urlsafe_b64decode(signature["sig"] + "==")) == 64
    keys = jwks(app)
    assert signing.verify(document, keys) == payload
    # The key id is the thumbprint of the published key it names.
    (key,) = keys["keys"]
    assert key["kid"] == signature["kid"] == signing.thumbprint(key["x"])
    assert (key["kty"], key["crv"], key["use"], key["alg"]) == ("OKP", "Ed25519", "sig", "EdDSA")


def test_every_changed_byte_fails(app):
    document = signed(app, {"action": "granted", "purpose": "newsletter", "seq": 1})
    keys = jwks(app)
    for change in (
        lambda d: d["payload"].update(action="withdrawn"),
        lambda d: d["payload"].update(seq=2),
        lambda d: d["payload"].update(extra=None),
        lambda d: d["signature"].update(sig=flip(d["signature"]["sig"], 10)),
        lambda d: d["signature"].update(sig=flip(d["signature"]["sig"], 0)),
    ):
        changed = copy.deepcopy(document)
        change(changed)
        with pytest.raises(signing.BadSignature) as refused:
            signing.verify(changed, keys)
        assert refused.value.reason == "bad_signature"


def test_each_byte_of_the_signed_bytes_matters(app):
    payload = {"a": "x"}
    document = signed(app, payload)
    keys = jwks(app)
    raw = bytearray(signing.canonical(payload))
    # Change each byte of the encoded payload in turn: every valid JSON result fails.
    for index in range(len(raw)):
        tampered = bytearray(raw)
        tampered[index] ^= 0x01
        try:
            other = json.loads(tampered)
        except ValueError:
            continue
        with pytest.raises(signing.BadSignature):
            signing.verify({"payload": other, "signature": document["signature"]}, keys)


@pytest.fixture
def restart(app):
    """Start the service again on the same database with other settings (no fresh tables)."""
    started = []

    def start(**changes):
        config = {**TEST_CONFIG, "DATABASE_URL": app.config["DATABASE_URL"], **changes}
        started.append(create_app(config))
        return started[-1]

    yield start
    for other in started:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


def test_a_retired_key_still_verifies(app, restart):
    old = signed(app, {"n": 1})
    # The service restarts with another key: the old one stays published under its id.
    rotated = restart(SIGNING_KEY=OTHER_KEY)
    new = signed(rotated, {"n": 2})
    assert new["signature"]["kid"] != old["signature"]["kid"]
    keys = jwks(rotated)
    assert [k["kid"] for k in keys["keys"]] == [new["signature"]["kid"], old["signature"]["kid"]]
    assert signing.verify(old, keys) == {"n": 1}
    assert signing.verify(new, keys) == {"n": 2}
    # Served the same way, to anyone.
    response = rotated.test_client().get("/.well-known/consent-receipt-key")
    assert response.status_code == 200
    assert response.mimetype == "application/jwk-set+json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "max-age" in response.headers["Cache-Control"]
    assert response.get_json() == keys
    # Registering is done once per key, however often it signs.
    signed(rotated, {"n": 3})
    with rotated.app_context():
        assert db.session.scalar(select(func.count()).select_from(SigningKey)) == 2


def test_the_active_key_is_published_before_it_signed(client):
    keys = client.get("/.well-known/consent-receipt-key").get_json()
    assert len(keys["keys"]) == 1
    assert keys["keys"][0]["x"] == signing.public_x(signing.private_key(TEST_CONFIG["SIGNING_KEY"]))


def test_an_unknown_key_id_fails(app):
    document = signed(app, {"n": 1})
    other = {"keys": [signing.jwk(signing.thumbprint("A" * 43), "A" * 43)]}
    with pytest.raises(signing.BadSignature) as refused:
        signing.verify(document, other)
    assert refused.value.reason == "unknown_kid"
    assert document["signature"]["kid"] in str(refused.value)


def test_a_key_set_entry_must_be_the_key_its_id_names(app):
    document = signed(app, {"n": 1})
    (key,) = jwks(app)["keys"]
    # An attacker's key under the service's key id is not used.
    forged = {**key, "x": signing.public_x(signing.private_key(OTHER_KEY))}
    with pytest.raises(signing.BadSignature) as refused:
        signing.verify(document, {"keys": [forged]})
    assert refused.value.reason == "malformed"


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        "text",
        {"payload": {}},
        {"payload": [], "signature": {}},
        {"payload": {}, "signature": {"alg": "HS256", "kid": "k", "sig": "AA"}},
        {"payload": {}, "signature": {"alg": "EdDSA", "kid": 1, "sig": "AA"}},
        {"payload": {}, "signature": {"alg": "EdDSA", "kid": "k", "sig": "not base64!"}},
        {"payload": {}, "signature": {"alg": "EdDSA", "kid": "k", "sig": "AAAA"}},
        {"payload": {"f": 1.5}, "signature": {"alg": "EdDSA", "kid": "k", "sig": "A" * 86}},
        {"payload": {}, "signature": {}, "more": 1},
    ],
)
def test_malformed_documents_are_refused(app, document):
    with pytest.raises(signing.BadSignature) as refused:
        signing.verify(document, jwks(app))
    assert refused.value.reason == "malformed"


def test_signing_key_setting_is_checked(app_factory, tmp_path):
    with pytest.raises(ValueError, match="CONSENTSVC_SIGNING_KEY must be an Ed25519 key"):
        app_factory(SIGNING_KEY="too-short")
    assert not signing.is_key(base64.urlsafe_b64encode(b"x" * 31).decode())
    assert not signing.is_key(None)
    # Without the setting, a key is made once into the instance folder and kept.
    made = config._instance_signing_key(tmp_path / "signing_key")
    assert signing.is_key(made)
    assert config._instance_signing_key(tmp_path / "signing_key") == made
    assert (tmp_path / "signing_key").stat().st_mode & 0o077 == 0


def test_processes_signing_at_once_publish_the_key_once(app, restart):
    # Several service processes start with a new key and sign at the same moment.
    services = [restart(SIGNING_KEY=OTHER_KEY) for _ in range(4)]
    start = threading.Barrier(len(services) * 2)
    errors, documents = [], []

    def sign_one(service, n):
        try:
            with service.app_context():
                start.wait()
                documents.append(signing.sign(db.session, {"n": n}))
                db.session.commit()
        except Exception as error:
            errors.append(error)

    threads = [
        threading.Thread(target=sign_one, args=(service, n))
        for n, service in enumerate(services * 2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    kid = signing.thumbprint(signing.public_x(signing.private_key(OTHER_KEY)))
    with app.app_context():
        rows = db.session.scalars(select(SigningKey).where(SigningKey.kid == kid)).all()
        assert len(rows) == 1
        keys = signing.published_keys(db.session)
    assert len(documents) == 8
    assert all(signing.verify(document, keys) for document in documents)


def test_a_payload_nested_beyond_reason_is_malformed(app):
    document = signed(app, {"n": 1})
    deep = []
    for _ in range(sys.getrecursionlimit() * 2):
        deep = [deep]
    with pytest.raises(signing.BadSignature) as refused:
        signing.verify({"payload": {"a": deep}, "signature": document["signature"]}, jwks(app))
    assert refused.value.reason == "malformed"
