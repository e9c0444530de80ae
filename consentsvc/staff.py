"""Staff accounts and the audit trail of what staff do. Knows no request and no HTML."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import struct
import time
from datetime import datetime, timedelta
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import ledger
from .ledger import InvalidEmail, normalise_email
from .models import AuditEntry, AuditNote, Library, StaffRole, StaffUser, Subject, utcnow

MAX_FAILURES = 5
LOCK = timedelta(minutes=15)
MIN_PASSWORD = 12
MIN_QUERY = 3  # searching on fewer characters would come close to listing everyone
_hasher = PasswordHasher()


class StaffError(ValueError):
    """Refused input; `code` names the reason for the console's translated message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# Who may give a role, and close the account of someone who has it. The privacy officer
# watches what admins do (the audit log is theirs), so an admin can neither make one (and
# then export or erase as them) nor close one; and a privacy officer cannot make an admin.
# The command line (`by` None) may do anything: it is how a library gets its first privacy
# officer.
GIVEN_BY = {
    StaffRole.DESK: frozenset({StaffRole.ADMIN}),
    StaffRole.ADMIN: frozenset({StaffRole.ADMIN}),
    StaffRole.PRIVACY_OFFICER: frozenset({StaffRole.PRIVACY_OFFICER}),
}


def may_give(giver: StaffUser | None, role: str) -> bool:
    """Whether this staff member (None: the command line) may give or take away the role."""
    return giver is None or giver.role in GIVEN_BY.get(role, ())


def roles_to_give(giver: StaffUser) -> list[str]:
    """The roles this staff member may give, in the usual order."""
    return [role for role in StaffRole.ALL if may_give(giver, role)]


def create(
    session: Session,
    library: Library,
    email: str,
    name: str,
    role: str,
    password: str,
    *,
    by: StaffUser | None = None,
) -> StaffUser:
    """Add a staff member, given by `by` (None: the command line); argon2-hashed password."""
    if role not in StaffRole.ALL:
        raise StaffError("role", f"role must be one of {', '.join(StaffRole.ALL)}")
    if not may_give(by, role):
        raise StaffError("give", f"a {by.role if by else '-'} cannot give the role {role}")
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
    Every attempt costs one argon2 verification, against a stand-in hash when there is no
    open account: an unknown, locked or closed account must not answer sooner than a wrong
    password, or the timing tells which accounts exist.
    """
    try:
        email = normalise_email(email)
    except InvalidEmail:
        return None
    # The row is locked, so parallel guesses cannot lose a count of failures.
    user = session.scalar(select(StaffUser).where(StaffUser.email == email).with_for_update())
    now = utcnow()
    open_account = (
        user is not None and user.active and not (user.locked_until and user.locked_until > now)
    )
    try:
        _hasher.verify(user.password_hash if open_account else _stand_in_hash(), password)
    except (VerificationError, InvalidHashError):
        if open_account:
            _count_failure(user, now)
        return None
    if not open_account:
        return None  # the stand-in's password, should anyone ever find it, opens nothing
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    if user.totp_secret is None:
        _logged_in(user, now)
    # else: failures keep counting until the code is right too, so a known password does not
    # reset the lock-out between guesses of the code.
    return user


# The argon2 hash of a random password that was thrown away at once: verifying against it
# costs what verifying a real password does. Kept as text, so no process spends a hash on
# making one; only if the hasher's parameters ever change is a fresh one made (once).
_STAND_IN = (
    "$argon2id$v=19$m=65536,t=3,p=4$"
    "0K0cxAdcwb2PftvFM67J6g$DZc5jkrWJDwa5jyQi55muQIDNGhY1c8+dxZRAIXTCCc"
)


@functools.cache
def _stand_in_hash() -> str:
    """The stand-in hash, with the same parameters as the hashes of real passwords."""
    if _hasher.check_needs_rehash(_STAND_IN):
        return _hasher.hash(secrets.token_urlsafe(32))
    return _STAND_IN


def audit(
    session: Session,
    staff: StaffUser,
    action: str,
    *,
    library: Library | None = None,
    subject: Subject | None = None,
    detail: str | None = None,
    reason: str | None = None,
) -> AuditEntry:
    """Write down who did what; in the person's library, else the one worked in."""
    if subject is not None:
        library_id = subject.library_id
    else:
        library_id = library.id if library is not None else staff.library_id
    entry = AuditEntry(library_id=library_id, staff_id=staff.id, action=action, at=utcnow())
    note = None
    detail, reason = (detail or "")[:300] or None, (reason or "")[:300] or None
    if subject is not None or detail or reason:
        note = AuditNote(subject_id=subject.id if subject else None, detail=detail, reason=reason)
        entry.note = note
    ledger.chain_audit(session, entry, note, session.get(Library, library_id).slug)
    session.add(entry)
    return entry


def _logged_in(user: StaffUser, now: datetime) -> None:
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now


def _count_failure(user: StaffUser, now: datetime) -> None:
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILURES:
        user.locked_until = now + LOCK
        user.failed_logins = 0


def search(session: Session, library: Library, query: str, limit: int = 20) -> list[Subject]:
    """People whose address or card number is the query or starts with it (never all)."""
    query = query.strip().lower()
    if len(query) < MIN_QUERY:
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


def password_is(user: StaffUser, password: str) -> bool:
    """Whether this is the staff member's password (asked again before sensitive changes)."""
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def change_password(user: StaffUser, current: str, new: str) -> None:
    """Set a new password after checking the current one."""
    if not password_is(user, current):
        raise StaffError("current", "the current password is wrong")
    if len(new) < MIN_PASSWORD:
        raise StaffError("password", f"a password needs at least {MIN_PASSWORD} characters")
    if new == current:
        raise StaffError("same", "the new password is the same as the old one")
    user.password_hash = _hasher.hash(new)
    user.password_changed_at = utcnow()


def reset_password(user: StaffUser, new: str) -> None:
    """Set a password without the current one (the command line: the demo's login).

    Sessions begun with the old one end, and a lock-out from wrong guesses is lifted.
    """
    if len(new) < MIN_PASSWORD:
        raise StaffError("password", f"a password needs at least {MIN_PASSWORD} characters")
    user.password_hash = _hasher.hash(new)
    user.password_changed_at = utcnow()
    user.locked_until = None
    user.failed_logins = 0
    end_sessions(user)


def end_sessions(user: StaffUser) -> None:
    """End every session of this staff member, on every device (at logout)."""
    user.session_generation = (user.session_generation or 0) + 1


def session_is_current(
    started: object, last_seen: object, now: float, *, lifetime: float, idle: float
) -> bool:
    """Whether a session begun at `started` and last used at `last_seen` may go on at `now`.

    The end is absolute: using a session does not extend its lifetime, only its idle time.
    """
    if not isinstance(started, int | float) or not isinstance(last_seen, int | float):
        return False
    return now - started < lifetime and now - last_seen < idle


def check_close(user: StaffUser, *, by: StaffUser) -> None:
    """Raise StaffError unless `by` may close this account: who may give its role, not self."""
    if user.id == by.id:
        raise StaffError("own", "you cannot close your own account")
    if not may_give(by, user.role):
        raise StaffError("close", f"a {by.role} cannot close the account of a {user.role}")


def close(user: StaffUser, *, by: StaffUser) -> None:
    """Close an account at once (its audit trail stays) and end its sessions."""
    check_close(user, by=by)
    user.active = False
    end_sessions(user)


def may_work_in(user: StaffUser, library_id: int) -> bool:
    """Whether the staff member may see and change this library's data."""
    return any(lib.id == library_id for lib in user.libraries)


def add_library(user: StaffUser, library: Library) -> None:
    """Let an admin look after one more library."""
    if user.role != StaffRole.ADMIN:
        raise StaffError("role", "only admins can look after several libraries")
    if not may_work_in(user, library.id):
        user.other_libraries.append(library)


# Second step at login: time-based one-time codes (RFC 6238 with SHA-1, 6 digits, 30 s),
# which every authenticator app reads from an otpauth:// address.
TOTP_STEP = 30
TOTP_DIGITS = 6


def new_totp_secret() -> str:
    """A fresh random secret in base32, as authenticator apps expect it."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def totp_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// address an authenticator app takes (as text or as a QR code)."""
    label = quote(f"{issuer}:{account}", safe="")
    return f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer, safe='')}"


def totp_code(secret: str, step: int) -> str:
    """The code for one 30-second step (RFC 4226 dynamic truncation)."""
    key = base64.b32decode(secret)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**TOTP_DIGITS).zfill(TOTP_DIGITS)


def totp_matches(
    secret: str, code: str, last_step: int | None, now: float | None = None
) -> int | None:
    """The step the code belongs to (one step of clock drift either way), or None.

    A step at or before `last_step` is refused, so a code seen over a shoulder cannot be used
    a second time.
    """
    code = "".join(code.split())
    if len(code) != TOTP_DIGITS or not (code.isascii() and code.isdigit()):
        return None
    current = int((time.time() if now is None else now) // TOTP_STEP)
    for step in (current - 1, current, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp_code(secret, step), code):
            return step
    return None


def check_second_step(session: Session, user: StaffUser, code: str) -> bool:
    """Check a login code; wrong codes count towards the lock-out like wrong passwords."""
    # Locked and reloaded: parallel guesses neither lose a failure nor use one code twice.
    session.refresh(user, with_for_update=True)
    now = utcnow()
    if (
        not user.active
        or user.totp_secret is None
        or (user.locked_until and user.locked_until > now)
    ):
        return False
    step = totp_matches(user.totp_secret, code, user.totp_last_step)
    if step is None:
        _count_failure(user, now)
        return False
    user.totp_last_step = step
    _logged_in(user, now)
    return True
