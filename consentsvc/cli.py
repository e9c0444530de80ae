"""The consentsvc command: Flask's own (run, db, shell) plus the service's."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sys
import threading
from zoneinfo import ZoneInfo

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from . import (
    anchors,
    clients,
    heartbeat,
    intake,
    ledger,
    libraries,
    mailer,
    metrics,
    outbox,
    retention,
    staff,
)
from .cli_ledger import library_or_fail
from .database import reading_only
from .extensions import db
from .models import (
    ApiClient,
    LegalBasis,
    Library,
    StaffRole,
    StaffUser,
    WebhookEndpoint,
    utcnow,
)


def _create_app() -> Flask:
    from . import create_app

    return create_app()


main = FlaskGroup(create_app=_create_app, help="Consent and newsletter preferences.")


def _add_check_config() -> None:
    # On the group itself, not on the app's commands: it must run when the app cannot start.
    from .check_config import check_config

    main.add_command(check_config)


_add_check_config()


def register(app: Flask) -> None:
    app.cli.add_command(worker)
    app.cli.add_command(staff_group)
    app.cli.add_command(clients_group)
    app.cli.add_command(webhooks_group)
    app.cli.add_command(library_group)
    app.cli.add_command(purpose_group)
    app.cli.add_command(subject)
    app.cli.add_command(membership_group)
    app.cli.add_command(retention_group)
    # Importing an old subscriber list lives in its own module.
    from .cli_import import import_group

    app.cli.add_command(import_group)
    # Checking a signed receipt, also offline.
    from .cli_receipt import receipt_group

    app.cli.add_command(receipt_group)
    # Verifying the hash chains, and their signed heads.
    from .cli_ledger import ledger_group

    app.cli.add_command(ledger_group)
    # Demo data, the demo's console login and its sample newsletter.
    from .cli_demo import demo_group

    app.cli.add_command(demo_group)


def deliver_once(limit: int = 50) -> outbox.Report:
    """Deliver what is due in the outbox now (webhooks, the service's own mails, and the
    signups and link requests waiting to be decided)."""
    config = current_app.config
    report = outbox.deliver_due(
        db.session,
        send_mail=mailer.send_queued,
        decide=intake.decide,
        allowed_networks=config["WEBHOOK_ALLOWED_NETWORKS"],
        allow_http=config["WEBHOOK_ALLOW_HTTP"],
        limit=limit,
    )
    metrics.count_deliveries(report.outcomes)
    return report


def _anchor_daily() -> None:
    """Today's signed head statement of every library (anchors.py), once a day between all
    workers; each goes to the library's privacy officer."""
    config = current_app.config
    zone = ZoneInfo(config["BABEL_DEFAULT_TIMEZONE"])
    now = utcnow()
    if config.get("_ANCHORED_ON") == now.astimezone(zone).date():
        return
    for anchor in anchors.anchor_daily(db.session, now, zone):
        click.echo(
            f"ledger head of library {anchor.library_id} anchored: consent chain "
            f"{anchor.consent_length} rows, audit chain {anchor.audit_length} rows"
        )
    db.session.commit()
    db.session.remove()
    # Remembered in the process only to save a query a second; the database decides.
    config["_ANCHORED_ON"] = now.astimezone(zone).date()


@click.group("worker", cls=AppGroup, invoke_without_command=True)
@click.option("--once", is_flag=True, help="Deliver what is due now, then stop.")
@click.option("--batch", default=50, show_default=True, help="Messages claimed at a time.")
@click.pass_context
@with_appcontext
def worker(context: click.Context, once: bool, batch: int) -> None:
    """Deliver webhooks and mails from the outbox, retrying with backoff."""
    if context.invoked_subcommand is not None:
        return
    interval = current_app.config["WORKER_INTERVAL"]
    heart = heartbeat.Heart()
    stop = threading.Event()
    # SIGTERM (docker stop, systemd, make run) and Ctrl-C end the worker after the batch in
    # hand, so its heartbeat goes with it and no delivery is cut off half-way.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGTERM, signal.SIGINT):
            previous[number] = signal.signal(number, lambda *_: stop.set())
    try:
        while not stop.is_set():
            heart.beat(db.session)
            _retention_daily()
            _anchor_daily()
            report = deliver_once(batch)
            db.session.remove()
            if report.handled:
                click.echo(
                    f"outbox: {report.delivered} delivered, {report.retried} to retry, "
                    f"{report.dead} given up, {report.decided} signups and link requests decided"
                )
            if once and report.handled < batch:
                return
            if report.handled < batch:
                stop.wait(interval)
    finally:
        # A clean stop (a signal, or --once done): say so, unless the database stopped it.
        with contextlib.suppress(SQLAlchemyError):
            db.session.rollback()
            heart.stop(db.session)
        for number, handler in previous.items():
            signal.signal(number, handler)


@worker.command("status")
def worker_status() -> None:
    """The workers seen in the last day, and what waits in the outbox."""
    now = utcnow()
    with reading_only():
        seen = heartbeat.workers(db.session)
        waiting = outbox.backlog(db.session, now)
    for beat in seen:
        ago = int((now - beat.seen_at).total_seconds())
        since = f"{beat.started_at:%Y-%m-%d %H:%M} UTC"
        click.echo(f"worker {beat.name}: seen {ago} s ago, running since {since}")
    if not seen:
        click.echo("no worker seen in the last day: nobody gets signed up or mailed")
    click.echo(
        f"outbox: {waiting.due} due (oldest waiting {int(waiting.oldest_due_seconds)} s), "
        f"{waiting.waiting} to retry later, {waiting.given_up} given up"
    )


def _retention_daily() -> None:
    """Today's retention run, if it is time and no worker (on any host) did it yet."""
    config = current_app.config
    zone = ZoneInfo(config["BABEL_DEFAULT_TIMEZONE"])
    day = retention.daily_due_on(utcnow(), config["RETENTION_AT"], zone)
    if day is None or config.get("_RETENTION_DONE_ON") == day:
        return
    for report in retention.run_daily(
        db.session, at=config["RETENTION_AT"], zone=zone,
        suppression_key=config["SUPPRESSION_KEY"],
    ):  # fmt: skip
        click.echo(f"retention {report.library}: " + _counts_line(report.counts, report.busy))
        metrics.count_retention(report.counts)
    db.session.remove()
    # Remembered in the process only to save a query a second; the database decides.
    config["_RETENTION_DONE_ON"] = day


library_group = AppGroup("library", help="Set up a library.")


@library_group.command("create")
@click.argument("slug")
@click.option("--name", required=True, help='Shown on every page, e.g. "Bibliotheek Borne".')
@click.option("--colour", default="#1f4e79", show_default=True, help="Brand colour, #rrggbb.")
@click.option(
    "--origin",
    "origins",
    multiple=True,
    help="A website origin (https://www.example.nl) whose signup form may post here.",
)
def library_create(slug: str, name: str, colour: str, origins: tuple[str, ...]) -> None:
    """Create a library with the four standard purposes and their Dutch and English wording."""
    from .demo import setup_library

    try:
        slug = libraries.check_slug(db.session, slug)
        colour = libraries.check_colour(colour)
        origins = tuple(libraries.check_origin(o) for o in origins)
    except libraries.SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    library = setup_library(db.session, slug, name, colour=colour, origins=list(origins))
    db.session.commit()
    click.echo(f"{library.slug}: {library.name}, signup page at /{library.slug}/signup")


purpose_group = AppGroup("purpose", help="Add a library's own purposes and their wording.")


@purpose_group.command("create")
@click.argument("code")
@click.option("--library", "slug", required=True, help="The library's slug, e.g. borne.")
@click.option(
    "--basis",
    type=click.Choice(LegalBasis.ALL),
    default=LegalBasis.CONSENT,
    show_default=True,
    help="Legal basis; legitimate_interest keeps an absolute right to object.",
)
@click.option("--no-double-opt-in", is_flag=True, help="Grant at signup, without a mail.")
@click.option("--desk-only", is_flag=True, help="Members may not switch it on themselves.")
@click.option("--title-nl", required=True)
@click.option("--text-nl", required=True, help="The Dutch wording shown next to the box.")
@click.option("--title-en", required=True)
@click.option("--text-en", required=True, help="The English wording.")
def purpose_create(
    code: str,
    slug: str,
    basis: str,
    no_double_opt_in: bool,
    desk_only: bool,
    title_nl: str,
    text_nl: str,
    title_en: str,
    text_en: str,
) -> None:
    """Add a purpose, or a new version of its wording if it exists."""
    library = library_or_fail(slug)
    if not re.match(r"^[a-z][a-z0-9_]{1,39}$", code):
        raise click.ClickException("a code is 2-40 lower-case letters, digits or underscores")
    purpose = ledger.add_purpose(
        db.session, library, code,
        legal_basis=basis, double_opt_in=not no_double_opt_in, self_service=not desk_only,
    )  # fmt: skip
    for language, title, body in (("nl", title_nl, text_nl), ("en", title_en, text_en)):
        text = ledger.add_text(db.session, purpose, language, title, body)
        click.echo(f"{code} [{language}] version {text.version} sha256 {text.sha256[:12]}")
    db.session.commit()


clients_group = AppGroup("clients", help="API keys for mailing processors and websites.")


@clients_group.command("create")
@click.option("--library", "slug", required=True, help="The library's slug, e.g. borne.")
@click.option("--name", required=True, help="Who uses the key, e.g. Laposta.")
@click.option("--purposes", default="", help="Comma-separated, e.g. newsletter,acquisitions.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(clients.SCOPES),
    help="What else the key may do: membership (the library system reports memberships).",
)
def clients_create(slug: str, name: str, purposes: str, scopes: tuple[str, ...]) -> None:
    """Make a key; it is shown once and only its hash is kept."""
    library = library_or_fail(slug)
    codes = [c.strip() for c in purposes.split(",") if c.strip()]
    if not codes and not scopes:
        raise click.ClickException("give --purposes, --scope or both")
    try:
        client, key = clients.create(db.session, library, name, codes, scopes)
    except ledger.UnknownPurpose as exc:
        raise click.ClickException(f"no purpose {exc} in {slug}") from None
    db.session.commit()
    click.echo(
        f"client {client.id} ({client.name}) for {slug}: "
        + ", ".join([*client.purposes, *(f"scope {s}" for s in client.scopes)])
    )
    click.echo(f"key (shown only now): {key}")


@clients_group.command("list")
@click.option("--library", "slug", help="Only this library.")
def clients_list(slug: str | None) -> None:
    """Show the keys: id, library, name, purposes, state."""
    query = select(ApiClient).order_by(ApiClient.id)
    if slug:
        query = query.where(ApiClient.library_id == library_or_fail(slug).id)
    for client in db.session.scalars(query):
        state = f"revoked {client.revoked_at:%Y-%m-%d}" if client.revoked_at else "active"
        used = (
            f"last used {client.last_used_at:%Y-%m-%d %H:%M}"
            if client.last_used_at
            else "never used"
        )
        click.echo(
            f"{client.id}\t{client.library.slug}\t{client.name}\t{client.key_prefix}…\t"
            f"{','.join(client.purposes)}\t{state}, {used}"
        )


@clients_group.command("revoke")
@click.argument("client_id", type=int)
def clients_revoke(client_id: int) -> None:
    """Stop a key from working, at once."""
    client = db.session.get(ApiClient, client_id)
    if client is None:
        raise click.ClickException(f"no client {client_id}")
    clients.revoke(db.session, client)
    db.session.commit()
    click.echo(f"client {client_id} ({client.name}) revoked")


webhooks_group = AppGroup("webhooks", help="Where to send signed webhooks about changes.")


@webhooks_group.command("add")
@click.option("--library", "slug", required=True)
@click.option("--url", required=True, help="https://… of the receiver.")
@click.option(
    "--events",
    default=",".join(outbox.EVENT_TYPES),
    show_default=True,
    help="Comma-separated event types.",
)
def webhooks_add(slug: str, url: str, events: str) -> None:
    """Register an endpoint; prints its whsec_ secret once."""
    library = library_or_fail(slug)
    config = current_app.config
    try:
        endpoint = outbox.add_endpoint(
            db.session, library.id, url, [e.strip() for e in events.split(",") if e.strip()],
            allow_http=config["WEBHOOK_ALLOW_HTTP"],
            allowed_networks=config["WEBHOOK_ALLOWED_NETWORKS"],
        )  # fmt: skip
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"endpoint {endpoint.id} for {slug}: {', '.join(endpoint.events)}")
    click.echo(f"secret (shown only now): {endpoint.secret}")


@webhooks_group.command("list")
def webhooks_list() -> None:
    """Show endpoints with their state and how many messages wait or failed."""
    for endpoint in db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)):
        counts = outbox.endpoint_counts(db.session, endpoint.id)
        state = "active" if endpoint.active else f"disabled ({endpoint.disabled_reason})"
        click.echo(
            f"{endpoint.id}\t{endpoint.library.slug}\t{endpoint.url}\t{state}\t"
            f"waiting {counts['waiting']}, delivered {counts['delivered']}, failed {counts['dead']}"
        )


@webhooks_group.command("remove")
@click.argument("endpoint_id", type=int)
def webhooks_remove(endpoint_id: int) -> None:
    """Stop sending to an endpoint (its history stays)."""
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise click.ClickException(f"no endpoint {endpoint_id}")
    endpoint.active = False
    endpoint.disabled_reason = "removed"
    db.session.commit()
    click.echo(f"endpoint {endpoint_id} removed")


staff_group = AppGroup("staff", help="Staff accounts for the console at /admin.")


@staff_group.command("create")
@click.option("--library", "slug", required=True, help="The home library's slug.")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(StaffRole.ALL), required=True)
@click.option("--also", "also", multiple=True, help="Admins only: another library they look after.")
@click.option("--password", help="At least 12 characters; asked for when not given.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of input."
)
def staff_create(
    slug: str,
    email: str,
    name: str,
    role: str,
    also: tuple[str, ...],
    password: str | None,
    password_stdin: bool,
) -> None:
    """Create a staff account (the first one; the rest can follow from the console).

    Also the way to a library's first privacy officer: in the console only a privacy
    officer gives that role.
    """
    library = library_or_fail(slug)
    password = _new_password(password, from_stdin=password_stdin)
    try:
        user = staff.create(db.session, library, email, name, role, password)
        for other in also:
            staff.add_library(user, library_or_fail(other))
    except staff.StaffError as exc:
        raise click.ClickException(str(exc)) from None
    # No one logged in did this: the new account itself stands in the audit log for it.
    db.session.flush()
    staff.audit(db.session, user, "staff.add", detail=f"staff {user.id} {role}, command line")
    db.session.commit()
    where = ", ".join(lib.slug for lib in user.libraries)
    click.echo(f"staff {user.id}: {user.name} ({user.role}) for {where}; log in at /admin/login")


def _new_password(given: str | None, *, from_stdin: bool) -> str:
    """From the option, the first line of standard input, or asked twice at a terminal."""
    if from_stdin:
        if given is not None:
            raise click.UsageError("give --password or --password-stdin, not both")
        return sys.stdin.readline().rstrip("\r\n")
    if given is not None:
        return given
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask for the password: use --password-stdin")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@staff_group.command("reset-code")
@click.option("--email", required=True)
def staff_reset_code(email: str) -> None:
    """Switch off someone's login code (lost phone); they log in with the password alone."""
    user = db.session.scalar(
        select(StaffUser).where(StaffUser.email == ledger.normalise_email(email))
    )
    if user is None:
        raise click.ClickException("no staff member with this address")
    user.totp_secret = None
    user.totp_last_step = None
    db.session.commit()
    click.echo(f"staff {user.id}: login code switched off; they can set up a new one")


subject = AppGroup("subject", help="Look at one person's data.")


@subject.command("export")
@click.argument("email")
@click.option("--library", "slug", required=True, help="The library's slug, e.g. borne.")
def subject_export(email: str, slug: str) -> None:
    """Print everything held about one person as JSON."""
    with reading_only():
        library = library_or_fail(slug)
        person = ledger.find_subject(db.session, library, email)
        if person is None:
            raise click.ClickException("no such person in this library")
        data = ledger.export(
            db.session, person, suppression_key=current_app.config["SUPPRESSION_KEY"]
        )
        db.session.rollback()
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


membership_group = AppGroup("membership", help="Memberships from the library system.")


@membership_group.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--library", "slug", required=True, help="The library's slug, e.g. borne.")
@click.option("--dry-run", is_flag=True, help="Check the file and count; store nothing.")
@click.option("--batch", default=500, show_default=True, help="Rows per transaction.")
def membership_import(file: click.utils.LazyFile, slug: str, dry_run: bool, batch: int) -> None:
    """Read the library system's export (header row: email, card_number, start, end;
    semicolons or commas; dates YYYY-MM-DD or DD-MM-YYYY) and record each membership.

    Running the same file again changes nothing. Every refused row is listed with its line
    number and reason; no address is printed.
    """
    from . import membership_file

    library = library_or_fail(slug)
    try:
        parsed = membership_file.parse(file.read())
    except membership_file.FileRefused as exc:
        raise click.ClickException(f"{file.name}: {exc}") from None
    key = current_app.config["SUPPRESSION_KEY"]
    counts = dict.fromkeys(
        (ledger.Outcome.CREATED, ledger.Outcome.UPDATED, ledger.Outcome.UNCHANGED), 0
    )
    refused = list(parsed.refused)
    batches = [
        parsed.rows[i : i + max(1, batch)] for i in range(0, len(parsed.rows), max(1, batch))
    ]
    with click.progressbar(
        batches, label="memberships", hidden=dry_run, item_show_func=lambda _b: None
    ) as bar:
        for rows in bar:
            results = ledger.record_memberships(
                db.session, library, [(row.email, row.membership) for row in rows],
                suppression_key=key, dry_run=dry_run,
            )  # fmt: skip
            for row, result in zip(rows, results, strict=True):
                if isinstance(result, ledger.MembershipRefused):
                    refused.append(membership_file.Refusal(row.line, f"{result.field}: {result}"))
                else:
                    counts[result] += 1
            # One short transaction per batch: a nightly file never holds the write lock long.
            if dry_run:
                db.session.rollback()
            else:
                db.session.commit()
    refused.sort(key=lambda r: r.line)
    for refusal in refused:
        click.echo(f"line {refusal.line}: {refusal.reason}", err=True)
    would = "would be " if dry_run else ""
    click.echo(
        f"{slug}: {len(parsed.rows) + len(parsed.refused)} rows; "
        f"{counts[ledger.Outcome.CREATED]} new people {would}added, "
        f"{counts[ledger.Outcome.UPDATED]} memberships {would}changed, "
        f"{counts[ledger.Outcome.UNCHANGED]} unchanged, {len(refused)} refused"
        + (" (dry run: nothing stored)" if dry_run else "")
    )


retention_group = AppGroup("retention", help="Keep nothing longer than the library's settings say.")


@retention_group.command("run")
@click.option("--library", "slug", help="Only this library (its slug).")
@click.option(
    "--dry-run", is_flag=True, help="Only print what is due, per category; change nothing."
)
@click.option("--batch", default=500, show_default=True, help="People or rows per transaction.")
def retention_run(slug: str | None, dry_run: bool, batch: int) -> None:
    """Erase, anonymise and remove what the library keeps no longer (docs/retention.md)."""
    chosen = [library_or_fail(slug)] if slug else list(db.session.scalars(
        select(Library).order_by(Library.slug)
    ))  # fmt: skip
    for library in chosen:
        with reading_only():
            due = retention.due(db.session, library)
            db.session.rollback()
        if dry_run:
            click.echo(f"{library.slug}: due now (dry run, nothing changed)")
            periods = libraries.retention_of(library)
            for category, number in due.items():
                kept = periods[category]
                unit = libraries.RETENTION_UNITS[category].removesuffix("s" if kept == 1 else "")
                click.echo(f"  {category:<26} {number:>7}   kept "
                           + (f"{kept} {unit}" if kept else "without maximum"))  # fmt: skip
            continue
        with click.progressbar(length=max(sum(due.values()), 1), label=library.slug) as bar:
            report = retention.run_library(
                db.session, library, batch=batch, progress=bar.update,
                suppression_key=current_app.config["SUPPRESSION_KEY"],
            )  # fmt: skip
        click.echo(f"{report.library}: " + _counts_line(report.counts, report.busy))
        if not dry_run:
            metrics.count_retention(report.counts)


def _counts_line(counts: dict[str, int], busy: bool) -> str:
    if busy:
        return "skipped: another retention run is busy with this library"
    done = [f"{category} {number}" for category, number in counts.items() if number]
    return ", ".join(done) if done else "nothing was due"
