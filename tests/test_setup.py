"""The project around the code: schema, migrations, CLI, translations, health."""

import json
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po
from flask_migrate import upgrade
from sqlalchemy import inspect, select, text

from consentsvc.extensions import db

ROOT = Path(__file__).resolve().parent.parent


def test_migrations_give_the_same_schema_as_the_models(app_factory):
    app = app_factory()
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
        try:
            with db.engine.connect() as connection:
                diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
                tables = set(inspect(connection).get_table_names())
            assert diff == []
            assert {"consent_event", "consent_state", "suppression"} <= tables
        finally:
            db.drop_all()
            with db.engine.begin() as connection:
                connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
            db.engine.dispose()


def test_demo_is_idempotent(app, runner):
    first = runner.invoke(args=["demo"])
    second = runner.invoke(args=["demo"])
    assert first.exit_code == second.exit_code == 0
    assert "borne: Bibliotheek Borne (4 purposes)" in second.output
    with app.app_context():
        assert db.session.scalar(text("SELECT count(*) FROM consent_text")) == 2 * 4 * 2


def test_demo_members_to_try_the_console_on(app, runner):
    first = runner.invoke(args=["demo", "--people", "80"])
    # Borne also gets its two young members (demo.seed_young_members, docs/minors.md).
    assert "borne: Bibliotheek Borne (4 purposes, 82 demo members added)" in first.output
    assert "zoetermeer: Bibliotheek Zoetermeer (4 purposes, 80 demo members added)" in first.output
    again = runner.invoke(args=["demo", "--people", "80"])
    assert "(4 purposes, 0 demo members added)" in again.output
    with app.app_context():
        from consentsvc import ledger, staff
        from consentsvc.models import Library, Subject

        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        people = db.session.scalars(select(Subject).where(Subject.library_id == borne.id)).all()
        assert len(people) == 82 and len({p.email for p in people}) == 82
        assert len(staff.search(db.session, borne, people[0].card_number[:8])) == 20
        assert ledger.verify(db.session) == []
        statuses = {
            (state.purpose.code, state.status)
            for person in people
            for state in ledger.state_of(db.session, person)
        }
        assert {("newsletter", "granted"), ("newsletter", "withdrawn")} <= statuses
        assert {("direct_marketing", "objected"), ("direct_debit", "granted")} <= statuses


def test_subject_export_of_an_unknown_person(runner):
    result = runner.invoke(args=["subject", "export", "nobody@example.nl", "--library", "borne"])
    assert result.exit_code == 1
    assert "no such person" in result.output
    result = runner.invoke(args=["subject", "export", "a@example.nl", "--library", "atlantis"])
    assert "no library 'atlantis'" in result.output


def test_ledger_verify_finds_a_state_that_disagrees(app, runner, client):
    from .conftest import signup, work_outbox

    signup(client, "jan@example.nl")
    work_outbox(app)
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0
    with app.app_context():
        db.session.execute(text("UPDATE consent_state SET status = 'granted'"))
        db.session.commit()
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert "state granted but last event requested" in result.output


def test_translations_are_complete_and_current():
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
    method_map = [
        ("**.py", "python"),
        ("**/templates/**.html", "jinja2"),
        ("**/templates/**.txt", "jinja2"),
    ]
    in_code = {
        message[2]
        for message in extract_from_dir(ROOT / "consentsvc", method_map, keywords=keywords)
    }
    for language in ("nl", "en"):
        path = ROOT / "consentsvc" / "translations" / language / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as po:
            catalogue = read_po(po)
        ids = {m.id for m in catalogue if m.id}
        assert in_code - ids == set(), f"{language}: not in the catalogue, run make messages"
        assert ids - in_code == set(), f"{language}: no longer used, run make messages"
        empty = [
            m.id
            for m in catalogue
            if m.id and not all(m.string if isinstance(m.string, tuple) else [m.string])
        ]
        assert empty == [] and not [m.id for m in catalogue if m.fuzzy], language


def test_healthz_and_theme(client):
    assert json.loads(client.get("/healthz").data) == {"status": "ok"}
    css = client.get("/borne/theme.css")
    assert css.mimetype == "text/css"
    assert css.get_data(as_text=True) == ":root { --brand: #00666e; }\n"


def test_library_create(app, runner, client):
    result = runner.invoke(
        args=[
            "library",
            "create",
            "delft",
            "--name",
            "DOK Delft",
            "--origin",
            "https://www.dok.example",
        ]
    )
    assert result.exit_code == 0, result.output
    page = client.get("/delft/signup").get_data(as_text=True)
    assert "Ja, stuur mij de nieuwsbrief van DOK Delft" in page
    for bad in (["confirm", "--name", "x"], ["Delft!", "--name", "x"]):
        assert runner.invoke(args=["library", "create", *bad]).exit_code == 1
    bad_origin = ["library", "create", "gouda", "--name", "G", "--origin", "https://x.nl/page"]
    assert "not an origin" in runner.invoke(args=bad_origin).output


def test_a_library_adds_its_own_purpose(app, runner, client):
    args = [
        "purpose", "create", "events", "--library", "borne",
        "--title-nl", "Activiteiten", "--text-nl", "Ja, mail mij over lezingen.",
        "--title-en", "Events", "--text-en", "Yes, mail me about talks.",
    ]  # fmt: skip
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "events [nl] version 1" in result.output
    assert 'name="purpose" value="events"' in client.get("/borne/signup").get_data(as_text=True)
    assert "Ja, mail mij over lezingen." in client.get("/borne/signup").get_data(as_text=True)
    assert 'value="events"' not in client.get("/zoetermeer/signup").get_data(as_text=True)
    reworded = [*args[:-1], "Yes, mail me about talks and readings."]
    assert "events [en] version 2" in runner.invoke(args=reworded).output
    assert runner.invoke(args=["purpose", "create", "Bad Code", *args[3:]]).exit_code == 1
