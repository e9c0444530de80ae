"""Reading a subscriber list exported from an old system: Mailchimp's audience export,
Laposta's export, or a plain CSV with the columns docs/import.md names.

The format is told from the header row; the delimiter (comma, semicolon or tab) from the
header line; UTF-8 with or without a byte-order mark, or Windows-1252 as older Excel saves
it; Excel's quoting (doubled quotes, line breaks inside quotes) through the csv module.

This module only reads: it knows no database and keeps no file. Each row comes out as a
`ListedPerson` with its line number, or as a `RefusedRow` saying why not. No address is
ever put in a refusal, so a report can be printed or shown without showing anyone.
"""

from __future__ import annotations

import csv
import hashlib
import io
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from .ledger import InvalidEmail, Listed, ListedPerson, SourceFile, normalise_email

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


class Refusal:
    """Why a row is not imported (the codes a report and the console translate)."""

    INVALID_ADDRESS = "invalid_address"
    DUPLICATE = "duplicate"
    UNKNOWN_COLUMN = "unknown_column"
    DATE_UNREADABLE = "date_unreadable"
    IP_UNREADABLE = "ip_unreadable"
    STATUS_UNREADABLE = "status_unreadable"
    LANGUAGE_UNREADABLE = "language_unreadable"


class FileRefused(ValueError):
    """The file as a whole cannot be read; `code` names why, `detail` what (no addresses)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class RefusedRow:
    line: int
    reason: str


@dataclass
class SubscriberFile:
    name: str
    sha256: str
    file_format: str
    people: list[ListedPerson] = field(default_factory=list)
    refused: list[RefusedRow] = field(default_factory=list)

    @property
    def source(self) -> SourceFile:
        return SourceFile(self.name, self.sha256, self.file_format)

    @property
    def rows(self) -> int:
        return len(self.people) + len(self.refused)


# How each format names its columns (compared case-insensitively, spaces trimmed).
# Mailchimp: the audience export's three files (subscribed, unsubscribed, cleaned) share
# these; the unsubscribed file adds UNSUB_TIME, the cleaned file CLEAN_TIME. Times are UTC,
# written "YYYY-MM-DD HH:MM:SS". Merge fields (First Name, ...) and the rest are ignored.
MAILCHIMP = {
    "email": "email address",
    "optin_time": "optin_time",
    "optin_ip": "optin_ip",
    "confirm_time": "confirm_time",
    "confirm_ip": "confirm_ip",
    "unsub_time": "unsub_time",
    "clean_time": "clean_time",
}
# Laposta: the member fields of its export and API (email, state, signup_date, ip, ...);
# state is active, unsubscribed, cleaned or deleted. Times are Dutch local time.
LAPOSTA = {
    "email": "email",
    "state": "state",
    "optin_time": "signup_date",
    "optin_ip": "ip",
    "modified": "modified",
}
LAPOSTA_MARKERS = {"state", "signup_date", "member_id"}
# The plain format: the columns this service documents, and nothing else.
PLAIN_COLUMNS = ("email", "optin_time", "optin_ip", "confirm_time", "confirm_ip", "status",
                 "language")  # fmt: skip
PLAIN_STATUS = {
    "subscribed": Listed.SUBSCRIBED,
    "active": Listed.SUBSCRIBED,
    "unsubscribed": Listed.UNSUBSCRIBED,
    "cleaned": Listed.CLEANED,
    "bounced": Listed.CLEANED,
}
LAPOSTA_STATE = {
    "active": Listed.SUBSCRIBED,
    "unsubscribed": Listed.UNSUBSCRIBED,
    "deleted": Listed.UNSUBSCRIBED,
    "cleaned": Listed.CLEANED,
}
LANGUAGES = ("nl", "en")
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%d-%m-%Y %H:%M:%S",
                 "%d-%m-%Y %H:%M", "%d-%m-%Y")  # fmt: skip


def read(data: bytes, name: str) -> SubscriberFile:
    """Read a whole export; raise FileRefused when it is no list we can read."""
    sha256 = hashlib.sha256(data).hexdigest()
    text = _decode(data)
    lines = io.StringIO(text, newline="")
    first = text.split("\n", 1)[0]
    if not first.strip():
        raise FileRefused("no_header")
    delimiter = max((";", ",", "\t"), key=first.count)
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True, strict=True)
    try:
        header = [cell.strip().lower() for cell in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise FileRefused("no_header") from exc
    file_format, columns = _columns(header)
    result = SubscriberFile(name=name[:200], sha256=sha256, file_format=file_format)
    seen: set[str] = set()
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # an empty line, as spreadsheets leave at the end
            outcome = _row(file_format, columns, header, cells, line)
            if isinstance(outcome, ListedPerson):
                if outcome.email in seen:
                    outcome = RefusedRow(line, Refusal.DUPLICATE)
                else:
                    seen.add(outcome.email)
            if isinstance(outcome, RefusedRow):
                result.refused.append(outcome)
            else:
                result.people.append(outcome)
    except csv.Error as exc:
        # An opened quote that never closes swallows the rest of the file.
        raise FileRefused("unreadable", f"line {reader.line_num}") from exc
    return result


def _decode(data: bytes) -> str:
    if not data.strip():
        raise FileRefused("empty")
    if b"\x00" in data[:4096]:
        # UTF-16 (Excel's "Unicode text") or no text at all.
        raise FileRefused("not_text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel on Windows saves "CSV" in the Windows code page.
        return data.decode("cp1252", errors="replace")


def _columns(header: list[str]) -> tuple[str, dict[str, int]]:
    """The format and where each known column is, from the header row."""
    where = {name: i for i, name in reversed(list(enumerate(header))) if name}
    if MAILCHIMP["email"] in where:
        return "mailchimp", {key: where[col] for key, col in MAILCHIMP.items() if col in where}
    if "email" in where and LAPOSTA_MARKERS & where.keys():
        return "laposta", {key: where[col] for key, col in LAPOSTA.items() if col in where}
    if "email" in where:
        unknown = [name for name in header if name not in PLAIN_COLUMNS]
        if unknown:
            raise FileRefused("unknown_columns", ", ".join(unknown)[:200])
        return "plain", {name: where[name] for name in PLAIN_COLUMNS if name in where}
    raise FileRefused("no_email_column")


def _row(
    file_format: str, columns: dict[str, int], header: list[str], cells: list[str], line: int
) -> ListedPerson | RefusedRow:
    if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
        # A value without a column: a delimiter inside an unquoted value, most likely.
        return RefusedRow(line, Refusal.UNKNOWN_COLUMN)

    def cell(key: str) -> str:
        index = columns.get(key)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    try:
        email = normalise_email(cell("email"))
    except InvalidEmail:
        return RefusedRow(line, Refusal.INVALID_ADDRESS)
    zone = UTC if file_format == "mailchimp" else AMSTERDAM
    try:
        times = {key: _time(cell(key), zone) for key in ("optin_time", "confirm_time")}
        left = None
        if file_format == "mailchimp":
            left = _time(cell("unsub_time"), zone) or _time(cell("clean_time"), zone)
    except ValueError:
        return RefusedRow(line, Refusal.DATE_UNREADABLE)
    try:
        ips = {key: _ip(cell(key)) for key in ("optin_ip", "confirm_ip")}
    except ValueError:
        return RefusedRow(line, Refusal.IP_UNREADABLE)
    listed = _listed(file_format, columns, cell)
    if listed is None:
        return RefusedRow(line, Refusal.STATUS_UNREADABLE)
    language = cell("language").lower() or None
    if language is not None and language not in LANGUAGES:
        return RefusedRow(line, Refusal.LANGUAGE_UNREADABLE)
    if file_format == "laposta" and listed != Listed.SUBSCRIBED:
        try:
            left = _time(cell("modified"), zone)
        except ValueError:
            return RefusedRow(line, Refusal.DATE_UNREADABLE)
    return ListedPerson(
        line=line, email=email, listed=listed, optin_time=times["optin_time"],
        optin_ip=ips["optin_ip"], confirm_time=times["confirm_time"],
        confirm_ip=ips["confirm_ip"], left_time=left, language=language,
    )  # fmt: skip


def _listed(file_format: str, columns: dict[str, int], value: Callable[[str], str]) -> str | None:
    if file_format == "mailchimp":
        # Mailchimp has no status column: which of its three files this is says it.
        if "clean_time" in columns:
            return Listed.CLEANED
        if "unsub_time" in columns:
            return Listed.UNSUBSCRIBED
        return Listed.SUBSCRIBED
    if file_format == "laposta":
        return LAPOSTA_STATE.get(value("state").lower()) if "state" in columns else None
    status = value("status").lower()
    return PLAIN_STATUS.get(status) if status else Listed.SUBSCRIBED


def _time(value: str, zone: tzinfo) -> datetime | None:
    """A time as the old system wrote it, in UTC; raise ValueError when unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        for pattern in _TIME_FORMATS:
            try:
                moment = datetime.strptime(value, pattern)
                break
            except ValueError:
                continue
        else:
            raise
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    moment = moment.astimezone(UTC)
    if moment.year < 1995 or moment > datetime.now(UTC):
        raise ValueError("not a time a list could have")
    return moment


def _ip(value: str) -> str | None:
    if not value:
        return None
    return str(ipaddress.ip_address(value))
