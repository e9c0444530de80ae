"""Each worker's copy of what a consent check reads about a library's purposes.

A single-recipient check used to load the library, its purposes and their texts on every
request: three of its seven queries. The copy is kept per app (tests run many apps, each
on a database of its own) and per library, under the library's config_version, which every
change to the library, a purpose or a text raises (models._raise_config_version). The
version comes with the API key's own row (ApiClient.library_version), so a check knows
without another query whether its copy is current; when it is not, it reads them again.
A purpose retired in the console is therefore refused by the next check, in every worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy.orm import Session

from .. import ledger, mailer
from ..models import Library


@dataclass(frozen=True)
class CheckedPurpose:
    """One purpose as the check and its answer need it."""

    scope: ledger.CheckScope
    is_mail: bool
    list_id: str


def purposes_of(session: Session, library_id: int, version: int) -> dict[str, CheckedPurpose]:
    """The library's purposes by code, as of `version` or newer."""
    held: dict[int, tuple[int, dict[str, CheckedPurpose]]]
    held = current_app.extensions.setdefault("consentsvc.purposes", {})
    found = held.get(library_id)
    if found is not None and found[0] == version:
        return found[1]
    # Read after the version was: at worst this copy is newer than its version says, and
    # the next check reads it once more.
    library = session.get(Library, library_id)
    purposes = {
        p.code: CheckedPurpose(ledger.CheckScope.of(library, p), p.is_mail, mailer.list_id(p))
        for p in (library.purposes if library is not None else [])
    }
    held[library_id] = (version, purposes)
    return purposes
