"""Consent changes: signup and double opt-in, confirmation, reconfirmation after a new
wording, granting at the desk, withdrawal and objection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    delete,
    select,
)
from sqlalchemy.orm import Session

from ..models import (
    ConsentEvent,
    ConsentState,
    ConsentText,
    LegalBasis,
    Library,
    Purpose,
    SepaMandate,
    Subject,
    Suppression,
    utcnow,
)
from .addresses import email_hmac
from .errors import MandateRunning, NotSelfService, Restricted
from .events import Action, Channel, Proof, Status, _evidence, _record, lock, state_row, status_of
from .minors import guardian_needed, is_minor
from .people import subject_for
from .purposes import (
    _self_service_purposes,
    _shown_text,
    ensure_offered,
    on_as_member,
    purpose_by_code,
)


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
    # A minor's signup waits for the guardian (ledger/minors.py); without one it is refused.
    by_guardian = guardian_needed(subject)
    subject.last_activity_at = now
    evidence = _evidence(session, subject, proof, at=now)
    result = SignupResult(subject, [], [], [], False)
    for purpose in purposes:
        text = _shown_text(session, purpose, language, (text_ids or {}).get(purpose.code))
        state = state_row(session, subject, purpose)
        status = state.status if state else None
        if status == Status.GRANTED:
            result.already_granted.append(purpose.code)
            continue
        # Without double opt-in a signup grants at once, but never over the person's own
        # earlier "no": anyone can type an address into a form.
        confirm_first = (
            by_guardian or purpose.double_opt_in or status in (Status.WITHDRAWN, Status.OBJECTED)
        )
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
    by_guardian: bool = False,
) -> list[str]:
    """Grant every purpose still pending from these requests; return their codes.

    An empty list means the link was already used (or the consent changed since), or the
    person is a minor and this is not the guardian's confirmation (by_guardian: the
    caller read the guardian's link, and proof carries minors.guardian_proof).
    """
    lock(session, subject)
    now = utcnow()
    if is_minor(subject) and not by_guardian:
        return []
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
        if suppression_key and not by_guardian:
            # A confirmed double opt-in proves the mailbox works and wants mail: it lifts an
            # earlier suppression (after erasure, a complaint or a bounce) for this library.
            # A guardian's confirmation proves nothing about the minor's own mailbox.
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
    """Record consent given without double opt-in (desk, signed preference link, import).

    For a minor (ledger/minors.py) it records a request instead, for the guardian to
    confirm: the caller mails them (mailer.after_grant). None when nothing changed.
    """
    purpose = purpose_by_code(subject.library, purpose_code)
    ensure_offered(purpose)
    if channel == Channel.PREFERENCE_CENTRE and not purpose.self_service:
        raise NotSelfService(purpose_code)
    lock(session, subject)
    if subject.restricted_at is not None:
        raise Restricted(subject.id)
    state = state_row(session, subject, purpose)
    status = state.status if state else None
    by_guardian = guardian_needed(subject)
    if status == Status.GRANTED or (by_guardian and status == Status.PENDING):
        return None
    text = _shown_text(session, purpose, language or subject.language, text_id)
    now = utcnow()
    subject.last_activity_at = now
    return _record(
        session, subject, purpose, Action.REQUESTED if by_guardian else Action.GRANTED,
        channel, now, text=text, actor=actor, evidence=_evidence(session, subject, proof),
    )  # fmt: skip


def withdraw(
    session: Session,
    subject: Subject,
    purpose_code: str,
    *,
    channel: str,
    actor: str | None = None,
    proof: Proof | None = None,
    ending_mandate: bool = False,
) -> ConsentEvent | None:
    """Stop a purpose at once: withdraw consent, or object where the basis is legitimate
    interest. Returns None when nothing was running.

    Direct debit on an active mandate stops only through ledger.mandates.end (which passes
    ending_mandate): the mandate itself must end with it, and the payment system be told.
    """
    purpose = purpose_by_code(subject.library, purpose_code)
    lock(session, subject)
    if not purpose.is_mail and not ending_mandate and _mandate_runs(session, subject):
        raise MandateRunning(purpose_code)
    running = (Status.GRANTED, Status.PENDING, Status.RECONFIRM_REQUESTED)
    state = state_row(session, subject, purpose)
    status = state.status if state else None
    # A member mailed on soft opt-in never chose, yet it runs: stopping it is an objection.
    if status not in running and not on_as_member(purpose, subject, status):
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
    # An objection would stop direct debit as surely as a withdrawal: only ending the
    # mandate does that, so the payment system is told.
    if not purpose.is_mail and _mandate_runs(session, subject):
        raise MandateRunning(purpose_code)
    state = state_row(session, subject, purpose)
    if state is not None and state.status == Status.OBJECTED:
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


def _mandate_runs(session: Session, subject: Subject) -> bool:
    return (
        session.scalar(
            select(SepaMandate.id)
            .where(
                SepaMandate.subject_id == subject.id,
                SepaMandate.active_since.is_not(None),
                SepaMandate.ended_at.is_(None),
            )
            .limit(1)
        )
        is not None
    )
