"""The page a minor's parent or guardian reaches from their confirmation mail.

GET shows for whom and what, with a button; POST confirms (the guardian's confirmation is
the evidence, see ledger/minors.py). The link names the guardian's address by its
fingerprint: after staff record another guardian, an older link confirms nothing.
"""

from __future__ import annotations

from dataclasses import replace

from flask import render_template

from .. import ledger, tokens
from ..extensions import csrf, db
from ..models import Subject
from .labels import purpose_title
from .public import Stop, _bad_link, _proof, _subject_or_stop, bp


@bp.get("/guardian/confirm/<token>")
def guardian_confirm(token: str) -> str | tuple[str, int]:
    """Show whom the request is for and what it is; a GET changes nothing."""
    subject, request_ids = _guardian_link(token)
    waiting = ledger.still_pending(db.session, subject, request_ids)
    if not waiting:
        return _page(subject, "used")
    return render_template(
        "public/guardian_confirm.html", library=subject.library, member=subject.email,
        requests=waiting, token=token, state="ask",
    )  # fmt: skip


@bp.post("/guardian/confirm/<token>")
@csrf.exempt  # the signed token is the proof, as on the member's own confirmation
def guardian_confirm_post(token: str) -> str | tuple[str, int]:
    """Record the grant, with the guardian's confirmation as its evidence."""
    subject, request_ids = _guardian_link(token)
    assert subject.guardian_email is not None  # _guardian_link checked it
    proof = _proof()
    proof = replace(
        proof, details={**proof.details, **ledger.guardian_proof(subject.guardian_email)}
    )
    confirmed = ledger.confirm(db.session, subject, request_ids, proof, by_guardian=True)
    db.session.commit()
    if not confirmed:
        return _page(subject, "used")
    titles = [purpose_title(p) for p in subject.library.purposes if p.code in confirmed]
    return _page(subject, "done", titles=titles)


def _guardian_link(token: str) -> tuple[Subject, list[int]]:
    try:
        link, fingerprint = tokens.read_guardian_confirm(token)
    except tokens.ExpiredToken:
        link, _fingerprint = tokens.read_guardian_confirm(token, expired_ok=True)
        raise Stop((_page(_subject_or_stop(link.subject_id), "expired"), 410)) from None
    except tokens.InvalidToken:
        raise Stop(_bad_link()) from None
    subject = _subject_or_stop(link.subject_id)
    guardian = ledger.guardian_of(subject)
    if guardian is None or ledger.email_fingerprint(guardian) != fingerprint:
        # Another guardian now, or the person turned 16: this link is no longer theirs.
        raise Stop((_page(subject, "replaced"), 410))
    return subject, link.request_ids


def _page(subject: Subject, state: str, **context: object) -> str:
    return render_template(
        "public/guardian_confirm.html", library=subject.library, member=subject.email,
        state=state, **context,
    )  # fmt: skip
