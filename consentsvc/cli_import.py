"""`consentsvc import subscribers`: bring in a subscriber list from an old system, with a
dry run that reports every refused row, a progress bar, and resumption after a crash."""

from __future__ import annotations

import getpass
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from . import ledger, subscriber_file
from .extensions import db
from .models import Library

import_group = AppGroup("import", help="Bring in lists from an old system.")

# English, for the command line; the console shows them in the staff member's language.
REFUSALS = {
    subscriber_file.Refusal.INVALID_ADDRESS: "invalid address",
    subscriber_file.Refusal.DUPLICATE: "duplicate (the address is on an earlier line)",
    subscriber_file.Refusal.UNKNOWN_COLUMN: "unknown column (more values than the header)",
    subscriber_file.Refusal.DATE_UNREADABLE: "date unreadable",
    subscriber_file.Refusal.IP_UNREADABLE: "IP address unreadable",
    subscriber_file.Refusal.STATUS_UNREADABLE: "status unreadable",
    subscriber_file.Refusal.LANGUAGE_UNREADABLE: "language unreadable (nl or en)",
}
FILE_REFUSALS = {
    "empty": "the file is empty",
    "not_text": "the file is not text (save it as CSV, UTF-8)",
    "no_header": "the file has no header row",
    "no_email_column": "no column with e-mail addresses (Email Address, email)",
    "unknown_columns": "columns this format does not know",
    "unreadable": "a quote that never closes",
}
OUTCOMES = {
    ledger.ImportOutcome.GRANTED: "granted",
    ledger.ImportOutcome.RECONFIRM_REQUESTED: "asked to reconfirm",
    ledger.ImportOutcome.ALREADY_GRANTED: "already granted here",
    ledger.ImportOutcome.WITHDRAWN: "withdrawn (unsubscribed or cleaned on the list)",
    ledger.ImportOutcome.SUPPRESSED: "suppressed (unsubscribed or cleaned, not known here)",
    ledger.ImportOutcome.KEPT_STOPPED: "not granted: withdrawn, objected or suppressed here",
    ledger.ImportOutcome.ALREADY_STOPPED: "already stopped here",
    ledger.ImportOutcome.LEFT_ALONE: "left alone: restricted or erased here",
}


def file_refusal(exc: subscriber_file.FileRefused) -> str:
    text = FILE_REFUSALS.get(exc.code, exc.code)
    return f"{text}: {exc.detail}" if exc.detail else text


@import_group.command("subscribers")
@click.argument(
    "path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--library", "slug", required=True, help="The library's slug, e.g. borne.")
@click.option("--purpose", "purpose_code", required=True, help="e.g. newsletter.")
@click.option("--dry-run", is_flag=True, help="Report what would happen; store nothing.")
@click.option(
    "--reconfirm", is_flag=True, help="Ask everyone to agree again by mail instead of granting."
)
@click.option("--by", "by", default=None, help="Who runs it, for the evidence (default: login).")
def import_subscribers(
    path: Path, slug: str, purpose_code: str, dry_run: bool, reconfirm: bool, by: str | None
) -> None:
    """Import FILE: a Mailchimp audience export, a Laposta export, or a plain CSV with a
    header row of email[,optin_time,optin_ip,confirm_time,confirm_ip,status,language]
    (comma or semicolon; status subscribed, unsubscribed or cleaned). See docs/import.md."""
    library = db.session.scalar(select(Library).where(Library.slug == slug))
    if library is None:
        raise click.ClickException(f"no library {slug!r}")
    try:
        ledger.purpose_by_code(library, purpose_code)
    except ledger.UnknownPurpose:
        raise click.ClickException(f"no purpose {purpose_code!r} in {slug}") from None
    try:
        listed = subscriber_file.read(path.read_bytes(), path.name)
    except subscriber_file.FileRefused as exc:
        raise click.ClickException(f"{path.name}: {file_refusal(exc)}; nothing imported") from None
    key = current_app.config["SUPPRESSION_KEY"]
    click.echo(
        f"{path.name}: {listed.file_format} format, {listed.rows} rows, sha256 {listed.sha256}"
    )
    for row in listed.refused:
        click.echo(f"line {row.line}: refused, {REFUSALS[row.reason]}")
    if dry_run:
        report = ledger.preview_import(
            db.session, library, purpose_code, listed.people, suppression_key=key,
            reconfirm=reconfirm,
        )  # fmt: skip
        db.session.rollback()
        _counts(report, len(listed.refused))
        click.echo("dry run: nothing was stored")
        return
    actor = by or f"cli:{getpass.getuser()}"
    record = ledger.begin_import(
        db.session,
        library,
        purpose_code,
        listed.source,
        actor=actor,
        reconfirm=reconfirm,
        refused=len(listed.refused),
    )
    db.session.commit()
    if record.finished_at is None and record.last_line:
        click.echo(f"import {record.id}: going on after line {record.last_line}")
    todo = sum(1 for p in listed.people if p.line > record.last_line)
    with click.progressbar(length=todo, label=f"import {record.id}") as bar:

        def after_batch(rows: int) -> None:
            db.session.commit()
            bar.update(rows)

        report = ledger.run_import(
            db.session, record, listed.people, suppression_key=key, actor=actor,
            reconfirm_per_minute=current_app.config["IMPORT_RECONFIRM_PER_MINUTE"],
            after_batch=after_batch,
        )  # fmt: skip
        db.session.commit()
    if report.already_done:
        click.echo(f"import {record.id}: this file was imported before; nothing added")
    _counts(report, len(listed.refused))


def _counts(report: ledger.ImportReport, refused: int) -> None:
    for outcome in ledger.ImportOutcome.ALL:
        if report.counts[outcome]:
            click.echo(f"{report.counts[outcome]:>8}  {OUTCOMES[outcome]}")
    click.echo(f"{refused:>8}  refused (see the lines above)")
