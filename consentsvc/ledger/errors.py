"""What the ledger refuses. A LedgerError means nothing was stored; its code is the
machine-readable reason the API and the pages translate."""

from __future__ import annotations


class LedgerError(ValueError):
    """Input the ledger refuses; nothing was stored."""

    code = "invalid"


class InvalidEmail(LedgerError):
    code = "invalid_address"


class UnknownPurpose(LedgerError):
    code = "unknown_purpose"


class PurposeRetired(LedgerError):
    """The library no longer offers this purpose: nothing new may start for it."""

    code = "purpose_retired"


class Restricted(LedgerError):
    """The person's data is frozen (restriction of processing): nothing may start."""

    code = "restricted"


class NotSelfService(LedgerError):
    """The member may not switch this purpose on themselves (e.g. direct debit)."""

    code = "not_self_service"


class AddressTaken(LedgerError):
    code = "address_taken"


class MandateRunning(LedgerError):
    """Direct debit runs on a signed mandate: it stops only by ending the mandate."""

    code = "mandate_running"
