"""The consent ledger: every change to a consent, and what may be mailed because of it.

Every function takes a SQLAlchemy session and plain values. Nothing here knows about
requests, templates or mail; callers commit. One module per concern:

- events: the vocabulary (actions, statuses, channels), appending an event, the state fold
- purposes: purposes and their worded, versioned texts
- people: finding and creating a person by address
- addresses: normalising an address, its keyed hash and fingerprint
- changes: signup, confirmation, reconfirmation, grant, withdrawal, objection
- check: may these addresses be mailed, and the kept answer
- suppression: addresses never to be mailed again
- rights: export, erasure, rectification, restriction
- retention: what is due to go per library and data category, and making it go
- verification: every state is the fold of its events
- membership: card number, start and end as the library system reports them
- imports: bringing in a subscriber list from an old system
- mandates: SEPA direct-debit mandates, their four-eyes approval, ending them
- errors: what the ledger refuses

Callers import from here (`from consentsvc import ledger`), not from the modules.
"""

from __future__ import annotations

from ..models import ConsentText, Library
from .addresses import MAX_EMAIL_LENGTH, email_fingerprint, email_hmac, normalise_email
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
    SQLITE_CHUNK,
    Decision,
    check_many,
    record_decision,
)
from .errors import (
    AddressTaken,
    InvalidEmail,
    LedgerError,
    MandateRunning,
    NotSelfService,
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
from .people import find_subject, subject_for
from .purposes import add_purpose, add_text, current_text, purpose_by_code, signup_purposes
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
from .suppression import suppress
from .verification import verify

__all__ = [
    "MANDATE_APPROVALS",
    "MANDATE_PURPOSE",
    "MAX_CARD_NUMBER_LENGTH",
    "MAX_EMAIL_LENGTH",
    "MAX_RECIPIENTS",
    "PEOPLE_CATEGORIES",
    "REASON_BY_STATUS",
    "RETENTION_ACTOR",
    "ROW_CATEGORIES",
    "SQLITE_CHUNK",
    "STATUS_AFTER",
    "Action",
    "AddressTaken",
    "Channel",
    "ConsentText",
    "Decision",
    "EndBeforeStart",
    "Erased",
    "Erasure",
    "ImportOutcome",
    "ImportReport",
    "InvalidCardNumber",
    "InvalidDate",
    "InvalidEmail",
    "LedgerError",
    "Library",
    "Listed",
    "ListedPerson",
    "MandateInput",
    "MandateNotAllowed",
    "MandateRefused",
    "MandateRunning",
    "Membership",
    "MembershipRefused",
    "NotSelfService",
    "Outcome",
    "Proof",
    "PurposeState",
    "Restricted",
    "RetentionPolicy",
    "SignupResult",
    "SourceFile",
    "Status",
    "UnknownPurpose",
    "add_purpose",
    "add_text",
    "apply_rows",
    "approval_refused",
    "approve_mandate",
    "awaiting_approval",
    "begin_import",
    "check_many",
    "check_membership",
    "confirm",
    "confirm_email_change",
    "confirm_mandate",
    "current_text",
    "email_fingerprint",
    "email_hmac",
    "end_mandate",
    "erase",
    "erase_expired",
    "erase_people",
    "export",
    "find_subject",
    "grant",
    "history",
    "lift_restriction",
    "lock",
    "mandate_in",
    "mandate_rows",
    "mandates_of",
    "membership_of",
    "normalise_email",
    "object_to",
    "people_batch",
    "preview_import",
    "purpose_by_code",
    "read_date",
    "record_decision",
    "record_mandate",
    "record_membership",
    "record_memberships",
    "reject_mandate",
    "request_email_change",
    "request_reconfirmation",
    "restrict",
    "retention_due",
    "run_import",
    "set_language",
    "shown_texts",
    "signup",
    "signup_purposes",
    "state_of",
    "status_of",
    "still_pending",
    "subject_for",
    "suppress",
    "verify",
    "withdraw",
    "withdraw_all",
]
