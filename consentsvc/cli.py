"""The consentsvc command: Flask's own (run, db, shell) plus the service's."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask
from flask.cli import AppGroup, FlaskGroup, with_appcontext
from sqlalchemy import select

from . import ledger
from .extensions import db
from .models import Library


def _create_app() -> Flask:
    from . import create_app

    return create_app()


main = FlaskGroup(create_app=_create_app, help="Consent and newsletter preferences.")


def register(app: Flask) -> None:
    app.cli.add_command(demo)
    app.cli.add_command(subject)
    app.cli.add_command(ledger_group)


@click.command()
@with_appcontext
def demo() -> None:
    """Seed two demo libraries with the four purposes and their wording."""
    from .demo import seed

    for library in seed(db.session):
        click.echo(f"{library.slug}: {library.name} ({len(library.purposes)} purposes)")
    db.session.commit()


subject = AppGroup("subject", help="Look at one person's data.")


@subject.command("export")
@click.argument("email")
@click.option("--library", "slug", required=True, help="The library's slug, e.g. borne.")
def subject_export(email: str, slug: str) -> None:
    """Print everything held about one person as JSON."""
    library = db.session.scalar(select(Library).where(Library.slug == slug))
    if library is None:
        raise click.ClickException(f"no library {slug!r}")
    person = ledger.find_subject(db.session, library, email)
    if person is None:
        raise click.ClickException("no such person in this library")
    click.echo(json.dumps(ledger.export(db.session, person), indent=2, ensure_ascii=False))


ledger_group = AppGroup("ledger", help="Check the consent ledger.")


@ledger_group.command("verify")
def ledger_verify() -> None:
    """Check that every current state equals the fold of its events."""
    problems = ledger.verify(db.session)
    for subject_id, purpose_id, what in problems:
        click.echo(f"subject {subject_id}, purpose {purpose_id}: {what}", err=True)
    if problems:
        sys.exit(1)
    click.echo("ledger ok: every state equals the fold of its events")
