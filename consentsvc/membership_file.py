"""Reading the library system's nightly membership export (a CSV file).

The file has a header row naming four columns, in any order and any case:

    email;card_number;start;end

`end` may be empty (the membership runs). Semicolons or commas (as Excel writes them in
Dutch and English settings), UTF-8 with or without a byte-order mark, Excel's quoting
("" inside quotes). Dates are YYYY-MM-DD or DD-MM-YYYY (as Dutch exports write them).

This module only reads and checks: each row becomes a checked membership or a refusal
with its line number and reason. Storing is the ledger's (ledger/membership.py). No
address appears in a reason, so the report can be shown and kept anywhere.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

from .ledger import InvalidEmail, Membership, MembershipRefused, check_membership, normalise_email
from .ledger.membership import InvalidDate

COLUMNS = ("email", "card_number", "start", "end")
DUTCH_DATE = re.compile(r"([0-9]{1,2})-([0-9]{1,2})-([0-9]{4})")
ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")


class FileRefused(ValueError):
    """The file as a whole cannot be read (encoding, header); nothing was stored."""


@dataclass(frozen=True)
class Row:
    line: int
    email: str  # normalised
    membership: Membership


@dataclass(frozen=True)
class Refusal:
    line: int
    reason: str


@dataclass
class Parsed:
    rows: list[Row] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def parse(data: bytes, *, today: date | None = None) -> Parsed:
    """Every row of the file, checked; FileRefused if the file cannot be read at all."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileRefused(f"the file is not UTF-8 (line {line}); save it as CSV UTF-8") from None
    if "\x00" in text:
        raise FileRefused("the file holds NUL characters; it is not a CSV text file")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise FileRefused("the file is empty; it needs a header row") from None
    except csv.Error as exc:
        raise FileRefused(f"line 1 cannot be read: {exc}") from None
    positions = _columns(header)
    result = Parsed()
    seen_email: dict[str, int] = {}
    seen_card: dict[str, int] = {}
    for line, values in _rows(reader, result):
        if not any(v.strip() for v in values):
            continue  # an empty line, as spreadsheets leave at the end
        if len(values) != len(header):
            result.refused.append(
                Refusal(line, f"{len(values)} fields where the header has {len(header)}")
            )
            continue
        cell = {name: values[index].strip() for name, index in positions.items()}
        try:
            email = normalise_email(cell["email"])
        except InvalidEmail:
            result.refused.append(Refusal(line, "not a valid e-mail address"))
            continue
        try:
            start = _date(cell["start"], "start")
            end = _date(cell["end"], "end") if cell["end"] else None
            membership = check_membership(cell["card_number"], start, end, today=today)
        except MembershipRefused as exc:
            result.refused.append(Refusal(line, f"{exc.field}: {exc}"))
            continue
        if email in seen_email:
            result.refused.append(Refusal(line, f"the same address as line {seen_email[email]}"))
            continue
        if membership.card_number in seen_card:
            result.refused.append(
                Refusal(line, f"the same card number as line {seen_card[membership.card_number]}")
            )
            continue
        seen_email[email] = seen_card[membership.card_number] = line
        result.rows.append(Row(line, email, membership))
    return result


def _columns(header: list[str]) -> dict[str, int]:
    names = [name.strip().lower() for name in header]
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise FileRefused(
            f"unknown column(s) {', '.join(repr(n) for n in unknown)} in the header; "
            f"the columns are {', '.join(COLUMNS)}"
        )
    missing = [name for name in COLUMNS if name not in names]
    if missing:
        raise FileRefused(f"the header lacks {', '.join(missing)}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise FileRefused(f"the header names {', '.join(twice)} twice")
    return {name: names.index(name) for name in COLUMNS}


def _rows(reader: Iterator[list[str]], result: Parsed) -> Iterator[tuple[int, list[str]]]:
    """Rows with the line they start on (a quoted field may span lines)."""
    while True:
        line = reader.line_num + 1  # type: ignore[attr-defined]
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            result.refused.append(Refusal(line, f"cannot be read: {exc}"))
            continue
        yield line, values


def _date(text: str, name: str) -> date:
    """YYYY-MM-DD or DD-MM-YYYY; InvalidDate naming the column otherwise."""
    if match := DUTCH_DATE.fullmatch(text):
        day, month, year = (int(part) for part in match.groups())
    elif match := ISO_DATE.fullmatch(text):
        year, month, day = (int(part) for part in match.groups())
    else:
        raise InvalidDate(name, "write the date as YYYY-MM-DD or DD-MM-YYYY")
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidDate(name, "no such date") from None
