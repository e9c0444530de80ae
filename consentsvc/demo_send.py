"""A sample newsletter, sent the way a mailing processor sends one (`consentsvc demo send`).

It asks the consent check who may get the purpose, and gives each mail the headers the
check hands a processor: List-Unsubscribe with the signed one-click link,
List-Unsubscribe-Post and List-Id. Without an SMTP server the mails land in the mail
folder, so someone trying the service can open one and unsubscribe as a member would.
Demo data only: the command refuses in production.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import ledger, mailer, tokens
from .models import Library, Subject

# The consent check's own limit per call; a processor splits a longer list the same way.
BATCH = ledger.MAX_RECIPIENTS


@dataclass(frozen=True)
class SampleSend:
    checked: int
    sent: int
    # Why the others got nothing: the check's reasons ("withdrawn", "not_asked", …).
    skipped: dict[str, int]


def send_sample(session: Session, library: Library, purpose_code: str) -> SampleSend:
    """Check every person of the library for this mail purpose, then mail those allowed."""
    purpose = ledger.purpose_by_code(library, purpose_code)
    if not purpose.is_mail:
        raise ledger.LedgerError(f"{purpose_code} is not a kind of mail")
    people = {
        p.email: p
        for p in session.scalars(
            select(Subject).where(Subject.library_id == library.id, Subject.erased_at.is_(None))
        )
    }
    addresses = list(people)
    sent, skipped = 0, Counter[str]()
    for start in range(0, len(addresses), BATCH):
        decisions = ledger.check_many(
            session, library, purpose_code, addresses[start : start + BATCH],
            suppression_key=current_app.config["SUPPRESSION_KEY"],
        )  # fmt: skip
        for decision in decisions:
            if not decision.allowed:
                skipped[decision.reason] += 1
                continue
            person = people[decision.email]
            unsubscribe = mailer.absolute_url(
                "public.unsubscribe", token=tokens.make_unsubscribe(person.id, purpose.id)
            )
            preferences = mailer.absolute_url(
                "public.preferences", token=tokens.make_preferences(person.id)
            )
            mailer.send(mailer.sample_newsletter(person, purpose, unsubscribe, preferences))
            sent += 1
    return SampleSend(len(addresses), sent, dict(skipped))
