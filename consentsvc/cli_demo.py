"""`consentsvc demo`: two demo libraries (and members) with one console login, and
`consentsvc demo send`: a sample newsletter with the headers a processor puts in it.

Both refuse in production (config.is_production): demo data and a printed password
belong on a machine where someone tries the service out.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from . import config, ledger
from .cli_ledger import library_or_fail
from .extensions import db


def _not_in_production() -> None:
    if config.is_production(current_app):
        raise click.ClickException(
            "demo data is for trying the service out; CONSENTSVC_BASE_URL points elsewhere"
        )


@click.group("demo", cls=AppGroup, invoke_without_command=True)
@click.option(
    "--people", default=0, show_default=True, help="Also add this many demo members to each."
)
@click.pass_context
@with_appcontext
def demo_group(context: click.Context, people: int) -> None:
    """Seed two demo libraries with the four purposes and their wording (and demo members),
    and print a console login for them."""
    if context.invoked_subcommand is not None:
        return
    _not_in_production()
    from .demo import DEMO_LOGIN, demo_login, seed, seed_people, seed_statements

    seeded = seed(db.session)
    for library in seeded:
        added = seed_people(db.session, library, people) if people else 0
        # After the people, so that Borne's newest version is announced to its subscribers.
        seed_statements(
            db.session, library, per_minute=current_app.config["STATEMENT_NOTICE_PER_MINUTE"]
        )
        click.echo(
            f"{library.slug}: {library.name} ({len(library.purposes)} purposes"
            + (f", {added} demo members added" if people else "")
            + ")"
        )
    password = demo_login(db.session, seeded)
    db.session.commit()
    base = current_app.config["BASE_URL"]
    click.echo(f"console: {base}/admin/login as {DEMO_LOGIN}, password {password}")
    click.echo("a sample newsletter to unsubscribe from: consentsvc demo send --library borne")


@demo_group.command("send")
@click.option("--library", "slug", required=True, help="The demo library's slug.")
@click.option("--purpose", default="newsletter", show_default=True, help="Which mail.")
def demo_send(slug: str, purpose: str) -> None:
    """Send a sample newsletter as a processor would: the consent check first, then one
    mail per allowed person with List-Unsubscribe (into the mail folder without SMTP)."""
    _not_in_production()
    from .demo_send import send_sample

    library = library_or_fail(slug)
    try:
        result = send_sample(db.session, library, purpose)
    except ledger.LedgerError as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(result.skipped.items()))
    click.echo(
        f"{library.slug}: checked {result.checked}, sent {result.sent}"
        + (f"; not sent: {reasons}" if reasons else "")
    )
