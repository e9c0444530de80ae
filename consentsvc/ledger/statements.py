"""A library's privacy-statement versions and their announcement: publishing a version,
which one is in effect on a date and which is the newest, who is told (the newsletter's
current subscribers, by a notice mailed through the outbox, spread over minutes), and
whether a member has seen the newest one in the preference centre.

The seeds promise: "Als we dit privacy statement wijzigen … laten het dan ook weten via
onze nieuwsbrief … Je kunt dan altijd meteen reageren." A notice is queued per subscriber
and version with an id made of both, so it is queued once however often publishing or
queueing runs; whether it still goes is decided again when it is sent (notice_allowed),
so a withdrawal made while the notices are leaving is respected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session

from ..models import (
    ConsentState,
    Library,
    OutboxMessage,
    PrivacyStatement,
    Purpose,
    Subject,
    local_today,
    utcnow,
)
from .check import check_many
from .errors import LedgerError
from .events import Status

MAX_URL = 500
MAX_SUMMARY = 600
# A version may say it took effect a little while ago (the notice went out late), not more.
MAX_DAYS_IN_PAST = 30
# Further ahead than this is a typing error (2062 for 2026), not a plan.
MAX_DAYS_AHEAD = 2 * 365
NOTICE_KIND = "statement_notice"
NEWSLETTER = "newsletter"
# Control characters other than line breaks and tabs: a summary is plain text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class StatementRefused(LedgerError):
    """A version that cannot be published; `problems` names each field and its reason.

    Reasons: url (missing, too_long, not_https, not_url), effective_on (missing, unreadable,
    too_early, too_late, before_previous), summary_nl / summary_en (missing, too_long,
    control), version (already_published).
    """

    code = "statement_refused"

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


@dataclass(frozen=True)
class Draft:
    """A version as checked, ready to publish."""

    url: str
    effective_on: date
    summary_nl: str
    summary_en: str


def check_draft(
    session: Session,
    library: Library,
    *,
    url: str,
    effective_on: str | date,
    summary_nl: str,
    summary_en: str,
    today: date | None = None,
) -> Draft:
    """Check a new version's fields; raises StatementRefused naming every wrong field."""
    today = today or local_today()
    problems: dict[str, str] = {}
    url = url.strip()
    if not url:
        problems["url"] = "missing"
    elif len(url) > MAX_URL:
        problems["url"] = "too_long"
    else:
        problem = _url_problem(url)
        if problem:
            problems["url"] = problem
    day: date | None = None
    if isinstance(effective_on, date):
        day = effective_on
    elif not effective_on.strip():
        problems["effective_on"] = "missing"
    else:
        try:
            day = date.fromisoformat(effective_on.strip())
        except ValueError:
            problems["effective_on"] = "unreadable"
    if day is not None:
        previous = newest(session, library)
        if day < today - timedelta(days=MAX_DAYS_IN_PAST):
            problems["effective_on"] = "too_early"
        elif day > today + timedelta(days=MAX_DAYS_AHEAD):
            problems["effective_on"] = "too_late"
        elif previous is not None and day < previous.effective_on:
            problems["effective_on"] = "before_previous"
    summaries = {}
    for language, text in (("nl", summary_nl), ("en", summary_en)):
        text = text.replace("\r\n", "\n").strip()
        field = f"summary_{language}"
        if not text:
            problems[field] = "missing"
        elif len(text) > MAX_SUMMARY:
            problems[field] = "too_long"
        elif _CONTROL.search(text):
            problems[field] = "control"
        summaries[language] = text
    if problems or day is None:
        raise StatementRefused(problems)
    return Draft(url, day, summaries["nl"], summaries["en"])


def _url_problem(url: str) -> str | None:
    if any(c.isspace() for c in url) or _CONTROL.search(url):
        return "not_url"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "not_url"
    if parts.scheme.lower() != "https":
        return "not_https"
    if not parts.hostname or "." not in parts.hostname or parts.username or parts.password:
        return "not_url"
    return None


def publish(
    session: Session,
    library: Library,
    draft: Draft,
    *,
    actor: str,
    expected_version: int,
    per_minute: int = 0,
) -> PrivacyStatement:
    """Publish the next version and queue its notice to every current subscriber.

    `expected_version` is the number the staff member confirmed: a form sent twice, or a
    colleague who published meanwhile, makes it stale, and nothing is published twice.
    """
    version = next_version(session, library)
    if expected_version != version:
        raise StatementRefused({"version": "already_published"})
    session.info.pop(_READ, None)  # a page rendered after this must see the new version
    statement = PrivacyStatement(
        library_id=library.id,
        version=version,
        url=draft.url,
        effective_on=draft.effective_on,
        summary_nl=draft.summary_nl,
        summary_en=draft.summary_en,
        published_at=utcnow(),
        published_by=actor[:100],
    )
    session.add(statement)
    session.flush()
    statement.notices = queue_notices(session, statement, per_minute=per_minute)
    return statement


def queue_notices(session: Session, statement: PrivacyStatement, *, per_minute: int = 0) -> int:
    """Queue the notice for each current subscriber who has none for this version yet.

    Spread at `per_minute` (0: all at once), like an import's reconfirmation mails, so
    thousands do not leave at once and trip the mail server's limits or spam filters.
    Returns how many were queued now.
    """
    prefix = f"statement-{statement.id}-"
    queued = set(
        session.scalars(
            select(OutboxMessage.message_id).where(
                OutboxMessage.library_id == statement.library_id,
                OutboxMessage.message_id.startswith(prefix),
            )
        )
    )
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for subject_id in session.scalars(_subscribers(statement.library_id).order_by(Subject.id)):
        message_id = f"{prefix}{subject_id}"
        if message_id in queued:
            continue
        n = len(rows)
        due = now + timedelta(minutes=n // per_minute if per_minute else 0)
        rows.append(dict(
            library_id=statement.library_id, channel="mail", endpoint_id=None,
            event_type=f"mail.{NOTICE_KIND}", message_id=message_id, created_at=now,
            next_attempt_at=due,
            payload={"subject_id": subject_id, "mail": NOTICE_KIND, "statement_id": statement.id},
        ))  # fmt: skip
    if rows:
        session.execute(insert(OutboxMessage), rows)
    return len(rows)


def _subscribers(library_id: int) -> Any:
    """The ids of the newsletter's current subscribers: granted, not erased or restricted."""
    return (
        select(Subject.id)
        .join(ConsentState, ConsentState.subject_id == Subject.id)
        .join(Purpose, Purpose.id == ConsentState.purpose_id)
        .where(
            Subject.library_id == library_id,
            Purpose.library_id == library_id,
            Purpose.code == NEWSLETTER,
            ConsentState.status == Status.GRANTED,
            Subject.erased_at.is_(None),
            Subject.restricted_at.is_(None),
        )
    )


def subscriber_count(session: Session, library: Library) -> int:
    """How many people a version published now would notify."""
    ids = _subscribers(library.id).subquery()
    return session.scalar(select(func.count()).select_from(ids)) or 0


def notice_allowed(
    session: Session, subject: Subject, statement: PrivacyStatement, *, suppression_key: str
) -> bool:
    """Whether a queued notice may still go, read at the moment of sending: the person still
    gets the newsletter (not withdrawn since, not restricted, erased or suppressed)."""
    if subject.erased_at is not None or subject.library_id != statement.library_id:
        return False
    library = subject.library
    if not any(p.code == NEWSLETTER for p in library.purposes):
        return False
    (decision,) = check_many(
        session, library, NEWSLETTER, [subject.email], suppression_key=suppression_key
    )
    return decision.allowed and decision.subject_id == subject.id


def versions(session: Session, library: Library) -> list[PrivacyStatement]:
    """Every version of the library's statement, the newest first."""
    return list(
        session.scalars(
            select(PrivacyStatement)
            .where(PrivacyStatement.library_id == library.id)
            .order_by(PrivacyStatement.version.desc())
        )
    )


def next_version(session: Session, library: Library) -> int:
    latest = newest(session, library)
    return latest.version + 1 if latest else 1


def newest(session: Session, library: Library) -> PrivacyStatement | None:
    """The newest version announced, whether or not it is in effect yet."""
    return session.scalar(
        select(PrivacyStatement)
        .where(PrivacyStatement.library_id == library.id)
        .order_by(PrivacyStatement.version.desc())
        .limit(1)
    )


def in_effect(
    session: Session, library: Library, on: date | None = None
) -> PrivacyStatement | None:
    """The version that counts on a date (today where the library is, by default)."""
    on = on or local_today()
    return session.scalar(
        select(PrivacyStatement)
        .where(PrivacyStatement.library_id == library.id, PrivacyStatement.effective_on <= on)
        .order_by(PrivacyStatement.version.desc())
        .limit(1)
    )


def in_effect_and_upcoming(
    session: Session, library: Library, on: date | None = None
) -> tuple[PrivacyStatement | None, PrivacyStatement | None]:
    """in_effect and upcoming at once: every member page's footer shows both."""
    on = on or local_today()
    rows = _from_in_effect(session, library, on)
    current = next((row for row in rows if row.effective_on <= on), None)
    later = rows[0] if rows and rows[0].effective_on > on else None
    return current, later


def unseen(session: Session, subject: Subject) -> PrivacyStatement | None:
    """The newest version, if it changed something for this member they have not put away.

    Someone who came after it was published never knew the old one: nothing changed for
    them, and they are not told it did.
    """
    rows = _from_in_effect(session, subject.library, local_today())
    latest = rows[0] if rows else None  # the newest of all: every newer one is in rows
    if latest is None or (subject.statement_seen_version or 0) >= latest.version:
        return None
    if subject.created_at >= latest.published_at:
        return None
    return latest


# session.info: what _from_in_effect read in this transaction, by (library id, day).
_READ = "consentsvc.statements_read"


def _from_in_effect(session: Session, library: Library, on: date) -> list[PrivacyStatement]:
    """The version in effect on the day and every newer one, newest first (usually one or
    two rows), in one query; read once per transaction, as the preference centre's notice
    and the footer of the same page both need it."""
    known = session.info.setdefault(_READ, {})
    if (library.id, on) not in known:
        newest_in_effect = (
            select(func.max(PrivacyStatement.version))
            .where(PrivacyStatement.library_id == library.id, PrivacyStatement.effective_on <= on)
            .scalar_subquery()
        )
        known[(library.id, on)] = session.scalars(
            select(PrivacyStatement)
            .where(
                PrivacyStatement.library_id == library.id,
                PrivacyStatement.version >= func.coalesce(newest_in_effect, 0),
            )
            .order_by(PrivacyStatement.version.desc())
        ).all()
    return known[(library.id, on)]


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, *_args: Any) -> None:
    session.info.pop(_READ, None)


def mark_seen(session: Session, subject: Subject, version: int) -> bool:
    """Record that the member read a version's notice; an unknown or older version does
    nothing. Returns whether it recorded something."""
    latest = newest(session, subject.library)
    if latest is None or not 1 <= version <= latest.version:
        return False
    if (subject.statement_seen_version or 0) >= version:
        return False
    subject.statement_seen_version = version
    return True
