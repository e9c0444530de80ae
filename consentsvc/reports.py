"""A library's figures for its privacy officer and admins: aggregates only, counted by the
database (a few GROUP BY queries, whatever the number of people), never a person.

Each report is a table of months (the last twelve, in UTC) by series; web/console_reports.py
draws it as a chart and offers it as CSV.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from sqlalchemy import text
from sqlalchemy.orm import Session

from .ledger.events import Action, Channel

MONTHS = 12

# How a withdrawal or objection came in, in the groups staff ask about.
WITHDRAWAL_GROUPS = {
    Channel.ONE_CLICK: "one_click",
    Channel.UNSUBSCRIBE_PAGE: "unsubscribe_page",
    Channel.PREFERENCE_CENTRE: "preference_centre",
    Channel.FAMILY: "preference_centre",
    Channel.PROVIDER_COMPLAINT: "complaint",
    Channel.PROVIDER_UNSUBSCRIBE: "processor",
    Channel.PROVIDER_BOUNCE: "processor",
    Channel.STAFF: "staff",
    Channel.RETENTION: "retention",
}
ENDS = (Action.WITHDRAWN, Action.OBJECTED)


@dataclass(frozen=True)
class Table:
    """Rows are months ('2026-12'), columns the series; every cell a count."""

    months: list[str]
    series: list[str]
    values: dict[str, list[int]]  # series -> one count per month

    def rows(self) -> list[list[object]]:
        return [
            [month, *(self.values[s][i] for s in self.series)]
            for i, month in enumerate(self.months)
        ]


def last_months(today: date, count: int = MONTHS) -> list[str]:
    """'YYYY-MM' of this month and the count - 1 before it, oldest first."""
    year, month = today.year, today.month
    months = []
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


def _month(session: Session, column: str) -> str:
    if session.get_bind().dialect.name == "postgresql":
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM')"
    return f"substr({column}, 1, 7)"


def _table(months: list[str], counts: dict[str, dict[str, int]], series: list[str]) -> Table:
    return Table(months, series, {s: [counts.get(s, {}).get(m, 0) for m in months] for s in series})


def event_counts(
    session: Session, library_id: int, months: list[str]
) -> list[tuple[str, int, str, str, int]]:
    """(month, purpose id, action, channel, count) of the library's events in these months."""
    month = _month(session, "occurred_at")
    query = text(
        f"SELECT {month} AS m, purpose_id, action, channel, count(*) FROM consent_event"  # noqa: S608 - no input in it  # nosec B608
        " WHERE library_id = :library AND occurred_at >= :since"
        " GROUP BY m, purpose_id, action, channel"
    )
    since = f"{months[0]}-01 00:00:00"
    if session.get_bind().dialect.name == "postgresql":
        since = f"{months[0]}-01T00:00:00+00:00"
    rows = session.execute(query, {"library": library_id, "since": since})
    return [(m, p, a, c, n) for m, p, a, c, n in rows if m in months]


def signups_and_confirmations(
    events: list[tuple[str, int, str, str, int]], months: list[str], purpose_id: int
) -> Table:
    """Requests for a purpose, and the confirmations by mail link (double opt-in)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for month, purpose, action, channel, n in events:
        if purpose != purpose_id:
            continue
        if action == Action.REQUESTED:
            counts["signups"][month] += n
        elif action == Action.GRANTED and channel == Channel.EMAIL_LINK:
            counts["confirmations"][month] += n
    return _table(months, counts, ["signups", "confirmations"])


def withdrawals_by_channel(
    events: list[tuple[str, int, str, str, int]], months: list[str]
) -> Table:
    """Withdrawals and objections of every purpose, by how they came in."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for month, _purpose, action, channel, n in events:
        if action in ENDS:
            counts[WITHDRAWAL_GROUPS.get(channel, "other")][month] += n
    groups = list(dict.fromkeys([*WITHDRAWAL_GROUPS.values(), "other"]))
    return _table(months, counts, [g for g in groups if g in counts])


def new_consents(
    events: list[tuple[str, int, str, str, int]], months: list[str], purposes: dict[int, str]
) -> Table:
    """Consents given per month, per purpose (purposes: id -> code)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for month, purpose, action, _channel, n in events:
        if action == Action.GRANTED and purpose in purposes:
            counts[purposes[purpose]][month] += n
    return _table(months, counts, list(purposes.values()))


def people_with_consent(
    session: Session, library_id: int, months: list[str], purposes: dict[int, str]
) -> Table:
    """How many people had given consent at the end of each month, per purpose.

    Each event that starts a consent counts +1 in its month and each that ends one -1 (by
    the event before it of the same person and purpose); the counts before the first
    month are the starting point. The last month's figure is the consent held now.
    """
    month = _month(session, "occurred_at")
    query = text(
        f"SELECT CASE WHEN m < :first THEN '' ELSE m END AS bucket, purpose_id, sum(delta)"  # noqa: S608 - no input in it  # nosec B608
        f" FROM (SELECT {month} AS m, purpose_id,"
        "  CASE WHEN action = 'granted' AND coalesce(previous, '') <> 'granted' THEN 1"
        "       WHEN action <> 'granted' AND previous = 'granted' THEN -1 ELSE 0 END AS delta"
        "  FROM (SELECT occurred_at, purpose_id, action, LAG(action) OVER"
        "        (PARTITION BY subject_id, purpose_id ORDER BY id) AS previous"
        "        FROM consent_event WHERE library_id = :library) AS e) AS d"
        " GROUP BY bucket, purpose_id"
    )
    change: dict[int, dict[str, int]] = defaultdict(dict)
    for bucket, purpose, total in session.execute(
        query, {"library": library_id, "first": months[0]}
    ):
        change[purpose][bucket] = int(total)
    values = {}
    for purpose, code in purposes.items():
        running = change[purpose].get("", 0)
        column = []
        for m in months:
            running += change[purpose].get(m, 0)
            column.append(running)
        values[code] = column
    return Table(months, list(purposes.values()), values)


def suppressions_by_reason(session: Session, library_id: int) -> dict[str, int]:
    """Addresses never to be mailed again, per reason (hard bounce, complaint, …)."""
    rows = session.execute(
        text(
            "SELECT reason, count(*) FROM suppression WHERE library_id = :library"
            " GROUP BY reason ORDER BY count(*) DESC, reason"
        ),
        {"library": library_id},
    )
    return {reason: int(n) for reason, n in rows}
