"""The tamper-evident ledger: the database refuses rewriting history, and verify finds what
an operator changed after lifting that refusal (docs/proof.md)."""

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from consentsvc import ledger, staff
from consentsvc.database import drop_append_only_sql
from consentsvc.extensions import db
from consentsvc.ledger import Channel, Proof
from consentsvc.models import (
    AuditEntry,
    ConsentEvent,
    Library,
    StaffRole,
    StaffUser,
    Subject,
    utcnow,
)

from .conftest import empty_database

KEY = "test-suppression-key"


def _borne():
    return db.session.scalar(select(Library).where(Library.slug == "borne"))


def _member(email, purposes=("newsletter",)):
    result = ledger.signup(
        db.session, _borne(), email, list(purposes), language="nl", channel=Channel.WEB_FORM,
        proof=Proof(ip_address="192.0.2.7", user_agent="pytest", origin="https://borne.example"),
    )  # fmt: skip
    ledger.confirm(db.session, result.subject, result.request_ids)
    return result.subject


def _colleague():
    user = StaffUser(
        library_id=_borne().id, email="femke@borne.example", name="Femke",
        role=StaffRole.PRIVACY_OFFICER, password_hash="x",
    )  # fmt: skip
    db.session.add(user)
    db.session.flush()
    return user


def _history(app):
    """A library with members who signed up, withdrew and were looked at by staff."""
    with app.app_context():
        femke = _colleague()
        for n in range(4):
            person = _member(f"lid{n}@example.nl", ("newsletter", "acquisitions"))
            staff.audit(db.session, femke, "view", subject=person, reason="vraag aan de balie")
        ledger.withdraw(
            db.session, person, "newsletter", channel=Channel.ONE_CLICK, proof=Proof("192.0.2.9")
        )
        db.session.commit()


def _verify(runner, *args):
    result = runner.invoke(args=["ledger", "verify", *args])
    return result.exit_code, result.output


def _unguard(table):
    dialect = db.engine.dialect.name
    with db.engine.begin() as connection:
        for statement in drop_append_only_sql(dialect, table):
            connection.execute(text(statement))


def _rows(model):
    return db.session.scalars(
        select(model).where(model.library_id == _borne().id).order_by(model.seq)
    ).all()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE consent_event SET channel = 'staff'",
        "UPDATE consent_event SET occurred_at = occurred_at",
        "DELETE FROM consent_event",
        "UPDATE audit_entry SET action = 'nothing'",
        "DELETE FROM audit_entry",
    ],
)
def test_the_database_refuses_rewriting_history(app, statement):
    _history(app)
    with app.app_context():
        refused = pytest.raises(DBAPIError, match="refused: rows are only ever added")
        with refused, db.engine.begin() as connection:
            connection.exec_driver_sql(statement)
        assert len(_rows(ConsentEvent)) == 4 * 4 + 1
        assert {e.channel for e in _rows(ConsentEvent)} == {"web_form", "email_link", "one_click"}
        assert [e.action for e in _rows(AuditEntry)] == ["view"] * 4


def test_truncate_is_refused_on_postgresql(app):
    _history(app)
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            assert db.engine.dialect.name == "sqlite"  # SQLite has no TRUNCATE
            return
        refused = pytest.raises(DBAPIError, match="TRUNCATE on consent_event is refused")
        with refused, db.engine.begin() as connection:
            connection.exec_driver_sql("TRUNCATE consent_event CASCADE")
        assert len(_rows(ConsentEvent)) == 17


def test_each_library_has_one_unbroken_chain(app, runner):
    _history(app)
    with app.app_context():
        events = _rows(ConsentEvent)
        assert [e.seq for e in events] == list(range(1, 18))
        assert len({e.hash for e in events}) == 17
        # Evidence is committed to, not copied: the commitment is a keyed hash.
        signups = [e for e in events if e.action == "requested"]
        assert len(signups) == 8
        assert all(len(e.evidence_commitment or "") == 64 for e in signups)
        entries = _rows(AuditEntry)
        assert [e.seq for e in entries] == [1, 2, 3, 4]
        assert entries[0].subject_id is not None and entries[0].reason == "vraag aan de balie"
    code, output = _verify(runner)
    assert code == 0, output
    assert "borne: consent chain 17 rows, head " in output
    assert "audit chain 4 rows" in output
    assert "ledger ok" in output


def test_verify_holds_after_erasure_and_retention(app, runner):
    _history(app)
    with app.app_context():
        person = db.session.scalar(select(Subject).where(Subject.email == "lid0@example.nl"))
        ledger.erase(db.session, person, suppression_key=KEY, actor="staff:1", identification="pas")
        db.session.commit()
        # Retention a long time later: evidence details, desk notes and audit notes go.
        borne = _borne()
        policy = ledger.RetentionPolicy.of(borne, now=utcnow() + timedelta(days=3650))
        for category in ("evidence_details", "desk_notes", "audit"):
            ledger.apply_rows(db.session, borne, policy, category)
        db.session.commit()
        entries = _rows(AuditEntry)
        assert [e.reason for e in entries[:4]] == [None] * 4
        assert [e.subject_id for e in entries[:4]] == [None] * 4
    code, output = _verify(runner)
    assert code == 0, output


def _tamper(app, table, statement):
    with app.app_context():
        _unguard(table)
        with db.engine.begin() as connection:
            connection.exec_driver_sql(statement)


def _event_id(app, seq):
    with app.app_context():
        return db.session.scalar(
            select(ConsentEvent.id).where(
                ConsentEvent.library_id == _borne().id, ConsentEvent.seq == seq
            )
        )


def test_verify_names_an_edited_row(app, runner):
    _history(app)
    row = _event_id(app, 6)
    _tamper(app, "consent_event", "UPDATE consent_event SET channel = 'staff' WHERE seq = 6")
    code, output = _verify(runner, "--library", "borne")
    assert code == 1
    assert f"borne consent chain, row 6 (id {row}): changed" in output
    assert "no longer refuses changes to consent_event" in output
    assert "consent chain BROKEN, holds for its first 5 rows" in output


def test_verify_names_a_backdated_row_even_with_its_hash_recomputed_from_scratch(app, runner):
    """An edit that re-computes the edited row's own hash still breaks the next link."""
    _history(app)
    with app.app_context():
        event = _rows(ConsentEvent)[2]
        fields = ledger.chain.consent_fields(
            library="borne", seq=3, subject=event.subject_id, purpose=event.purpose.code,
            action=event.action, occurred_at=event.occurred_at - timedelta(days=400),
            channel=event.channel, actor=event.actor,
            text=ledger.chain.text_part(event.consent_text), request=None,
        )  # fmt: skip
        previous = _rows(ConsentEvent)[1].hash
        forged = ledger.chain.link(previous, fields, event.evidence_commitment)
        row, at = event.id, event.occurred_at - timedelta(days=400)
    with app.app_context():
        _unguard("consent_event")
        with db.engine.begin() as connection:
            connection.execute(
                text("UPDATE consent_event SET occurred_at = :at, hash = :h WHERE id = :id"),
                {
                    "at": at.replace(tzinfo=None) if db.engine.dialect.name == "sqlite" else at,
                    "h": forged,
                    "id": row,
                },
            )
    code, output = _verify(runner)
    assert code == 1
    # The forged row fits on its own; the row after it no longer follows.
    assert "borne consent chain, row 3" in output or "borne consent chain, row 4" in output
    assert ": changed:" in output


def test_verify_names_a_deleted_row(app, runner):
    _history(app)
    row = _event_id(app, 9)
    with app.app_context():
        _unguard("consent_event")
        with db.engine.begin() as connection:
            connection.execute(
                text("DELETE FROM consent_state WHERE last_event_id = :id"), {"id": row}
            )
            connection.execute(
                text("UPDATE consent_event SET request_id = NULL WHERE request_id = :id"),
                {"id": row},
            )
            connection.execute(text("DELETE FROM consent_event WHERE id = :id"), {"id": row})
    code, output = _verify(runner)
    assert code == 1
    assert "borne consent chain, row 9: missing: row 9 is gone" in output


def test_verify_names_the_last_rows_deleted(app, runner):
    _history(app)
    last = _event_id(app, 17)
    with app.app_context():
        _unguard("consent_event")
        with db.engine.begin() as connection:
            connection.execute(
                text("DELETE FROM consent_state WHERE last_event_id = :id"), {"id": last}
            )
            connection.execute(text("DELETE FROM consent_event WHERE id = :id"), {"id": last})
    code, output = _verify(runner)
    assert code == 1
    assert "row 17: missing: the chain had 17 rows, 16 are left" in output


def _move_places(connection, first, by):
    """Shift rows from place `first` on by `by`, in two steps so no place is taken twice."""
    params = {"first": first, "far": 1_000_000}
    connection.execute(
        text("UPDATE consent_event SET seq = seq + :far WHERE seq >= :first"), params
    )
    connection.execute(
        text("UPDATE consent_event SET seq = seq - :far + :by WHERE seq >= :far"),
        {**params, "by": by},
    )


def test_verify_names_an_inserted_row(app, runner):
    _history(app)
    with app.app_context():
        first = _rows(ConsentEvent)[0]
        values = {
            "library_id": first.library_id, "subject_id": first.subject_id,
            "purpose_id": first.purpose_id, "seq": 4, "hash": "f" * 64,
            "at": utcnow() - timedelta(days=300),
        }  # fmt: skip
        if db.engine.dialect.name == "sqlite":
            values["at"] = values["at"].replace(tzinfo=None)
        db.session.rollback()  # lets go of SQLite's write lock
        _unguard("consent_event")
        with db.engine.begin() as connection:
            _move_places(connection, 4, 1)
            connection.execute(
                text(
                    "INSERT INTO consent_event (library_id, subject_id, purpose_id, action, "
                    "occurred_at, channel, seq, hash) VALUES (:library_id, :subject_id, "
                    ":purpose_id, 'granted', :at, 'staff', :seq, :hash)"
                ),
                values,
            )
            connection.execute(text("UPDATE chain_head SET length = length + 1"))
    code, output = _verify(runner)
    assert code == 1
    assert "borne consent chain, row 4 (id " in output
    assert "inserted: the newest row of all sits here" in output


def test_verify_names_reordered_rows(app, runner):
    _history(app)
    with app.app_context():
        _unguard("consent_event")
        with db.engine.begin() as connection:
            # Rows 3 and 4 swap places.
            connection.execute(text("UPDATE consent_event SET seq = -3 WHERE seq = 3"))
            connection.execute(text("UPDATE consent_event SET seq = 3 WHERE seq = 4"))
            connection.execute(text("UPDATE consent_event SET seq = 4 WHERE seq = -3"))
    code, output = _verify(runner)
    assert code == 1
    assert "borne consent chain, row 3" in output and ": reordered:" in output


def test_verify_names_an_edited_audit_entry(app, runner):
    _history(app)
    _tamper(app, "audit_entry", "UPDATE audit_entry SET action = 'search' WHERE seq = 2")
    code, output = _verify(runner)
    assert code == 1
    assert "borne audit chain, row 2" in output and ": changed:" in output
    assert "no longer refuses changes to audit_entry" in output


def test_verify_names_an_edited_wording(app, runner):
    _history(app)
    with app.app_context(), db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE consent_text SET body = body || ' (en meer)'")
    code, output = _verify(runner, "--library", "borne")
    assert code == 1
    assert "was edited after it was shown" in output


def test_fifty_writers_at_once_make_one_chain(app, runner):
    """Concurrent appends queue on the chain head instead of forking the chain."""
    with app.app_context():
        db.session.commit()
    errors = []
    start = threading.Barrier(50)

    def write(n):
        try:
            with app.app_context():
                start.wait()
                _member(f"tegelijk{n}@example.nl")
                db.session.commit()
                db.session.remove()
        except Exception as exc:  # reported below, with the thread's number
            errors.append((n, repr(exc)))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with app.app_context():
        events = _rows(ConsentEvent)
        assert [e.seq for e in events] == list(range(1, 101))
        assert len({e.hash for e in events}) == 100
    code, output = _verify(runner)
    assert code == 0, output
    assert "borne: consent chain 100 rows" in output


def test_the_worked_example_in_docs_proof_md_recomputes():
    """An auditor re-computes a hash from docs/proof.md alone; so does this test, the same way."""
    import hashlib
    import re
    from pathlib import Path

    page = (Path(__file__).parent.parent / "docs" / "proof.md").read_text(encoding="utf-8")
    example = dict(re.findall(r"^(previous|fields|commitment|hash) +(.+)$", page, re.M))
    data = (example["previous"] + example["fields"] + example["commitment"]).encode()
    assert hashlib.sha256(data).hexdigest() == example["hash"]
    # And the service writes the same fields the same way.
    fields = json.loads(example["fields"])
    assert ledger.chain.canonical(fields).decode() == example["fields"]
    assert ledger.chain.link(example["previous"], fields, example["commitment"]) == example["hash"]


def test_the_migration_brings_existing_rows_into_the_chains(app, runner):
    """A database from before the chains: its events and audit entries, oldest first, become
    each library's chains; the triggers come last; verify holds."""
    from flask_migrate import downgrade, stamp, upgrade

    with app.app_context():
        try:
            # The seeded database with a person and a colleague, taken back to the schema
            # before the chains.
            db.session.add(Subject(id=900, library_id=_borne().id, email="oud@example.nl"))
            db.session.add(
                StaffUser(
                    id=900,
                    library_id=_borne().id,
                    email="f@borne.example",
                    name="Femke",
                    role=StaffRole.DESK,
                    password_hash="x",
                )
            )
            db.session.commit()
            db.session.remove()
            stamp()
            downgrade(revision="175ac17fc432")
            # What the service wrote before: a double opt-in with evidence, and a staff
            # member's look at the person with a reason typed.
            with db.engine.begin() as connection:
                run = connection.execute
                borne = run(text("SELECT id FROM library WHERE slug = 'borne'")).scalar()
                purpose = run(
                    text("SELECT id FROM purpose WHERE library_id = :l AND code = 'newsletter'"),
                    {"l": borne},
                ).scalar()
                wording = run(
                    text("SELECT id FROM consent_text WHERE purpose_id = :p"), {"p": purpose}
                ).scalar()
                now = (
                    utcnow()
                    if db.engine.dialect.name == "postgresql"
                    else "2026-11-30 10:00:00.000001"
                )
                run(
                    text(
                        "INSERT INTO evidence (id, subject_id, created_at, ip_address, details) "
                        "VALUES (900, 900, :t, '192.0.2.1', '{}')"
                    ),
                    {"t": now},
                )
                # Ids from the database's own sequence, as the service's inserts had them.
                last = None
                for action, channel in (("requested", "web_form"), ("granted", "email_link")):
                    last = run(
                        text(
                            "INSERT INTO consent_event (subject_id, purpose_id, action, "
                            "occurred_at, channel, consent_text_id, evidence_id, request_id) "
                            "VALUES (900, :p, :a, :t, :c, :w, 900, :r) RETURNING id"
                        ),
                        {"p": purpose, "a": action, "t": now, "c": channel, "w": wording,
                         "r": last},
                    ).scalar()  # fmt: skip
                run(
                    text(
                        "INSERT INTO consent_state (subject_id, purpose_id, status, "
                        "consent_text_id, changed_at, last_event_id) "
                        "VALUES (900, :p, 'granted', :w, :t, :e)"
                    ),
                    {"p": purpose, "w": wording, "t": now, "e": last},
                )
                run(
                    text(
                        "INSERT INTO audit_entry (library_id, staff_id, at, action, subject_id, "
                        "reason) VALUES (:l, 900, :t, 'view', 900, 'aan de balie')"
                    ),
                    {"l": borne, "t": now},
                )
            upgrade()
            events = _rows(ConsentEvent)
            assert [(e.seq, e.action) for e in events] == [(1, "requested"), (2, "granted")]
            # Both answer to the one piece of evidence: the same commitment.
            assert len(events[0].evidence_commitment) == 64
            assert events[0].evidence_commitment == events[1].evidence_commitment
            entry = _rows(AuditEntry)[0]
            assert (entry.seq, entry.subject_id, entry.reason) == (1, 900, "aan de balie")
            code, output = _verify(runner, "--library", "borne")
            assert code == 0, output
            assert "borne: consent chain 2 rows" in output and "audit chain 1 rows" in output
            # New rows follow on from the migrated ones.
            _member("nieuw@example.nl")
            db.session.commit()
            assert [e.seq for e in _rows(ConsentEvent)] == [1, 2, 3, 4]
            code, output = _verify(runner)
            assert code == 0, output
            refused = pytest.raises(DBAPIError, match="refused")
            with refused, db.engine.begin() as connection:
                connection.exec_driver_sql("DELETE FROM consent_event")
            downgrade(revision="175ac17fc432")
            with db.engine.begin() as connection:
                kept = connection.execute(text("SELECT subject_id, reason FROM audit_entry")).all()
            assert kept == [(900, "aan de balie")]
        finally:
            empty_database()
