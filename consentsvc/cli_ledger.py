"""`consentsvc ledger verify|head`: re-compute the hash chains, and sign their heads.

verify names the first broken row of each chain (edited, deleted, inserted, moved), says
when the database no longer refuses changes, checks every state against the fold of its
events, and with --against checks the chains against a head statement kept from earlier.
head prints the current heads as a signed statement (docs/proof.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select

from . import anchors, ledger, signing
from .cli_receipt import INVALID, UNREADABLE, Unreadable, read_json
from .database import reading_only
from .extensions import db
from .models import Library


def library_or_fail(slug: str) -> Library:
    """The library with this slug; a wrong one stops the command with its name."""
    library = db.session.scalar(select(Library).where(Library.slug == slug))
    if library is None:
        raise click.ClickException(f"no library {slug!r}")
    return library


ledger_group = AppGroup("ledger", help="Check the consent ledger.")


@ledger_group.command("verify")
@click.option("--library", "slug", help="Only this library's chains (default: every library).")
@click.option(
    "--against",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A head statement kept from earlier (a mail to the privacy officer, or "
    "/.well-known/consent-ledger/<library>): the chain must still run through it.",
)
def ledger_verify(slug: str | None, against: Path | None) -> None:
    """Re-compute every hash chain and check every state against the fold of its events.

    Names the first broken row of each chain; exits 1 when anything does not hold.
    """
    with reading_only():
        failed = False
        if against is not None:
            report = _against(against)
            slug = report.library
            failed = not report.holds
        libraries = _libraries(slug)
        for table in ledger.unguarded_tables(db.session):
            failed = True
            click.echo(
                f"the database no longer refuses changes to {table}: "
                "its triggers were dropped (docs/proof.md)",
                err=True,
            )
        for library in libraries:
            breaks, heads = ledger.verify_library(db.session, library)
            for broken in breaks:
                click.echo(str(broken), err=True)
            failed = failed or bool(breaks)
            broken_chains = {b.chain for b in breaks}
            parts = [
                f"{name} chain "
                + (
                    f"BROKEN, holds for its first {head.length} rows"
                    if name in broken_chains
                    else f"{head.length} rows, head {head.hash[:16]}"
                )
                for name, head in heads.items()
            ]
            click.echo(f"{library.slug}: " + "; ".join(parts))
        problems = ledger.verify(db.session)
        db.session.rollback()
    for subject_id, purpose_id, what in problems:
        click.echo(f"subject {subject_id}, purpose {purpose_id}: {what}", err=True)
    if problems or failed:
        sys.exit(1)
    click.echo("ledger ok: every chain holds and every state equals the fold of its events")


def _against(file: Path) -> anchors.AgainstReport:
    """Check the chains against a kept head statement, saying per chain what was found."""
    try:
        document = read_json(file)
    except Unreadable as error:
        click.echo(f"cannot read {file}: {error}", err=True)
        sys.exit(UNREADABLE)
    try:
        report = anchors.check_against(db.session, document)
    except signing.BadSignature as error:
        click.echo(f"{file}: INVALID signature: {error.detail} ({error.reason})", err=True)
        sys.exit(INVALID)
    except anchors.NotAStatement as error:
        click.echo(f"{file}: {error}", err=True)
        sys.exit(UNREADABLE)
    for check in report.checks:
        if check.holds:
            click.echo(
                f"{report.library} {check.chain} chain: row {check.length} still has the hash "
                f"stated on {report.issued_at}: nothing up to it was rewritten"
            )
        else:
            found = check.stored_hash[:16] if check.stored_hash else "no row"
            click.echo(
                f"{report.library} {check.chain} chain: row {check.length} has {found}, the "
                f"statement of {report.issued_at} says {check.stated_hash[:16]}: the chain "
                "was changed or re-computed after that statement",
                err=True,
            )
    return report


@ledger_group.command("head")
@click.option("--library", "slug", help="Only this library (default: every library).")
def ledger_head(slug: str | None) -> None:
    """Print each library's chain heads (length, hash, time) as a signed statement (JSON)."""
    statements = [anchors.statement(db.session, library) for library in _libraries(slug)]
    db.session.commit()  # the first signature by a key publishes it
    document = statements[0] if slug is not None else statements
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _libraries(slug: str | None) -> list[Library]:
    """The library named, or all of them; a wrong slug stops the command."""
    if slug is not None:
        return [library_or_fail(slug)]
    return list(db.session.scalars(select(Library).order_by(Library.slug)))
