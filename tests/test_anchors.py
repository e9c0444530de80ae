"""Anchoring the chains outside the database: the daily signed head statement, mailed to the
privacy officer and published, and `ledger verify --against` a statement kept from earlier."""

import json
from email import message_from_bytes
from pathlib import Path

from sqlalchemy import select, text

from consentsvc import ledger, signing
from consentsvc.database import drop_append_only_sql
from consentsvc.extensions import db
from consentsvc.ledger import Channel, Proof, chain
from consentsvc.models import ConsentEvent, LedgerAnchor, Library

OFFICER = "fg@borne.example"


def _borne():
    return db.session.scalar(select(Library).where(Library.slug == "borne"))


def _members(app, *emails):
    with app.app_context():
        borne = _borne()
        borne.privacy_officer_email = OFFICER
        for email in emails:
            result = ledger.signup(
                db.session, borne, email, ["newsletter"], language="nl",
                channel=Channel.WEB_FORM, proof=Proof(ip_address="192.0.2.4"),
            )  # fmt: skip
            ledger.confirm(db.session, result.subject, result.request_ids)
        db.session.commit()


def _anchors(app):
    with app.app_context():
        return db.session.scalars(select(LedgerAnchor).order_by(LedgerAnchor.id)).all()


def _officer_mails(tmp_path):
    folder = tmp_path / "mail"
    return [
        message_from_bytes(path.read_bytes())
        for path in sorted(folder.glob("*-ledger_head.eml"))
        if OFFICER in path.read_bytes().decode("utf-8", "replace")
    ]


def _attachment(mail):
    parts = [p for p in mail.walk() if p.get_filename()]
    assert len(parts) == 1 and parts[0].get_content_type() == "application/json"
    return parts[0].get_filename(), json.loads(parts[0].get_payload(decode=True))


def test_the_worker_anchors_each_library_once_a_day_and_mails_the_officer(app_factory, tmp_path):
    # Mails go to files here, as when trying the service out; the attachment is the proof.
    app = app_factory(MAIL_SERVER="")
    _members(app, "een@example.nl", "twee@example.nl")
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["worker", "--once"])
        assert result.exit_code == 0, result.output
    anchors = [a for a in _anchors(app) if a.library_id == 1]
    assert len(anchors) == 1
    anchor = anchors[0]
    assert (anchor.consent_length, anchor.audit_length) == (4, 0)
    assert anchor.mailed_at is not None
    mails = _officer_mails(tmp_path)
    assert len(mails) == 1
    assert "Bibliotheek Borne" in mails[0]["Subject"]
    name, statement = _attachment(mails[0])
    assert name == f"consent-ledger-borne-{anchor.day.isoformat()}.json"
    assert statement == anchor.statement
    body = next(p for p in mails[0].walk() if p.get_content_type() == "text/plain")
    body = body.get_payload(decode=True).decode()
    assert anchor.consent_hash in body
    assert f"consentsvc ledger verify --against {name}" in body
    with app.app_context():
        payload = signing.verify(statement, signing.published_keys(db.session))
        assert payload["chains"]["consent"] == {
            "length": 4,
            "hash": anchor.consent_hash,
            "last_at": payload["chains"]["consent"]["last_at"],
        }


def test_the_latest_statement_is_published(app, client):
    missing = client.get("/.well-known/consent-ledger/borne")
    assert missing.status_code == 404
    assert missing.json == {"error": "not_found", "message": "no head statement yet"}
    assert client.get("/.well-known/consent-ledger/atlantis").json["message"] == "no such library"
    _members(app, "een@example.nl")
    with app.app_context():
        from zoneinfo import ZoneInfo

        from consentsvc import anchors
        from consentsvc.models import utcnow

        made = anchors.anchor_daily(db.session, utcnow(), ZoneInfo("Europe/Amsterdam"))
        assert {a.library_id for a in made} == {1, 2}
        db.session.commit()
        stored = anchors.latest(db.session, _borne()).statement
    answer = client.get("/.well-known/consent-ledger/borne")
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.json == stored
    assert answer.json["payload"]["chains"]["consent"]["length"] == 2


def _head(runner, tmp_path, name="head.json"):
    result = runner.invoke(args=["ledger", "head", "--library", "borne"])
    assert result.exit_code == 0, result.output
    path = tmp_path / name
    path.write_text(result.output)
    return path


def test_ledger_head_prints_a_signed_statement(app, runner, tmp_path):
    _members(app, "een@example.nl", "twee@example.nl", "drie@example.nl")
    path = _head(runner, tmp_path)
    document = json.loads(path.read_text())
    with app.app_context():
        payload = signing.verify(document, signing.published_keys(db.session))
        last = db.session.scalar(
            select(ConsentEvent).where(ConsentEvent.seq == 6, ConsentEvent.library_id == 1)
        )
        assert payload["chains"]["consent"]["hash"] == last.hash
    assert payload["type"] == "consentsvc-ledger-head"
    assert payload["library"] == "borne" and payload["chains"]["consent"]["length"] == 6
    everyone = runner.invoke(args=["ledger", "head"])
    assert [d["payload"]["library"] for d in json.loads(everyone.output)] == [
        "borne",
        "zoetermeer",
    ]


def _recompute_from(app, seq):
    """What someone with the database's keys could do: edit a row, lift the triggers and
    re-compute every hash after it, so that the chain holds on its own again."""
    with app.app_context():
        borne = _borne()
        dialect = db.engine.dialect.name
        db.session.rollback()
        with db.engine.begin() as connection:
            for statement in drop_append_only_sql(dialect, "consent_event"):
                connection.execute(text(statement))
            connection.execute(
                text(
                    "UPDATE consent_event SET channel = 'staff' WHERE library_id = 1 AND seq = :s"
                ),
                {"s": seq},
            )
        rows = list(chain._consent_rows(db.session, borne))
        previous, hashes = chain.GENESIS, []
        for row in rows:
            previous = chain.link(previous, row.fields, row.commitment)
            hashes.append({"h": previous, "id": row.id})
        db.session.rollback()
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE consent_event SET hash = :h WHERE id = :id"), hashes)


def test_verify_against_an_earlier_head_catches_a_recomputed_chain(app, runner, tmp_path):
    _members(app, "een@example.nl", "twee@example.nl")
    kept = _head(runner, tmp_path, "kept.json")
    _members(app, "drie@example.nl")
    result = runner.invoke(args=["ledger", "verify", "--against", str(kept)])
    assert result.exit_code == 0, result.output
    assert "borne consent chain: row 4 still has the hash stated on" in result.output

    _recompute_from(app, 2)
    alone = runner.invoke(args=["ledger", "verify", "--library", "borne"])
    # The chain holds on its own again; only the missing triggers give it away here …
    assert "borne: consent chain 6 rows" in alone.output
    assert "no longer refuses changes to consent_event" in alone.output
    # … and the statement kept from earlier shows the history was rewritten.
    result = runner.invoke(args=["ledger", "verify", "--against", str(kept)])
    assert result.exit_code == 1
    assert "borne consent chain: row 4 has " in result.output
    assert "the chain was changed or re-computed after that statement" in result.output


def test_verify_against_refuses_what_is_no_statement(app, runner, tmp_path):
    _members(app, "een@example.nl")
    kept = _head(runner, tmp_path)
    forged = json.loads(kept.read_text())
    forged["payload"]["chains"]["consent"]["length"] = 1
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    result = runner.invoke(args=["ledger", "verify", "--against", str(tmp_path / "forged.json")])
    assert result.exit_code == 1
    assert "INVALID signature" in result.output
    (tmp_path / "garbage.json").write_bytes(b"\x00\xff not json")
    result = runner.invoke(args=["ledger", "verify", "--against", str(tmp_path / "garbage.json")])
    assert result.exit_code == 2
    assert "cannot read" in result.output and "Traceback" not in result.output
    result = runner.invoke(args=["ledger", "verify", "--against", str(Path(tmp_path / "nope"))])
    assert result.exit_code == 2
