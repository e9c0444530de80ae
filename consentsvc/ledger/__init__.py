"""The consent ledger: every change to a consent, and what may be mailed because of it.

Every function takes a SQLAlchemy session and plain values. Nothing here knows about
requests, templates or mail; callers commit. One module per concern:

- events: the vocabulary (actions, statuses, channels), appending an event, the state fold
- purposes: purposes and their worded, versioned texts; retiring one; what legitimate
  interest means in a library (opt-in, or members unless they object)
- people: finding and creating a person by address
- addresses: normalising an address, its keyed hash and fingerprint
- changes: signup, confirmation, reconfirmation, grant, withdrawal, objection
- check: may these addresses be mailed, and the kept answer
- decisions: what a past check answered, read back for the sender that relied on it
- auditor: what held for one person at a moment in the past, and the events and proof behind it
- suppression: addresses never to be mailed again
- rights: export, erasure, rectification, restriction
- retention: what is due to go per library and data category, and making it go
- verification: every state is the fold of its events, and every chain holds
- chain: the hash chains of events and audit entries (tamper evidence)
- membership: card number, start and end as the library system reports them
- imports: bringing in a subscriber list from an old system
- statements: privacy-statement versions, their notice to subscribers, who has seen them
- family: managing another member's mail settings, only after they accepted
- minors: young members (under 16 a guardian consents), birth year, guardian, turning 16
- mandates: SEPA direct-debit mandates, their four-eyes approval, ending them
- errors: what the ledger refuses

Callers import from here (`from consentsvc import ledger`), not from the modules.
"""

from __future__ import annotations

from ..models import ConsentText, LegitimateInterest, Library, local_today
from .addresses import MAX_EMAIL_LENGTH, email_fingerprint, email_hmac, normalise_email
from .auditor import (
    AuditorView,
    EventRecord,
    EvidenceSummary,
    InvalidMoment,
    Moment,
    PurposeThen,
    read_moment,
)
from .auditor import suppression_of as auditor_suppression
from .auditor import view_at as auditor_view
from .chain import (
    AUDIT,
    CONSENT,
    Break,
    Head,
    chain_audit,
    hash_at,
    heads,
    receipt_id,
    unguarded_tables,
    verify_library,
)
from .changes import (
    SignupResult,
    confirm,
    grant,
    object_to,
    request_reconfirmation,
    set_language,
    shown_texts,
    signup,
    still_pending,
    withdraw,
    withdraw_all,
)
from .check import (
    MAX_RECIPIENTS,
    REASON_BY_STATUS,
    REASON_MEMBER,
    REASON_RETIRED,
    CheckScope,
    Decision,
    Kept,
    check_in,
    check_many,
    record_decision,
)
from .decisions import (
    AllowedPeople,
    KeptDecision,
    allowed_people,
    allowed_subject,
    is_decision_id,
    kept_decision,
)
from .decisions import retention_months as decision_retention_months
from .errors import (
    AddressTaken,
    InvalidEmail,
    LedgerError,
    MandateRunning,
    NotSelfService,
    PurposeRetired,
    Restricted,
    UnknownPurpose,
)
from .events import (
    STATUS_AFTER,
    Action,
    Channel,
    Proof,
    PurposeState,
    Status,
    history,
    lock,
    state_of,
    status_of,
)
from .family import (
    Accesses,
    EndedBy,
    FamilyStatus,
    NoFamilyAccess,
    held_access,
)
from .family import accesses_of as family_accesses_of
from .family import actor_for as family_actor
from .family import answer as answer_family_request
from .family import change as family_change
from .family import end as end_family_access
from .family import end_all as end_family_accesses
from .family import holder_id_of as family_holder_id
from .family import is_open as family_request_open
from .family import request_access as request_family_access
from .imports import (
    ImportReport,
    Listed,
    ListedPerson,
    SourceFile,
)
from .imports import Outcome as ImportOutcome
from .imports import begin as begin_import
from .imports import preview as preview_import
from .imports import run as run_import
from .mandates import (
    APPROVALS as MANDATE_APPROVALS,
)
from .mandates import (
    MANDATE_PURPOSE,
    MandateInput,
    MandateNotAllowed,
    MandateRefused,
    approval_refused,
    awaiting_approval,
    mandate_in,
    mandates_of,
)
from .mandates import approve as approve_mandate
from .mandates import confirm_online as confirm_mandate
from .mandates import end as end_mandate
from .mandates import export_rows as mandate_rows
from .mandates import record as record_mandate
from .mandates import reject as reject_mandate
from .membership import (
    MAX_CARD_NUMBER_LENGTH,
    EndBeforeStart,
    Erased,
    InvalidCardNumber,
    InvalidDate,
    Membership,
    MembershipRefused,
    Outcome,
    check_membership,
    membership_of,
    read_date,
    record_membership,
    record_memberships,
)
from .minors import (
    CONSENT_AGE,
    BirthYearNotAsked,
    GuardianIsMember,
    GuardianMissing,
    InvalidBirthYear,
    decides_alone_from,
    end_guardianship,
    guardian_of,
    guardian_proof,
    is_minor,
    minor_json,
    record_minor,
    turned_sixteen,
)
from .people import find_subject, subject_for
from .purposes import (
    add_purpose,
    add_text,
    current_text,
    ensure_offered,
    membership_running,
    offered_purposes,
    purpose_by_code,
    retire_purpose,
    signup_purposes,
)
from .retention import (
    PEOPLE_CATEGORIES,
    ROW_CATEGORIES,
    RetentionPolicy,
    apply_rows,
    erase_people,
    people_batch,
    retention_due,
)
from .rights import (
    RETENTION_ACTOR,
    Erasure,
    confirm_email_change,
    erase,
    erase_expired,
    export,
    lift_restriction,
    request_email_change,
    restrict,
)
from .statements import Draft as StatementDraft
from .statements import StatementRefused
from .statements import check_draft as check_statement_draft
from .statements import in_effect as statement_in_effect
from .statements import in_effect_and_upcoming as statements_in_effect_and_upcoming
from .statements import mark_seen as mark_statement_seen
from .statements import newest as newest_statement
from .statements import next_version as next_statement_version
from .statements import notice_allowed as statement_notice_allowed
from .statements import publish as publish_statement
from .statements import queue_notices as queue_statement_notices
from .statements import subscriber_count as newsletter_subscriber_count
from .statements import unseen as unseen_statement
from .statements import versions as statement_versions
from .suppression import suppress
from .verification import verify

__all__ = [
    "AUDIT",
    "CONSENT",
    "CONSENT_AGE",
    "MANDATE_APPROVALS",
    "MANDATE_PURPOSE",
    "MAX_CARD_NUMBER_LENGTH",
    "MAX_EMAIL_LENGTH",
    "MAX_RECIPIENTS",
    "PEOPLE_CATEGORIES",
    "REASON_BY_STATUS",
    "REASON_MEMBER",
    "REASON_RETIRED",
    "RETENTION_ACTOR",
    "ROW_CATEGORIES",
    "STATUS_AFTER",
    "Accesses",
    "Action",
    "AddressTaken",
    "AllowedPeople",
    "AuditorView",
    "BirthYearNotAsked",
    "Break",
    "Channel",
    "CheckScope",
    "ConsentText",
    "Decision",
    "EndBeforeStart",
    "EndedBy",
    "Erased",
    "Erasure",
    "EventRecord",
    "EvidenceSummary",
    "FamilyStatus",
    "GuardianIsMember",
    "GuardianMissing",
    "Head",
    "ImportOutcome",
    "ImportReport",
    "InvalidBirthYear",
    "InvalidCardNumber",
    "InvalidDate",
    "InvalidEmail",
    "InvalidMoment",
    "Kept",
    "KeptDecision",
    "LedgerError",
    "LegitimateInterest",
    "Library",
    "Listed",
    "ListedPerson",
    "MandateInput",
    "MandateNotAllowed",
    "MandateRefused",
    "MandateRunning",
    "Membership",
    "MembershipRefused",
    "Moment",
    "NoFamilyAccess",
    "NotSelfService",
    "Outcome",
    "Proof",
    "PurposeRetired",
    "PurposeState",
    "PurposeThen",
    "Restricted",
    "RetentionPolicy",
    "SignupResult",
    "SourceFile",
    "StatementDraft",
    "StatementRefused",
    "Status",
    "UnknownPurpose",
    "add_purpose",
    "add_text",
    "allowed_people",
    "allowed_subject",
    "answer_family_request",
    "apply_rows",
    "approval_refused",
    "approve_mandate",
    "auditor_suppression",
    "auditor_view",
    "awaiting_approval",
    "begin_import",
    "chain_audit",
    "check_in",
    "check_many",
    "check_membership",
    "check_statement_draft",
    "confirm",
    "confirm_email_change",
    "confirm_mandate",
    "current_text",
    "decides_alone_from",
    "decision_retention_months",
    "email_fingerprint",
    "email_hmac",
    "end_family_access",
    "end_family_accesses",
    "end_guardianship",
    "end_mandate",
    "ensure_offered",
    "erase",
    "erase_expired",
    "erase_people",
    "export",
    "family_accesses_of",
    "family_actor",
    "family_change",
    "family_holder_id",
    "family_request_open",
    "find_subject",
    "grant",
    "guardian_of",
    "guardian_proof",
    "hash_at",
    "heads",
    "held_access",
    "history",
    "is_decision_id",
    "is_minor",
    "kept_decision",
    "lift_restriction",
    "local_today",
    "lock",
    "mandate_in",
    "mandate_rows",
    "mandates_of",
    "mark_statement_seen",
    "membership_of",
    "membership_running",
    "minor_json",
    "newest_statement",
    "newsletter_subscriber_count",
    "next_statement_version",
    "normalise_email",
    "object_to",
    "offered_purposes",
    "people_batch",
    "preview_import",
    "publish_statement",
    "purpose_by_code",
    "queue_statement_notices",
    "read_date",
    "read_moment",
    "receipt_id",
    "record_decision",
    "record_mandate",
    "record_membership",
    "record_memberships",
    "record_minor",
    "reject_mandate",
    "request_email_change",
    "request_family_access",
    "request_reconfirmation",
    "restrict",
    "retention_due",
    "retire_purpose",
    "run_import",
    "set_language",
    "shown_texts",
    "signup",
    "signup_purposes",
    "state_of",
    "statement_in_effect",
    "statement_notice_allowed",
    "statement_versions",
    "statements_in_effect_and_upcoming",
    "status_of",
    "still_pending",
    "subject_for",
    "suppress",
    "turned_sixteen",
    "unguarded_tables",
    "unseen_statement",
    "verify",
    "verify_library",
    "withdraw",
    "withdraw_all",
]
