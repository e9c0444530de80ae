"""Staff accounts and the audit trail of what staff do. Knows no request and no HTML."""

from __future__ import annotations

from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from .ledger import InvalidEmail, normalise_email
from .models import AuditEntry, Library, StaffRole, StaffUser, Subject, utcnow

MAX_FAILURES = 5
LOCK = timedelta(minutes=15)
MIN_PASSWORD = 12
_hasher = PasswordHasher()


class StaffError(ValueError):
    """Refused input; `code` names the reason for the console's translated message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def create(
    session: Session, library: Library, email: str, name: str, role: str, password: str
) -> StaffUser:
    """Add a staff member; the password is stored as an argon2 hash."""
    if role not in StaffRole.ALL:
        raise StaffError("role", f"role must be one of {', '.join(StaffRole.ALL)}")
    if len(password) < MIN_PASSWORD:
        raise StaffError("password", f"a password needs at least {MIN_PASSWORD} characters")
    try:
        email = normalise_email(email)
    except InvalidEmail:
        raise StaffError("email", "not a valid e-mail address") from None
    if session.scalar(select(StaffUser.id).where(StaffUser.email == email)):
        raise StaffError("taken", "there is already a staff member with this address")
    user = StaffUser(
        library_id=library.id,
        email=email,
        name=name,
        role=role,
        password_hash=_hasher.hash(password),
    )
    session.add(user)
    session.flush()
    return user


def login(session: Session, email: str, password: str) -> StaffUser | None:
    """The staff member if the password is right and the account is open; counts failures.

    After MAX_FAILURES wrong passwords the account is locked for LOCK, whatever is typed.
    """
    try:
        email = normalise_email(email)
    except InvalidEmail:
        return None
    user = session.scalar(select(StaffUser).where(StaffUser.email == email))
    if user is None:
        _hasher.hash(password)  # the same work as a real check, so timing tells nothing
        return None
    now = utcnow()
    if not user.active or (user.locked_until and user.locked_until > now):
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until = now + LOCK
            user.failed_logins = 0
        return None
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def audit(
    session: Session,
    staff: StaffUser,
    action: str,
    *,
    subject: Subject | None = None,
    detail: str | None = None,
    reason: str | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        library_id=staff.library_id,
        staff_id=staff.id,
        action=action,
        subject_id=subject.id if subject else None,
        detail=(detail or "")[:300] or None,
        reason=(reason or "")[:300] or None,
    )
    session.add(entry)
    return entry


def search(session: Session, library: Library, query: str, limit: int = 20) -> list[Subject]:
    """People whose address or card number is the query or starts with it (never all)."""
    query = query.strip().lower()
    if len(query) < 3:
        return []
    pattern = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return list(
        session.scalars(
            select(Subject)
            .where(
                Subject.library_id == library.id,
                Subject.email.like(pattern, escape="\\")
                | Subject.card_number.like(pattern, escape="\\"),
            )
            .order_by(Subject.email)
            .limit(limit)
        )
    )
