"""`consentsvc receipt verify FILE`: check a signed receipt (or ledger head) offline.

With --keys, the JWK Set comes from a file and no database is touched; without it, the
service's own published keys are used. Exit 0: valid; 1: invalid, with the reason;
2: the file (or the key file) could not be read as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup

from . import signing
from .database import reading_only
from .extensions import db

# A receipt is a few kilobytes; a key set of many rotations too. Anything far larger is
# not one, and is not read whole into memory.
MAX_FILE_BYTES = 1024 * 1024

VALID, INVALID, UNREADABLE = 0, 1, 2

receipt_group = AppGroup("receipt", help="Signed consent receipts.")


class Unreadable(Exception):
    """A file that is not there, too large, not UTF-8 or not JSON."""


def read_json(path: Path) -> Any:
    """The JSON in a file, at most MAX_FILE_BYTES; Unreadable with a reason otherwise."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise Unreadable(error.strerror or str(error)) from None
    if len(data) > MAX_FILE_BYTES:
        raise Unreadable(f"larger than {MAX_FILE_BYTES // 1024} KiB: not a receipt")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise Unreadable("not UTF-8 text") from None
    except (ValueError, RecursionError) as error:
        raise Unreadable(f"not JSON ({str(error)[:80]})") from None


@receipt_group.command("verify")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--keys",
    "keys_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A JWK Set (as served at /.well-known/consent-receipt-key); no database needed.",
)
def verify(file: Path, keys_file: Path | None) -> None:
    """Check the signature of a receipt FILE against the published keys."""
    try:
        document = read_json(file)
    except Unreadable as error:
        click.echo(f"cannot read {file}: {error}", err=True)
        sys.exit(UNREADABLE)
    if keys_file is not None:
        try:
            keys = read_json(keys_file)
        except Unreadable as error:
            click.echo(f"cannot read key set {keys_file}: {error}", err=True)
            sys.exit(UNREADABLE)
    else:
        with reading_only():
            keys = signing.published_keys(db.session)
            db.session.rollback()
    try:
        payload = signing.verify(document, keys)
    except signing.BadSignature as error:
        click.echo(f"INVALID: {error.detail} ({error.reason})", err=True)
        sys.exit(INVALID)
    click.echo(f"valid: signed with key {document['signature']['kid']}")
    for line in describe(payload):
        click.echo(f"  {line}")


def describe(payload: dict[str, Any]) -> list[str]:
    """A few lines saying what a receipt is about (nothing for other signed documents)."""
    lines = []
    if isinstance(payload.get("receipt_id"), str):
        lines.append(f"receipt {payload['receipt_id']}")
    event, purpose = payload.get("event"), payload.get("purpose")
    if isinstance(event, dict) and isinstance(purpose, dict):
        lines.append(
            f"{event.get('action')} {purpose.get('code')} at {event.get('time')}"
            f" via {event.get('channel')}"
        )
    controller, chain = payload.get("controller"), payload.get("chain")
    if isinstance(controller, dict) and isinstance(chain, dict):
        lines.append(
            f"{controller.get('name')}: event {chain.get('seq')} of chain"
            f" {chain.get('library')}, hash {chain.get('event_hash')}"
        )
    return lines
