"""The tables. Personal data lives in Subject and Evidence only."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    select,
)
from sqlalchemy.ext.associationproxy import association_proxy
from sqlalchemy.orm import Mapped, Session, column_property, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from .database import refuse_changes_ddl
from .extensions import db

BigId = BigInteger().with_variant(Integer, "sqlite")
# The hash chains each library keeps (ledger.chain).
CHAINS = ("consent", "audit")


# How far in the past what is written now is dated; only the demo data sets it (backdated).
_clock_offset: ContextVar[timedelta] = ContextVar("clock_offset", default=timedelta(0))


# Where the libraries are: a membership ends, a statement takes effect, on a Dutch date.
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def utcnow() -> datetime:
    return datetime.now(UTC) - _clock_offset.get()


def local_today(now: datetime | None = None) -> date:
    """The date in the Netherlands (now, or at `now`): for an hour or two each night it is
    already tomorrow there while UTC still says today."""
    return (now or utcnow()).astimezone(AMSTERDAM).date()


@contextmanager
def backdated(by: timedelta) -> Iterator[None]:
    """Date everything the ledger writes inside `by` earlier than now.

    For demo data with a history (old sign-ups, ended mandates) for retention to work on;
    the service itself never writes the past.
    """
    token = _clock_offset.set(by)
    try:
        yield
    finally:
        _clock_offset.reset(token)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, also on SQLite (which stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class LegalBasis:
    CONSENT = "consent"
    LEGITIMATE_INTEREST = "legitimate_interest"
    CONTRACT = "contract"
    ALL = (CONSENT, LEGITIMATE_INTEREST, CONTRACT)


class LegitimateInterest:
    """What a library's legitimate-interest purposes (direct marketing to members) mean.

    OPT_IN: nobody gets it before they switch it on themselves (what it always meant here).
    MEMBERS: soft opt-in (art. 6(1)(f) GDPR with Telecommunicatiewet 11.7 lid 3): a member
    gets it while their membership runs, unless they object; a non-member only after opting
    in. An objection always wins, also when the person becomes a member again.
    """

    OPT_IN = "opt_in"
    MEMBERS = "members_unless_objected"
    ALL = (OPT_IN, MEMBERS)


class Library(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    isil: Mapped[str | None] = mapped_column(String(20))
    colour: Mapped[str] = mapped_column(String(7), default="#1f4e79")
    # Origins (scheme://host[:port]) whose pages may post the signup form cross-site.
    allowed_origins: Mapped[list[str]] = mapped_column(JSON, default=list)
    # After a material change of wording, whether mail pauses until the person reconfirms.
    pause_until_reconfirmed: Mapped[bool] = mapped_column(default=True)
    default_language: Mapped[str] = mapped_column(String(2), default="nl")
    # Raised by every change to the library, its purposes or their texts (see the
    # before_flush hook below), so that a worker's copy of them (web/purpose_cache.py) knows
    # when it is out of date without reading them all again.
    config_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # Months per data category, e.g. {"contact_after_membership": 6}; read by the retention job.
    retention: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What a legitimate-interest purpose means here (LegitimateInterest): only after the
    # person opts in, or members unless they object (soft opt-in).
    legitimate_interest: Mapped[str] = mapped_column(
        String(30), default=LegitimateInterest.OPT_IN, server_default=LegitimateInterest.OPT_IN
    )
    # The library's own face (library_face.py): the sender of its mails, the footer of its
    # mails and member pages, and a marker of its logo (the image is in LibraryLogo). Empty
    # means not given: mails then come from MAIL_DEFAULT_SENDER's address under its name.
    sender_name: Mapped[str | None] = mapped_column(String(100))
    sender_address: Mapped[str | None] = mapped_column(String(254))
    reply_to: Mapped[str | None] = mapped_column(String(254))
    # Its own website: linked from pages and mails; its domain is the From domain allowed.
    website: Mapped[str | None] = mapped_column(String(300))
    postal_address: Mapped[str | None] = mapped_column(String(300))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    contact_phone: Mapped[str | None] = mapped_column(String(30))
    privacy_officer_name: Mapped[str | None] = mapped_column(String(100))
    privacy_officer_email: Mapped[str | None] = mapped_column(String(254))
    # Whether pages and mails point to the Autoriteit Persoonsgegevens' complaint page.
    complaint_link: Mapped[bool] = mapped_column(default=False, server_default=false())
    # SHA-256 of the stored logo: the ETag, and part of its URL so a new logo is fetched anew.
    logo_sha256: Mapped[str | None] = mapped_column(String(64))
    # Whether staff record members' birth years (young members: under 16 a guardian
    # consents, see ledger/minors.py). Off unless the library chooses it: data minimisation.
    asks_birth_year: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Who approves a direct-debit mandate recorded by staff (four eyes): "second_staff" (any
    # colleague but the one who recorded it) or "privacy_officer" (see ledger.mandates).
    mandate_approval: Mapped[str] = mapped_column(
        String(20), default="second_staff", server_default="second_staff"
    )

    # selectin: a page or a check that needs one purpose of a library needs its list, and a
    # preference page its every text; loading them in one query each, not one per purpose.
    purposes: Mapped[list[Purpose]] = relationship(
        back_populates="library", order_by="Purpose.position", lazy="selectin"
    )


class Subject(db.Model):
    __table_args__ = (UniqueConstraint("library_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    card_number: Mapped[str | None] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(2), default="nl")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the service last mailed this person a confirmation or a preference link;
    # repeated requests inside the cool-down send nothing, so nobody can be mail-bombed.
    last_confirm_mail_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Confirmation mails since the last quiet cool-down period (see mailer).
    recent_confirm_mails: Mapped[int] = mapped_column(default=0)
    last_link_mail_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A corrected address waits here until a mail to it is confirmed (rectification).
    pending_email: Mapped[str | None] = mapped_column(String(254))
    # Restriction (GDPR art. 18): no check allows, nothing starts, until the FG lifts it.
    restricted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Erasure keeps the row (the ledger points at it) but nothing that identifies the person.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Membership as the library system reports it (API or nightly import); its end starts
    # the contact-data retention clock. Dates, not times: the library system knows no more.
    membership_started_on: Mapped[date | None] = mapped_column(Date)
    membership_ended_on: Mapped[date | None] = mapped_column(Date)
    # The newest privacy-statement version whose notice the member put away in the
    # preference centre ("Gelezen"); None: none yet.
    statement_seen_version: Mapped[int | None] = mapped_column()
    # Young members (ledger/minors.py): the year only, never the date of birth; or, without
    # a year, staff's mark that the person is under 16. A minor's grants need the guardian.
    birth_year: Mapped[int | None] = mapped_column()
    marked_minor: Mapped[bool] = mapped_column(default=False, server_default=false())
    guardian_email: Mapped[str | None] = mapped_column(String(254))
    # When the guardian's role ended because the person turned 16; the former guardian's
    # address stays with the consents they gave, as their proof, until erasure.
    guardian_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    library: Mapped[Library] = relationship()


class Purpose(db.Model):
    __table_args__ = (UniqueConstraint("library_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    legal_basis: Mapped[str] = mapped_column(String(20), default=LegalBasis.CONSENT)
    double_opt_in: Mapped[bool] = mapped_column(default=True)
    # Whether members may switch it on themselves (signup form, preference centre).
    # Direct debit is not: it needs a signed mandate.
    self_service: Mapped[bool] = mapped_column(default=True)
    # Whether the purpose is about sending mail (checks, unsubscribe links, "stop all mail").
    is_mail: Mapped[bool] = mapped_column(default=True)
    retention_days_after_withdrawal: Mapped[int | None] = mapped_column()
    list_id: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(default=0)
    # A retired purpose is no longer offered and no check allows it; its history stays.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    library: Mapped[Library] = relationship(back_populates="purposes")
    texts: Mapped[list[ConsentText]] = relationship(
        back_populates="purpose", order_by="ConsentText.version", lazy="selectin"
    )


class ConsentText(db.Model):
    """The exact wording shown next to a checkbox; a new wording is a new version."""

    __table_args__ = (UniqueConstraint("purpose_id", "language", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose_id: Mapped[int] = mapped_column(ForeignKey("purpose.id"), index=True)
    language: Mapped[str] = mapped_column(String(2))
    version: Mapped[int] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    purpose: Mapped[Purpose] = relationship(back_populates="texts")

    @staticmethod
    def digest(title: str, body: str) -> str:
        return hashlib.sha256(f"{title}\n\n{body}".encode()).hexdigest()


class Evidence(db.Model):
    """How a consent reached us: enough to show it was this person, and nothing more."""

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    origin: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ConsentEvent(db.Model):
    """One thing that happened to one consent. Rows are only ever inserted: the database
    refuses UPDATE and DELETE (database.APPEND_ONLY), and each row is a link in its
    library's hash chain (ledger.chain)."""

    __table_args__ = (
        Index("ix_consent_event_subject_purpose", "subject_id", "purpose_id", "id"),
        UniqueConstraint("library_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"))
    # Place in the library's consent chain (1, 2, …) and the chain hash up to this row.
    seq: Mapped[int] = mapped_column(BigId)
    hash: Mapped[str] = mapped_column(String(64))
    # A keyed hash of the evidence as it was written: the evidence may be wiped later, the
    # chain stays whole, and a kept copy can still be shown to match.
    evidence_commitment: Mapped[str | None] = mapped_column(String(64))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"))
    purpose_id: Mapped[int] = mapped_column(ForeignKey("purpose.id"))
    action: Mapped[str] = mapped_column(String(30))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    channel: Mapped[str] = mapped_column(String(30))
    consent_text_id: Mapped[int | None] = mapped_column(ForeignKey("consent_text.id"))
    # Staff id or API client id; empty when the member acted themselves.
    actor: Mapped[str | None] = mapped_column(String(100))
    evidence_id: Mapped[int | None] = mapped_column(ForeignKey("evidence.id"))
    # For a confirmation: the request it answers, so the chain of proof is explicit.
    request_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("consent_event.id"))

    purpose: Mapped[Purpose] = relationship()
    consent_text: Mapped[ConsentText | None] = relationship()
    evidence: Mapped[Evidence | None] = relationship()


@event.listens_for(ConsentEvent, "before_update")
@event.listens_for(ConsentEvent, "before_delete")
def _refuse_rewriting_history(mapper: Any, connection: Any, target: Any) -> None:
    raise RuntimeError(f"{mapper.local_table.name} is append-only")


class ChainHead(db.Model):
    """How long each of a library's chains is. Appending takes this row's lock first, so
    concurrent writers queue instead of forking the chain (ledger.chain)."""

    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), primary_key=True)
    chain: Mapped[str] = mapped_column(String(10), primary_key=True)
    length: Mapped[int] = mapped_column(BigId, default=0)


@event.listens_for(Library, "after_insert")
def _start_chains(mapper: Any, connection: Any, target: Library) -> None:
    connection.execute(
        ChainHead.__table__.insert(),
        [{"library_id": target.id, "chain": chain, "length": 0} for chain in CHAINS],
    )


class ConsentState(db.Model):
    """The current state per (subject, purpose): the fold of its events, kept for fast checks."""

    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), primary_key=True)
    purpose_id: Mapped[int] = mapped_column(ForeignKey("purpose.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    consent_text_id: Mapped[int | None] = mapped_column(ForeignKey("consent_text.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_event_id: Mapped[int] = mapped_column(BigId, ForeignKey("consent_event.id"))

    purpose: Mapped[Purpose] = relationship()


class Suppression(db.Model):
    """An address never to be mailed again, kept as a keyed hash so it survives erasure."""

    __table_args__ = (UniqueConstraint("library_id", "email_hmac"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"))
    email_hmac: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(30))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Who reported it: an API client ("client:3"), staff, or empty for the service itself.
    actor: Mapped[str | None] = mapped_column(String(100))


class ApiClient(db.Model):
    """A mailing processor or website backend. Only a hash of its key is kept."""

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The start of the key, so a person can tell keys apart in lists.
    key_prefix: Mapped[str] = mapped_column(String(16))
    purposes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # What the key may do beyond its purposes, e.g. "membership" for the library system.
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Read with the key, in the same query: whether this worker's copy of the library's
    # purposes is still the current one (web/purpose_cache.py).
    library_version: Mapped[int] = column_property(
        select(Library.config_version).where(Library.id == library_id).scalar_subquery(),
        deferred=False,
    )

    library: Mapped[Library] = relationship()


class ConsentDecision(db.Model):
    """The answer to one consent check, kept so a send can later be traced to it."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id"))
    purpose_id: Mapped[int] = mapped_column(ForeignKey("purpose.id"))
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recipients: Mapped[int] = mapped_column()
    # With the people allowed (DecisionRecipient) this is the whole answer without keeping
    # a single address.
    reasons: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)


class DecisionRecipient(db.Model):
    """A person a consent check allowed: one row each, so that a person's export finds
    their decisions by index instead of reading every decision of the library.

    No foreign keys: checked per row, they took two thirds of the time a check spent
    writing its allowed people (docs/performance.md). Only ledger.record_decision writes
    these rows, from ids it has just read; people are never deleted, and retention deletes
    a decision's rows with it.
    """

    decision_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[int] = mapped_column(primary_key=True, index=True)


class InboundEvent(db.Model):
    """An event a sender reported, remembered so that repeats do nothing.

    A report is its id, kind and address together: processors reuse one id for every
    recipient of a message (or send none), and a batch must not collapse into one event.
    """

    __table_args__ = (
        UniqueConstraint(
            "client_id", "external_id", "kind", "email_hmac", name="uq_inbound_event_report"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id"))
    external_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(30))
    # The keyed hash of the address (as in Suppression): no address is kept here.
    email_hmac: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEndpoint(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    # whsec_ + base64; needed in full to sign, so it is kept (never logged or shown again).
    secret: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    library: Mapped[Library] = relationship()


class OutboxMessage(db.Model):
    """Something to send after the transaction that caused it has committed.

    Mails name the subject and the kind of mail, not the address or the link: those are
    made at sending time, so no personal data or token waits in this table.
    """

    __table_args__ = (Index("ix_outbox_message_due", "delivered_at", "dead_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"))
    channel: Mapped[str] = mapped_column(String(10))  # "webhook" or "mail"
    endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_endpoint.id"))
    event_type: Mapped[str] = mapped_column(String(40))
    # The webhook-id header: the same on every retry, so receivers can drop duplicates.
    message_id: Mapped[str] = mapped_column(String(40), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    # A worker holds a message until this time; after a crash another worker takes it over.
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    # The HTTP status the receiver answered the last attempt with; empty for mails and when
    # no answer came (the connection failed or timed out: last_error says which).
    last_status: Mapped[int | None] = mapped_column()

    endpoint: Mapped[WebhookEndpoint | None] = relationship()


class WorkerHeartbeat(db.Model):
    """A running `consentsvc worker`, as it last said it was alive (heartbeat.py).

    /readyz wants one seen lately: without a worker nobody gets signed up or mailed.
    """

    # host:pid, so two workers on one host and workers on several hosts stay apart.
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StaffRole:
    DESK = "desk"
    PRIVACY_OFFICER = "privacy_officer"
    ADMIN = "admin"
    ALL = (DESK, PRIVACY_OFFICER, ADMIN)


staff_library = db.Table(
    "staff_library",
    db.Column("staff_id", ForeignKey("staff_user.id"), primary_key=True),
    db.Column("library_id", ForeignKey("library.id"), primary_key=True),
)


class StaffUser(db.Model):
    """A library employee who uses the console.

    Everyone belongs to one home library; an admin may also look after other libraries
    (`other_libraries`), and switches between them in the console.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Repeated wrong passwords lock the account for a while (see staff.py).
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A second step at login (RFC 6238, 30-second codes); the last step used cannot be reused.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Raised at every logout: sessions live in signed cookies, and this is what makes a copy
    # of one useless afterwards (see session_version).
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")

    library: Mapped[Library] = relationship()
    other_libraries: Mapped[list[Library]] = relationship(secondary=staff_library)

    @property
    def libraries(self) -> list[Library]:
        """Every library this person may work in, the home library first."""
        extra = sorted(
            (lib for lib in self.other_libraries if lib.id != self.library_id),
            key=lambda lib: lib.name,
        )
        return [self.library, *extra]

    # Flask-Login's interface.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        # The session names the password, login code and logout count it began with:
        # changing the password or code ends every other session of this person, and a
        # logout ends all of them (sessions live in signed cookies).
        return f"{self.id}.{self.session_version}"

    @property
    def session_version(self) -> str:
        seed = f"{self.password_hash}|{self.totp_secret or ''}|{self.session_generation}".encode()
        return hashlib.sha256(seed).hexdigest()[:16]


class AuditEntry(db.Model):
    """Who did what, when: every staff look at a person is here. Append-only and chained
    like ConsentEvent; whom it was about and why is in its AuditNote, which retention may
    remove while the entry (and the chain) stays."""

    __table_args__ = (UniqueConstraint("library_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigId)
    hash: Mapped[str] = mapped_column(String(64))
    note_commitment: Mapped[str | None] = mapped_column(String(64))

    staff: Mapped[StaffUser] = relationship()
    note: Mapped[AuditNote | None] = relationship(lazy="joined")

    subject_id = association_proxy("note", "subject_id")
    detail = association_proxy("note", "detail")
    reason = association_proxy("note", "reason")


event.listen(AuditEntry, "before_update", _refuse_rewriting_history)
event.listen(AuditEntry, "before_delete", _refuse_rewriting_history)
for _table in (ConsentEvent.__table__, AuditEntry.__table__):
    # The same triggers as the migration writes, for databases made by create_all (tests).
    event.listen(_table, "after_create", refuse_changes_ddl)


class LedgerAnchor(db.Model):
    """A signed head statement of a library's chains, made daily and mailed to its privacy
    officer, so that an edit after that day cannot be hidden by re-computing (anchors.py)."""

    __table_args__ = (UniqueConstraint("library_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"))
    # The day (in the service's time zone) it was made for: one per library and day.
    day: Mapped[date] = mapped_column(Date)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consent_length: Mapped[int] = mapped_column(BigId)
    consent_hash: Mapped[str] = mapped_column(String(64))
    audit_length: Mapped[int] = mapped_column(BigId)
    audit_hash: Mapped[str] = mapped_column(String(64))
    # The signed statement exactly as it was mailed and served.
    statement: Mapped[dict[str, Any]] = mapped_column(JSON)
    mailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditNote(db.Model):
    """Whom an audit entry was about, and what was looked for or typed as the reason."""

    __table_args__ = (Index("ix_audit_note_subject", "subject_id", "entry_id"),)

    entry_id: Mapped[int] = mapped_column(BigId, ForeignKey("audit_entry.id"), primary_key=True)
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subject.id"))
    # What was looked for or changed, without personal data where it can be avoided.
    detail: Mapped[str | None] = mapped_column(String(300))
    reason: Mapped[str | None] = mapped_column(String(300))


class RetentionRun(db.Model):
    """What the retention job did for one library: when, and how many of each kind of data.

    The daily run also names its day (`scheduled_for`, in the service's time zone); that the
    pair is unique is how several workers on several hosts run it once a day between them.
    """

    __table_args__ = (UniqueConstraint("library_id", "scheduled_for"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scheduled_for: Mapped[date | None] = mapped_column(Date)
    # Category: how many people or rows it erased, anonymised or removed.
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)


class SubscriberImport(db.Model):
    """One subscriber list brought in from an old system, so that a rerun resumes it.

    A file is known by its SHA-256: the same file for the same library and purpose is one
    import, however often it is started. No address is kept here.
    """

    __table_args__ = (UniqueConstraint("library_id", "purpose_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    purpose_id: Mapped[int] = mapped_column(ForeignKey("purpose.id"))
    file_name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    # mailchimp, laposta or plain: how the header was read.
    file_format: Mapped[str] = mapped_column(String(20))
    # Who ran it: "staff:3" from the console, the command line's user otherwise.
    actor: Mapped[str] = mapped_column(String(100))
    reconfirm: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last line of the file whose row is stored; a rerun goes on after it.
    last_line: Mapped[int] = mapped_column(default=0)
    # How many rows ended how ({"granted": 9120, "suppressed": 31, ...}).
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)

    purpose: Mapped[Purpose] = relationship()


class LibraryLogo(db.Model):
    """A library's logo, checked and re-encoded (library_face.check_logo), in the database
    because every web process serves it."""

    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), primary_key=True)
    # image/png or image/webp: nothing else is ever stored.
    mimetype: Mapped[str] = mapped_column(String(20))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    width: Mapped[int] = mapped_column()
    height: Mapped[int] = mapped_column()
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PrivacyStatement(db.Model):
    """One version of a library's privacy statement: where it is, from when it counts, and
    what changed, as announced to the newsletter's subscribers. Versions are never changed."""

    __table_args__ = (UniqueConstraint("library_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    version: Mapped[int] = mapped_column()
    # The statement itself lives on the library's website (https only).
    url: Mapped[str] = mapped_column(String(500))
    effective_on: Mapped[date] = mapped_column(Date)
    # Plain text, shown in mails and the preference centre in the member's language.
    summary_nl: Mapped[str] = mapped_column(String(600))
    summary_en: Mapped[str] = mapped_column(String(600))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # "staff:3" from the console; the demo and the command line name themselves.
    published_by: Mapped[str] = mapped_column(String(100))
    # How many notices publishing queued (the subscribers at that moment).
    notices: Mapped[int] = mapped_column(default=0)

    def summary(self, language: str) -> str:
        return self.summary_en if language == "en" else self.summary_nl


class FamilyAccess(db.Model):
    """One member's access to another member's mail settings in the same library.

    The holder asked; the giver decides. Nothing is shared until the giver accepted, and
    either side (or erasure or restriction of either) ends it. A refusal is recorded for
    the giver's sake only: the holder is never shown it.
    """

    __table_args__ = (
        Index("ix_family_access_holder", "holder_id", "status"),
        Index("ix_family_access_giver", "giver_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("subject.id"))
    giver_id: Mapped[int] = mapped_column(ForeignKey("subject.id"))
    # requested, accepted, refused or ended (see ledger.family.FamilyStatus).
    status: Mapped[str] = mapped_column(String(10))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # holder, giver, erasure or restriction: who or what ended it.
    ended_by: Mapped[str | None] = mapped_column(String(20))

    holder: Mapped[Subject] = relationship(foreign_keys=[holder_id])
    giver: Mapped[Subject] = relationship(foreign_keys=[giver_id])


class SepaMandate(db.Model):
    """A signed SEPA direct-debit mandate: the evidence of a person's direct_debit grant.

    The IBAN is kept only encrypted (consentsvc.iban, a key of its own) and its last four
    characters in clear for the masked form. Recording needs a second pair of eyes before
    anything is granted; an online signature also needs the member's confirmation by mail.
    Ending it withdraws direct_debit. Retention wipes the IBAN and holder 84 months after
    the end (the payment category), and the whole row with the person.
    """

    __table_args__ = (UniqueConstraint("library_id", "reference"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    # The mandate reference (SEPA MndtId) and the library's creditor identifier.
    reference: Mapped[str] = mapped_column(String(35))
    creditor_id: Mapped[str] = mapped_column(String(35))
    iban_ciphertext: Mapped[str | None] = mapped_column(Text)
    iban_last4: Mapped[str | None] = mapped_column(String(4))
    holder_name: Mapped[str | None] = mapped_column(String(140))
    signed_on: Mapped[date] = mapped_column(Date)
    signed_place: Mapped[str | None] = mapped_column(String(100))
    # "paper" (at the desk) or "online" (confirmed by the member from a mail).
    signed_how: Mapped[str] = mapped_column(String(10))
    recorded_by: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejected_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    rejected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejection_reason: Mapped[str | None] = mapped_column(String(300))
    member_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When direct_debit was granted on this mandate, and the event that did it.
    active_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    grant_event_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("consent_event.id"))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "staff:3" at the desk, "member" from the preference centre.
    ended_by: Mapped[str | None] = mapped_column(String(100))
    end_event_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("consent_event.id"))
    # When retention took out the IBAN and the holder (84 months after the end).
    wiped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    subject: Mapped[Subject] = relationship()
    recorder: Mapped[StaffUser] = relationship(foreign_keys=[recorded_by])
    approver: Mapped[StaffUser | None] = relationship(foreign_keys=[approved_by])

    @property
    def status(self) -> str:
        """rejected, ended, active, awaiting_member (online) or awaiting_approval."""
        if self.rejected_at is not None:
            return "rejected"
        if self.ended_at is not None:
            return "ended"
        if self.active_since is not None:
            return "active"
        if self.approved_at is not None:
            return "awaiting_member"
        return "awaiting_approval"


class SigningKey(db.Model):
    """A public key the service signed receipts and ledger heads with (see signing.py).

    Only ever added, at a key's first signature: a key no longer active stays, so what it
    signed keeps verifying against the published JWK Set.
    """

    # The RFC 7638 thumbprint of the key (base64url of a SHA-256: 43 characters).
    kid: Mapped[str] = mapped_column(String(43), primary_key=True)
    # The raw Ed25519 public key, base64url (the JWK member "x").
    x: Mapped[str] = mapped_column(String(43))
    first_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@event.listens_for(Session, "before_flush")
def _raise_config_version(session: Session, _context: Any, _instances: Any) -> None:
    """A change to a library, a purpose or a text raises the library's config_version.

    As an SQL increment, so two workers changing the same library at once both count.
    Changes made with bulk UPDATE statements bypass this hook; none of the service's are
    to these three tables.
    """
    touched: set[int] = set()
    for instance in (*session.new, *session.dirty, *session.deleted):
        if isinstance(instance, Library):
            if instance.id is not None and session.is_modified(instance):
                touched.add(instance.id)
        elif isinstance(instance, Purpose):
            library = instance.library if "library" in instance.__dict__ else None
            touched.add(library.id if library is not None else instance.library_id)
        elif isinstance(instance, ConsentText):
            purpose = instance.__dict__.get("purpose") or (
                session.get(Purpose, instance.purpose_id) if instance.purpose_id else None
            )
            if purpose is not None:
                touched.add(purpose.library_id)
    for library_id in touched - {None}:
        library = session.get(Library, library_id)
        if library is not None:
            library.config_version = Library.config_version + 1
