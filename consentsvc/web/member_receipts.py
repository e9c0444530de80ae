"""The member's receipts: a page in their words and the signed file to keep.

Reached from the history page and the confirmation page, with the member's preference
link like every page of theirs. A receipt id of another person, or none at all, is 404.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from flask import abort, current_app, render_template, url_for
from werkzeug.wrappers import Response

from .. import receipts
from ..extensions import db
from ..models import ConsentEvent, Subject
from .labels import purpose_title
from .public import _preference_subject, bp


def _event(token: str, receipt: UUID) -> tuple[Subject, ConsentEvent]:
    subject = _preference_subject(token)
    event = receipts.find(db.session, subject, str(receipt))
    if event is None:
        abort(404)
    return subject, event


@bp.get("/preferences/<token>/receipts/<uuid:receipt>")
def receipt_page(token: str, receipt: UUID) -> str:
    """What the member agreed to or stopped, when and how, and the exact text."""
    subject, event = _event(token, receipt)
    document = receipts.receipt(db.session, event)
    db.session.commit()  # the signing key's first use publishes it
    payload = document["payload"]
    return render_template(
        "public/receipt.html",
        library=subject.library,
        event=event,
        receipt=payload,
        title=payload["notice"]["title"] if payload["notice"] else purpose_title(event.purpose),
        kid=document["signature"]["kid"],
        token=token,
        download_url=url_for(".receipt_download", token=token, receipt=receipt),
    )


@bp.get("/preferences/<token>/receipts/<uuid:receipt>/download")
def receipt_download(token: str, receipt: UUID) -> Response:
    """The signed receipt as a JSON file, the same bytes every time."""
    _subject, event = _event(token, receipt)
    document = receipts.receipt(db.session, event)
    db.session.commit()
    return receipt_file(document, receipt)


def receipt_file(document: dict[str, Any], receipt: UUID | str) -> Response:
    """A signed receipt as a download (also the console's, for an auditor)."""
    body = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    response = current_app.response_class(body, mimetype="application/json")
    filename = f"receipt-{receipt}.json"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
