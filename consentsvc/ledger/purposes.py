"""Purposes and the exact wording shown for them: which a library offers, which a member
may switch on alone, which version of a text a person saw, which purposes are retired, and
what legitimate interest means in a library."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy.orm import Session

from ..models import (
    ConsentText,
    LegalBasis,
    LegitimateInterest,
    Library,
    Purpose,
    Subject,
    local_today,
    utcnow,
)
from .errors import NotSelfService, PurposeRetired, UnknownPurpose
from .minors import is_minor

# Membership dates are the library system's calendar days, which are Dutch days.


def purpose_by_code(library: Library, code: str) -> Purpose:
    for purpose in library.purposes:
        if purpose.code == code:
            return purpose
    raise UnknownPurpose(code)


def current_text(purpose: Purpose, language: str) -> ConsentText | None:
    """The newest wording in the language, else in the library's default language."""
    for lang in (language, purpose.library.default_language):
        texts = [t for t in purpose.texts if t.language == lang]
        if texts:
            return max(texts, key=lambda t: t.version)
    return None


def add_purpose(
    session: Session,
    library: Library,
    code: str,
    *,
    legal_basis: str = LegalBasis.CONSENT,
    double_opt_in: bool = True,
    self_service: bool = True,
    is_mail: bool = True,
    retention_days_after_withdrawal: int | None = None,
    list_host: str = "lists.example.org",
) -> Purpose:
    """Give the library a purpose (or return the one it has with this code)."""
    existing = next((p for p in library.purposes if p.code == code), None)
    if existing is not None:
        return existing
    purpose = Purpose(
        library=library,
        code=code,
        legal_basis=legal_basis,
        double_opt_in=double_opt_in,
        self_service=self_service,
        is_mail=is_mail,
        retention_days_after_withdrawal=retention_days_after_withdrawal,
        list_id=f"{code.replace('_', '-')}.{library.slug}.{list_host}",
        position=len(library.purposes),
    )
    session.add(purpose)
    session.flush()
    return purpose


def add_text(
    session: Session, purpose: Purpose, language: str, title: str, body: str
) -> ConsentText:
    """Add a wording as the next version, or return the current one if it is unchanged."""
    digest = ConsentText.digest(title, body)
    existing = current_text(purpose, language)
    if existing is not None and existing.language == language and existing.sha256 == digest:
        return existing
    versions = [t.version for t in purpose.texts if t.language == language]
    text = ConsentText(
        purpose=purpose,
        language=language,
        version=max(versions, default=0) + 1,
        title=title,
        body=body,
        sha256=digest,
    )
    session.add(text)
    session.flush()
    return text


def signup_purposes(library: Library) -> list[Purpose]:
    """The purposes a person may sign up for themselves: consent-based, self-service and
    not retired."""
    return [
        p
        for p in library.purposes
        if p.self_service and p.legal_basis == LegalBasis.CONSENT and p.retired_at is None
    ]


def offered_purposes(library: Library) -> list[Purpose]:
    """The purposes the library still offers (every one that is not retired)."""
    return [p for p in library.purposes if p.retired_at is None]


def retire_purpose(purpose: Purpose, *, at: datetime | None = None) -> bool:
    """Stop offering a purpose for good: no signup, grant or check allows it any more.

    Its events, states and texts stay as they are (they are the proof of what was agreed,
    and when); returns False when it was already retired.
    """
    if purpose.retired_at is not None:
        return False
    purpose.retired_at = at or utcnow()
    return True


def ensure_offered(purpose: Purpose) -> None:
    """Refuse to start anything for a retired purpose."""
    if purpose.retired_at is not None:
        raise PurposeRetired(purpose.code)


def membership_running(subject: Subject, today: date | None = None) -> bool:
    """Whether the library system reports a running membership today.

    The end date is the last day of the membership, as library systems export it.
    """
    start, end = subject.membership_started_on, subject.membership_ended_on
    today = today or local_today()
    return start is not None and start <= today and (end is None or today <= end)


def on_as_member(
    purpose: Purpose, subject: Subject, status: str | None, today: date | None = None
) -> bool:
    """Whether a person who never chose gets this purpose because they are a member.

    Only for a legitimate-interest purpose, in a library that chose MEMBERS, while the
    membership runs, never for a minor, and only when the person never said anything about
    it (status None).
    """
    return (
        status is None
        and purpose.retired_at is None
        and purpose.legal_basis == LegalBasis.LEGITIMATE_INTEREST
        and purpose.library.legitimate_interest == LegitimateInterest.MEMBERS
        and subject.erased_at is None
        and subject.restricted_at is None
        # Marketing to a child needs the guardian's consent: no soft opt-in under 16.
        and not is_minor(subject)
        and membership_running(subject, today)
    )


def _self_service_purposes(library: Library, codes: Sequence[str]) -> list[Purpose]:
    offered = signup_purposes(library)
    purposes = []
    for code in dict.fromkeys(codes):
        purpose = purpose_by_code(library, code)
        ensure_offered(purpose)
        if purpose not in offered:
            raise NotSelfService(code)
        purposes.append(purpose)
    if not purposes:
        raise UnknownPurpose("")
    return purposes


def _shown_text(
    session: Session, purpose: Purpose, language: str, text_id: int | None
) -> ConsentText | None:
    if text_id is not None:
        text = session.get(ConsentText, text_id)
        if text is None or text.purpose_id != purpose.id:
            raise UnknownPurpose(purpose.code)
        return text
    return current_text(purpose, language)
