"""The consent ledger: every change to a consent, and what may be mailed because of it.

Every function takes a SQLAlchemy session and plain values. Nothing here knows about
requests, templates or mail; callers commit. Each change appends a ConsentEvent and writes
the matching ConsentState in the same transaction, so the state is always the fold of the
events.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import email_validator
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import (
    ARRAY,
    Boolean,
    Integer,
    String,
    any_,
    bindparam,
    delete,
    insert,
    null,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import outbox
from .models import (
    AuditEntry,
    ConsentDecision,
    ConsentEvent,
    ConsentState,
    ConsentText,
    DecisionRecipient,
    Evidence,
    LegalBasis,
    Library,
    Purpose,
    Subject,
    Suppression,
    utcnow,
)

MAX_EMAIL_LENGTH = 254


class Action:
    REQUESTED = "requested"
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"
    OBJECTED = "objected"
    ERASED = "erased"
    RECONFIRM_REQUESTED = "reconfirm_requested"


class Status:
    PENDING = "pending"
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"
    OBJECTED = "objected"
    ERASED = "erased"
    RECONFIRM_REQUESTED = "reconfirm_requested"


class Channel:
    WEB_FORM = "web_form"
    EMAIL_LINK = "email_link"
    ONE_CLICK = "one_click"
    UNSUBSCRIBE_PAGE = "unsubscribe_page"
    PREFERENCE_CENTRE = "preference_centre"
    STAFF = "staff"
    API = "api"
    IMPORT = "import"
    PROVIDER_UNSUBSCRIBE = "provider_unsubscribe"
    PROVIDER_COMPLAINT = "provider_complaint"
    PROVIDER_BOUNCE = "provider_bounce"


# The status an event leaves behind. The ledger only records an event that is meant to take
# effect, so the state after any sequence of events is the status of its last event.
STATUS_AFTER = {
    Action.REQUESTED: Status.PENDING,
    Action.GRANTED: Status.GRANTED,
    Action.WITHDRAWN: Status.WITHDRAWN,
    Action.OBJECTED: Status.OBJECTED,
    Action.ERASED: Status.ERASED,
    Action.RECONFIRM_REQUESTED: Status.RECONFIRM_REQUESTED,
}


class LedgerError(ValueError):
    """Input the ledger refuses; nothing was stored."""

    code = "invalid"


class InvalidEmail(LedgerError):
    code = "invalid_address"


class UnknownPurpose(LedgerError):
    code = "unknown_purpose"


class Restricted(LedgerError):
    """The person's data is frozen (restriction of processing): nothing may start."""

    code = "restricted"


class NotSelfService(LedgerError):
    """The member may not switch this purpose on themselves (e.g. direct debit)."""

    code = "not_self_service"


@dataclass(frozen=True)
class Proof:
    """How an action reached us, kept as evidence next to the event."""

    ip_address: str | None = None
    user_agent: str | None = None
    origin: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    email: str
    allowed: bool
    reason: str
    subject_id: int | None = None


@dataclass
class SignupResult:
    subject: Subject
    # The request events a confirmation link must answer.
    request_ids: list[int]
    # Purposes now waiting for the person's confirmation.
    pending: list[str]
    # Purposes that were already granted and so need no confirmation.
    already_granted: list[str]
    # Whether a purpose became pending that was not pending before.
    newly_pending: bool


# Plain ASCII addresses, which are nearly all of them, whose normal form email-validator
# would give as the address itself (lower-cased). A check of 10,000 recipients spends most
# of its time normalising; this takes it from ~30 µs to ~1 µs an address. Anything else
# (quoted parts, IDN, special-use domains) goes the full way.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[a-z]{{2,63}}")
_SPECIAL_USE = frozenset(email_validator.SPECIAL_USE_DOMAIN_NAMES)


def normalise_email(raw: str) -> str:
    """Return the one spelling under which an address is stored, or raise InvalidEmail."""
    raw = (raw or "").strip()
    if not raw or len(raw) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(raw)
    lowered = raw.lower()
    if (
        _PLAIN_ADDRESS.fullmatch(lowered)
        and "xn--" not in lowered  # punycode: email-validator gives the Unicode form
        and len(lowered.partition("@")[0]) <= 64
        and lowered.rpartition(".")[2] not in _SPECIAL_USE
    ):
        return lowered
    try:
        # Addresses with non-ASCII before the @ need SMTPUTF8, which the mail path (and
        # many receiving servers) cannot do; refuse them up front rather than fail later.
        checked = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(raw) from exc
    # Mail providers treat the local part case-insensitively; so do we, so that one
    # person is one subject however they type their address.
    return checked.normalized.lower()


def email_hmac(key: str, email: str) -> str:
    return hmac.new(key.encode(), email.encode(), hashlib.sha256).hexdigest()


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


def find_subject(session: Session, library: Library, email: str) -> Subject | None:
    """Look a person up by address (normalised here); None if unknown or invalid."""
    try:
        email = normalise_email(email)
    except InvalidEmail:
        return None
    return session.scalar(
        select(Subject).where(Subject.library_id == library.id, Subject.email == email)
    )


def subject_for(session: Session, library: Library, email: str, language: str) -> Subject:
    """Return the subject with this address, creating it if it is new."""
    email = normalise_email(email)
    subject = find_subject(session, library, email)
    if subject is not None:
        return subject
    subject = Subject(library_id=library.id, email=email, language=language)
    try:
        with session.begin_nested():
            session.add(subject)
    except IntegrityError:
        # Someone else created it between our look-up and our insert.
        subject = find_subject(session, library, email)
        assert subject is not None
    return subject


def signup(
    session: Session,
    library: Library,
    email: str,
    purpose_codes: Sequence[str],
    *,
    language: str,
    channel: str,
    proof: Proof | None = None,
    text_ids: dict[str, int] | None = None,
    actor: str | None = None,
    requested_at: datetime | None = None,
) -> SignupResult:
    """Start double opt-in for each purpose (or grant it, where the purpose needs none).

    text_ids names the ConsentText the person was shown per purpose code; by default the
    current wording in their language. requested_at is when the person asked, if that was
    before now (the outbox worker records signups after the request).
    """
    purposes = _self_service_purposes(library, purpose_codes)
    subject = subject_for(session, library, email, language)
    lock(session, subject)
    if subject.restricted_at is not None:
        raise Restricted(subject.id)
    now = requested_at or utcnow()
    subject.last_activity_at = now
    evidence = _evidence(session, subject, proof, at=now)
    result = SignupResult(subject, [], [], [], False)
    for purpose in purposes:
        text = _shown_text(session, purpose, language, (text_ids or {}).get(purpose.code))
        status = status_of(session, subject, purpose)
        if status == Status.GRANTED:
            result.already_granted.append(purpose.code)
            continue
        # Without double opt-in a signup grants at once, but never over the person's own
        # earlier "no": anyone can type an address into a form.
        confirm_first = purpose.double_opt_in or status in (Status.WITHDRAWN, Status.OBJECTED)
        action = Action.REQUESTED if confirm_first else Action.GRANTED
        event = _record(
            session, subject, purpose, action, channel, now,
            text=text, actor=actor, evidence=evidence,
        )  # fmt: skip
        if action == Action.REQUESTED:
            result.request_ids.append(event.id)
            result.pending.append(purpose.code)
            result.newly_pending |= status != Status.PENDING
    return result


def shown_texts(
    session: Session,
    library: Library,
    purpose_codes: Sequence[str],
    language: str,
    text_ids: dict[str, int] | None = None,
) -> dict[str, int]:
    """The wording a signup for these purposes shows, as ConsentText ids per purpose code.

    Checks what signup would refuse (purposes not offered, a text of another purpose) without
    looking at any person, so it can run before anyone knows whether the address is new.
    """
    shown = {}
    for purpose in _self_service_purposes(library, purpose_codes):
        text = _shown_text(session, purpose, language, (text_ids or {}).get(purpose.code))
        if text is not None:
            shown[purpose.code] = text.id
    return shown


def confirm(
    session: Session,
    subject: Subject,
    request_ids: Iterable[int],
    proof: Proof | None = None,
    *,
    suppression_key: str | None = None,
) -> list[str]:
    """Grant every purpose still pending from these requests; return their codes.

    An empty list means the link was already used (or the consent changed since).
    """
    lock(session, subject)
    now = utcnow()
    waiting = still_pending(session, subject, request_ids)
    evidence = _evidence(session, subject, proof) if waiting else None
    confirmed = []
    for request in waiting:
        _record(
            session, subject, request.purpose, Action.GRANTED, Channel.EMAIL_LINK, now,
            text=request.consent_text, evidence=evidence, request_id=request.id,
        )  # fmt: skip
        confirmed.append(request.purpose.code)
    if confirmed:
        subject.last_activity_at = now
        if suppression_key:
            # A confirmed double opt-in proves the mailbox works and wants mail: it lifts an
            # earlier suppression (after erasure, a complaint or a bounce) for this library.
            session.execute(
                delete(Suppression).where(
                    Suppression.library_id == subject.library_id,
                    Suppression.email_hmac == email_hmac(suppression_key, subject.email),
                )
            )
    return confirmed


def still_pending(
    session: Session, subject: Subject, request_ids: Iterable[int]
) -> list[ConsentEvent]:
    """The requests among these that are still waiting for confirmation."""
    waiting = []
    for request_id in request_ids:
        request = session.get(ConsentEvent, request_id)
        if (
            request is not None
            and request.subject_id == subject.id
            and (request.action, status_of(session, subject, request.purpose))
            in (
                (Action.REQUESTED, Status.PENDING),
                (Action.RECONFIRM_REQUESTED, Status.RECONFIRM_REQUESTED),
            )
        ):
            waiting.append(request)
    return waiting


def request_reconfirmation(
    session: Session, purpose: Purpose, text: ConsentText, *, actor: str
) -> dict[int, int]:
    """After a material change of wording, ask everyone who agreed in that language to
    agree again (the wording in other languages did not change).

    Returns {subject id: reconfirm request id}. Whether their mail pauses meanwhile is the
    library's choice (Library.pause_until_reconfirmed).
    """
    now = utcnow()
    holders = session.scalars(
        select(Subject)
        .join(ConsentState, ConsentState.subject_id == Subject.id)
        .where(
            ConsentState.purpose_id == purpose.id,
            ConsentState.status == Status.GRANTED,
            Subject.language == text.language,
        )
    ).all()
    requests = {}
    for subject in holders:
        event = _record(
            session, subject, purpose, Action.RECONFIRM_REQUESTED, Channel.STAFF, now,
            text=text, actor=actor, announce=False,
        )  # fmt: skip
        requests[subject.id] = event.id
    return requests


def grant(
    session: Session,
    subject: Subject,
    purpose_code: str,
    *,
    channel: str,
    language: str | None = None,
    text_id: int | None = None,
    actor: str | None = None,
    proof: Proof | None = None,
) -> ConsentEvent | None:
    """Record consent given without double opt-in (desk, signed preference link, import)."""
    purpose = purpose_by_code(subject.library, purpose_code)
    if channel == Channel.PREFERENCE_CENTRE and not purpose.self_service:
        raise NotSelfService(purpose_code)
    lock(session, subject)
    if subject.restricted_at is not None:
        raise Restricted(subject.id)
    if status_of(session, subject, purpose) == Status.GRANTED:
        return None
    text = _shown_text(session, purpose, language or subject.language, text_id)
    now = utcnow()
    subject.last_activity_at = now
    return _record(
        session, subject, purpose, Action.GRANTED, channel, now,
        text=text, actor=actor, evidence=_evidence(session, subject, proof),
    )  # fmt: skip


def withdraw(
    session: Session,
    subject: Subject,
    purpose_code: str,
    *,
    channel: str,
    actor: str | None = None,
    proof: Proof | None = None,
) -> ConsentEvent | None:
    """Stop a purpose at once: withdraw consent, or object where the basis is legitimate
    interest. Returns None when nothing was running."""
    purpose = purpose_by_code(subject.library, purpose_code)
    lock(session, subject)
    running = (Status.GRANTED, Status.PENDING, Status.RECONFIRM_REQUESTED)
    if status_of(session, subject, purpose) not in running:
        return None
    action = (
        Action.OBJECTED
        if purpose.legal_basis == LegalBasis.LEGITIMATE_INTEREST
        else Action.WITHDRAWN
    )
    now = utcnow()
    subject.last_activity_at = now
    return _record(
        session, subject, purpose, action, channel, now,
        actor=actor, evidence=_evidence(session, subject, proof),
    )  # fmt: skip


def object_to(
    session: Session,
    subject: Subject,
    purpose_code: str,
    *,
    channel: str,
    actor: str | None = None,
    proof: Proof | None = None,
) -> ConsentEvent | None:
    """Record an objection; it holds whatever the state was, and is never overridden by
    a later signup without the person's own new consent."""
    purpose = purpose_by_code(subject.library, purpose_code)
    lock(session, subject)
    if status_of(session, subject, purpose) == Status.OBJECTED:
        return None
    now = utcnow()
    subject.last_activity_at = now
    return _record(
        session, subject, purpose, Action.OBJECTED, channel, now,
        actor=actor, evidence=_evidence(session, subject, proof),
    )  # fmt: skip


def withdraw_all(
    session: Session,
    subject: Subject,
    *,
    channel: str,
    actor: str | None = None,
    proof: Proof | None = None,
) -> list[str]:
    """Stop every kind of mail that is running; return the codes that stopped.

    Purposes that are not mail (direct debit) are left alone: stopping mail must not
    cancel a payment mandate.
    """
    stopped = []
    for purpose in subject.library.purposes:
        if purpose.is_mail and withdraw(
            session, subject, purpose.code, channel=channel, actor=actor, proof=proof
        ):
            stopped.append(purpose.code)
    return stopped


def set_language(session: Session, subject: Subject, language: str) -> None:
    subject.language = language
    subject.last_activity_at = utcnow()


@dataclass(frozen=True)
class PurposeState:
    purpose: Purpose
    status: str | None
    changed_at: datetime | None
    text: ConsentText | None


def state_of(session: Session, subject: Subject) -> list[PurposeState]:
    """Every purpose of the subject's library with its current state (None: never asked)."""
    rows = {
        s.purpose_id: s
        for s in session.scalars(select(ConsentState).where(ConsentState.subject_id == subject.id))
    }
    result = []
    for purpose in subject.library.purposes:
        row = rows.get(purpose.id)
        text = (
            session.get(ConsentText, row.consent_text_id) if row and row.consent_text_id else None
        )
        result.append(
            PurposeState(
                purpose, row.status if row else None, row.changed_at if row else None, text
            )
        )
    return result


def history(session: Session, subject: Subject) -> list[ConsentEvent]:
    """Every event of the subject, newest first."""
    return list(
        session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subject_id == subject.id)
            .order_by(ConsentEvent.id.desc())
        )
    )


REASON_BY_STATUS = {
    None: "no_consent",
    Status.PENDING: "pending_confirmation",
    Status.GRANTED: "granted",
    Status.WITHDRAWN: "withdrawn",
    Status.OBJECTED: "objected",
    Status.ERASED: "erased",
    Status.RECONFIRM_REQUESTED: "reconfirm_requested",
    "restricted": "restricted",
}

# SQLite takes at most 32766 parameters a statement; two per address, with room to spare.
SQLITE_CHUNK = 5000


def check_many(
    session: Session,
    library: Library,
    purpose_code: str,
    emails: Sequence[str],
    *,
    suppression_key: str,
) -> list[Decision]:
    """May each address get mail for this purpose? Answers in input order; fails closed.

    One statement per batch on PostgreSQL (arrays), one per 5,000 addresses on SQLite.
    """
    purpose = purpose_by_code(library, purpose_code)
    normalised: list[str | None] = []
    for raw in emails:
        try:
            normalised.append(normalise_email(raw))
        except InvalidEmail:
            normalised.append(None)
    wanted = sorted({e for e in normalised if e})
    status_by_email: dict[str, tuple[int, str | None]] = {}
    suppressed: set[str] = set()
    postgres = session.get_bind().dialect.name == "postgresql"
    chunk_size = (len(wanted) or 1) if postgres else SQLITE_CHUNK
    for start in range(0, len(wanted), chunk_size):
        chunk = wanted[start : start + chunk_size]
        hashes = {email_hmac(suppression_key, e): e for e in chunk}
        for email, subject_id, status, restricted, digest in session.execute(
            _check_statement(library, purpose, chunk, list(hashes), postgres)
        ):
            if digest is not None:
                suppressed.add(hashes[digest])
            else:
                status_by_email[email] = (subject_id, "restricted" if restricted else status)
    decisions = []
    for raw, email in zip(emails, normalised, strict=True):
        if email is None:
            decisions.append(Decision(raw, False, "invalid_address"))
            continue
        subject_id, status = status_by_email.get(email, (None, None))
        if email in suppressed:
            decisions.append(Decision(raw, False, "suppressed", subject_id))
            continue
        allowed = status == Status.GRANTED or (
            status == Status.RECONFIRM_REQUESTED and not library.pause_until_reconfirmed
        )
        decisions.append(Decision(raw, allowed, REASON_BY_STATUS[status], subject_id))
    return decisions


def _check_statement(
    library: Library, purpose: Purpose, emails: list[str], hashes: list[str], postgres: bool
) -> Any:
    """States of known addresses and matching suppressions, in one round trip."""
    if postgres:
        email_match = Subject.email == any_(bindparam("emails", emails, type_=ARRAY(String)))
        hash_match = Suppression.email_hmac == any_(
            bindparam("hashes", hashes, type_=ARRAY(String))
        )
    else:
        email_match = Subject.email.in_(emails)
        hash_match = Suppression.email_hmac.in_(hashes)
    states = (
        select(
            Subject.email,
            Subject.id,
            ConsentState.status,
            Subject.restricted_at.is_not(None).label("restricted"),
            null().cast(String).label("email_hmac"),
        )
        .outerjoin(
            ConsentState,
            (ConsentState.subject_id == Subject.id) & (ConsentState.purpose_id == purpose.id),
        )
        .where(Subject.library_id == library.id, email_match)
    )
    suppressions = select(
        null().cast(String),
        null().cast(Integer),
        null().cast(String),
        null().cast(Boolean),
        Suppression.email_hmac,
    ).where(Suppression.library_id == library.id, hash_match)
    return union_all(states, suppressions)


def record_decision(
    session: Session,
    library: Library,
    purpose: Purpose,
    decisions: Sequence[Decision],
    *,
    client_id: int,
) -> ConsentDecision:
    """Keep the answer to a check: who asked, the counts per reason, and who was allowed
    (by subject id, never by address), so a send can later be traced to it."""
    decision = ConsentDecision(
        id=str(uuid.uuid4()),
        library_id=library.id,
        client_id=client_id,
        purpose_id=purpose.id,
        recipients=len(decisions),
        reasons=dict(Counter(d.reason for d in decisions)),
    )
    session.add(decision)
    session.flush()
    allowed = sorted({d.subject_id for d in decisions if d.allowed and d.subject_id is not None})
    if allowed:
        # Straight to the table (one executemany): a check may allow 10,000 people, and the
        # ORM's bulk path would spend longer on them than the database does.
        session.execute(
            insert(DecisionRecipient.__table__),
            [{"decision_id": decision.id, "subject_id": sid} for sid in allowed],
        )
    return decision


def suppress(
    session: Session,
    library: Library,
    email: str,
    reason: str,
    *,
    suppression_key: str,
    actor: str | None = None,
) -> bool:
    """Never mail this address again for this library; False if it already was."""
    digest = email_hmac(suppression_key, normalise_email(email))
    exists = session.scalar(
        select(Suppression.id).where(
            Suppression.library_id == library.id, Suppression.email_hmac == digest
        )
    )
    if exists:
        return False
    session.add(Suppression(library_id=library.id, email_hmac=digest, reason=reason, actor=actor))
    outbox.enqueue_event(
        session,
        library.id,
        "suppression.added",
        {"library": library.slug, "email": normalise_email(email), "reason": reason},
    )
    session.flush()
    return True


def export(session: Session, subject: Subject, *, suppression_key: str) -> dict[str, Any]:
    """Everything held about one person, as plain JSON-ready data (see docs/export.schema.json).

    The suppression key is required: without it the export could not say whether the
    address is suppressed, and would silently say it is not.
    """
    evidence = {
        e.id: e for e in session.scalars(select(Evidence).where(Evidence.subject_id == subject.id))
    }
    suppression = None
    if subject.erased_at is None:
        suppression = session.scalar(
            select(Suppression).where(
                Suppression.library_id == subject.library_id,
                Suppression.email_hmac == email_hmac(suppression_key, subject.email),
            )
        )
    decisions = session.scalars(
        select(ConsentDecision)
        .join(DecisionRecipient, DecisionRecipient.decision_id == ConsentDecision.id)
        .where(DecisionRecipient.subject_id == subject.id)
        .order_by(ConsentDecision.checked_at, ConsentDecision.id)
    ).all()
    reads = session.scalars(
        select(AuditEntry).where(AuditEntry.subject_id == subject.id).order_by(AuditEntry.id)
    )
    return {
        "library": subject.library.slug,
        "subject": {
            "email": subject.email,
            "card_number": subject.card_number,
            "language": subject.language,
            "created_at": subject.created_at.isoformat(),
            "last_activity_at": subject.last_activity_at.isoformat(),
            "restricted_at": _iso_or_none(subject.restricted_at),
            "erased_at": _iso_or_none(subject.erased_at),
        },
        "suppression": (
            {"reason": suppression.reason, "since": suppression.created_at.isoformat()}
            if suppression
            else None
        ),
        "mailings_allowed": [
            {
                "decision_id": d.id,
                "purpose_id": d.purpose_id,
                "checked_at": d.checked_at.isoformat(),
            }
            for d in decisions
        ],
        "staff_access": [
            {
                "at": entry.at.isoformat(),
                "staff": entry.staff.name,
                "action": entry.action,
                "reason": entry.reason,
            }
            for entry in reads
        ],
        "consents": [
            {
                "purpose": s.purpose.code,
                "legal_basis": s.purpose.legal_basis,
                "status": s.status or "none",
                "changed_at": s.changed_at.isoformat() if s.changed_at else None,
                "consent_text": _text_json(s.text),
            }
            for s in state_of(session, subject)
        ],
        "events": [
            {
                "id": e.id,
                "purpose": e.purpose.code,
                "action": e.action,
                "occurred_at": e.occurred_at.isoformat(),
                "channel": e.channel,
                "actor": e.actor,
                "consent_text": _text_json(e.consent_text),
                "in_reply_to": e.request_id,
                "evidence": _evidence_json(evidence.get(e.evidence_id)),
            }
            for e in reversed(history(session, subject))
        ],
    }


@dataclass
class Erasure:
    erased: bool
    # Purposes whose records must be kept for now, with the date the duty ends.
    kept: dict[str, datetime] = field(default_factory=dict)
    withdrawn: list[str] = field(default_factory=list)


def erase(
    session: Session,
    subject: Subject,
    *,
    suppression_key: str,
    actor: str,
    identification: str,
) -> Erasure:
    """Erase a person: their data and evidence go, the ledger rows stay without them, and a
    keyed hash of the address is suppressed so it is never mailed again.

    Where a legal retention duty still holds (a purpose's retention_days_after_withdrawal,
    e.g. seven years for direct debit) the person stays on record: mail stops and the
    address is suppressed, and the result says what is kept and until when.
    """
    lock(session, subject)
    now = utcnow()
    proof = Proof(details={"identification": identification[:200]})
    result = Erasure(erased=False)
    for state in state_of(session, subject):
        days = state.purpose.retention_days_after_withdrawal
        if days and state.status is not None:
            since = now if state.status == Status.GRANTED else state.changed_at or now
            if since + timedelta(days=days) > now:
                result.kept[state.purpose.code] = since + timedelta(days=days)
    result.withdrawn = withdraw_all(
        session, subject, channel=Channel.STAFF, actor=actor, proof=proof
    )
    suppress(
        session,
        subject.library,
        subject.email,
        "erased",
        suppression_key=suppression_key,
        actor=actor,
    )
    if result.kept:
        return result
    old_email = subject.email
    for row in session.scalars(select(Evidence).where(Evidence.subject_id == subject.id)):
        row.ip_address = row.user_agent = row.origin = None
        row.details = {}
    # The erasure's own proof: who did it and how the person was identified.
    evidence = _evidence(session, subject, proof)
    for state in state_of(session, subject):
        if state.status is not None:
            _record(
                session, subject, state.purpose, Action.ERASED, Channel.STAFF, now,
                actor=actor, evidence=evidence, announce=False,
            )  # fmt: skip
    outbox.forget_address(session, subject.library_id, old_email)
    outbox.enqueue_event(
        session,
        subject.library_id,
        "subject.erased",
        {"library": subject.library.slug, "email": old_email, "erased_at": _iso_or_none(now)},
    )
    subject.email = f"erased:{subject.id}"
    subject.card_number = None
    subject.erased_at = now
    subject.restricted_at = None
    session.flush()
    result.erased = True
    return result


class AddressTaken(LedgerError):
    code = "address_taken"


def request_email_change(session: Session, subject: Subject, new_email: str) -> str:
    """Note a corrected address; it takes effect only when a mail to it is confirmed."""
    new_email = normalise_email(new_email)
    lock(session, subject)
    other = find_subject(session, subject.library, new_email)
    if other is not None and other.id != subject.id:
        raise AddressTaken(new_email)
    subject.pending_email = new_email
    return new_email


def confirm_email_change(session: Session, subject: Subject, fingerprint: str) -> bool:
    """Use the corrected address; consents move with the person. False if nothing waits."""
    lock(session, subject)
    pending = subject.pending_email
    if not pending or email_fingerprint(pending) != fingerprint:
        return False
    if find_subject(session, subject.library, pending) is not None:
        subject.pending_email = None
        return False
    subject.email, subject.pending_email = pending, None
    subject.last_activity_at = utcnow()
    return True


def email_fingerprint(email: str) -> str:
    """Names one address in a link without showing it."""
    return hashlib.sha256(email.encode()).hexdigest()[:16]


def restrict(session: Session, subject: Subject) -> None:
    """Freeze the person: checks refuse with reason 'restricted', nothing new can start."""
    lock(session, subject)
    subject.restricted_at = subject.restricted_at or utcnow()


def lift_restriction(session: Session, subject: Subject) -> None:
    lock(session, subject)
    subject.restricted_at = None


def verify(session: Session) -> list[tuple[int, int, str]]:
    """Compare every ConsentState with the fold of its events; return the mismatches."""
    folded: dict[tuple[int, int], ConsentEvent] = {}
    for ev in session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)):
        folded[(ev.subject_id, ev.purpose_id)] = ev
    problems = []
    states = {(s.subject_id, s.purpose_id): s for s in session.scalars(select(ConsentState))}
    for key in folded.keys() | states.keys():
        last, state = folded.get(key), states.get(key)
        if last is None:
            problems.append((*key, "state without events"))
        elif state is None:
            problems.append((*key, "events without state"))
        elif (state.status, state.last_event_id, state.consent_text_id) != (
            STATUS_AFTER[last.action],
            last.id,
            last.consent_text_id,
        ):
            problems.append((*key, f"state {state.status} but last event {last.action}"))
    return sorted(problems)


def signup_purposes(library: Library) -> list[Purpose]:
    """The purposes a person may sign up for themselves: consent-based and self-service."""
    return [p for p in library.purposes if p.self_service and p.legal_basis == LegalBasis.CONSENT]


def _self_service_purposes(library: Library, codes: Sequence[str]) -> list[Purpose]:
    offered = signup_purposes(library)
    purposes = []
    for code in dict.fromkeys(codes):
        purpose = purpose_by_code(library, code)
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


def lock(session: Session, subject: Subject) -> None:
    """Take the person's row for this transaction and reload it.

    Serialises writers per person on PostgreSQL (SQLite already writes one at a time), and
    the reload means cool-down stamps written by a concurrent request are seen. Changes not
    yet written are flushed first: a refresh would silently throw them away.
    """
    session.flush()
    session.refresh(subject, with_for_update=True)


def status_of(session: Session, subject: Subject, purpose: Purpose) -> str | None:
    """The current status of one purpose for one person (None: never asked)."""
    state = session.get(ConsentState, (subject.id, purpose.id))
    return state.status if state else None


def _evidence(
    session: Session, subject: Subject, proof: Proof | None, at: datetime | None = None
) -> Evidence | None:
    if proof is None:
        return None
    evidence = Evidence(
        subject_id=subject.id,
        created_at=at or utcnow(),
        ip_address=proof.ip_address,
        user_agent=(proof.user_agent or "")[:400] or None,
        origin=(proof.origin or "")[:200] or None,
        details=proof.details,
    )
    session.add(evidence)
    session.flush()
    return evidence


def _record(
    session: Session,
    subject: Subject,
    purpose: Purpose,
    action: str,
    channel: str,
    now: datetime,
    *,
    text: ConsentText | None = None,
    actor: str | None = None,
    evidence: Evidence | None = None,
    request_id: int | None = None,
    announce: bool = True,
) -> ConsentEvent:
    event = ConsentEvent(
        subject_id=subject.id,
        purpose_id=purpose.id,
        action=action,
        occurred_at=now,
        channel=channel,
        consent_text_id=text.id if text else None,
        actor=actor,
        evidence_id=evidence.id if evidence else None,
        request_id=request_id,
    )
    session.add(event)
    session.flush()
    state = session.get(ConsentState, (subject.id, purpose.id))
    if state is None:
        state = ConsentState(subject_id=subject.id, purpose_id=purpose.id)
        session.add(state)
    state.status = STATUS_AFTER[action]
    state.consent_text_id = event.consent_text_id
    state.changed_at = now
    state.last_event_id = event.id
    if announce and action != Action.REQUESTED:
        # Senders hear of every change that decides whether a person may be mailed; the
        # row is part of this transaction, so no change goes unannounced.
        outbox.enqueue_event(
            session,
            subject.library_id,
            f"consent.{action}",
            {
                "event_id": event.id,
                "library": subject.library.slug,
                "email": subject.email,
                "purpose": purpose.code,
                "channel": channel,
                "occurred_at": now.isoformat().replace("+00:00", "Z"),
            },
        )
    session.flush()
    return event


def _iso_or_none(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _text_json(text: ConsentText | None) -> dict[str, Any] | None:
    if text is None:
        return None
    return {
        "language": text.language,
        "version": text.version,
        "title": text.title,
        "body": text.body,
        "sha256": text.sha256,
    }


def _evidence_json(evidence: Evidence | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    return {
        "ip_address": evidence.ip_address,
        "user_agent": evidence.user_agent,
        "origin": evidence.origin,
        **evidence.details,
    }
