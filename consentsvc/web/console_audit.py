"""The audit log (/admin/audit) for the privacy officer: who did what to whom, in staff
words (web/audit_words.py), filtered by staff member, person, action and dates, a page at a
time, and the same entries as CSV (/admin/audit.csv)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Response, g, redirect, render_template, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import Select, func, select

from .. import ledger
from ..extensions import db
from ..models import ApiClient, AuditEntry, StaffUser, Subject, WebhookEndpoint
from .admin import PRIVACY, ROLE_LABELS, bp, roles
from .audit_words import NAMES, detail_text, numbered, person_label, reason_label, sentence
from .forms import as_id
from .labels import purpose_title
from .spreadsheet import cell

PER_PAGE = 100
CSV_MAX = 10_000
# Far enough ahead that a "to" date is never refused for lying in the future.
NO_LIMIT = datetime(9999, 1, 1, tzinfo=UTC)
FILTER_ERRORS = {
    "staff": _l("Choose a staff member from the list."),
    "subject": _l("This person is not in this library's records."),
    "person": _l("No person with this e-mail address is known in this library."),
    "action": _l("Choose an action from the list."),
    "from": _l("Give the start date as dd-mm-yyyy, for example 03-03-2026."),
    "to": _l("Give the end date as dd-mm-yyyy, for example 03-03-2026."),
    "order": _l("The start date is after the end date; the dates are not used."),
    "page": _l("There is no such page; the first page is shown."),
}


@dataclass
class Filters:
    """What the log is narrowed to; `errors` names the parameters that were not used."""

    staff: StaffUser | None = None
    subject: Subject | None = None
    action: str = ""
    start: datetime | None = None
    end: datetime | None = None
    page: int = 1
    typed: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def query_args(self) -> dict[str, str]:
        """The parameters that were used, for the CSV link and the pages."""
        args = {k: v for k, v in self.typed.items() if v and k not in self.errors}
        if "order" in self.errors:
            args.pop("from", None)
            args.pop("to", None)
        args.pop("page", None)
        if self.subject is not None:
            args.pop("person", None)
            args["subject"] = str(self.subject.id)
        return args


@dataclass
class Row:
    at: datetime
    staff: str
    sentence: str
    linked: str  # the sentence as Markup, the person a link to their page
    person: str | None
    subject_id: int | None
    reason_label: str
    reason: str | None
    detail: str | None


@bp.get("/audit")
@roles(*PRIVACY)
def audit_log() -> str | Response:
    """Who looked at or changed what, newest first; filtered by who, whom, what and when."""
    filters = _filters()
    if request.args.get("person") and filters.subject is not None:
        # The typed address leaves the address bar (and the browser's history) at once:
        # from here the person is their number, as on the link from their page.
        return redirect(url_for(".audit_log", **filters.query_args()), 303)
    query = _query(filters)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // PER_PAGE))
    if filters.page > pages:
        filters.page = 1
        filters.errors["page"] = str(FILTER_ERRORS["page"])
    entries = db.session.scalars(
        query.order_by(AuditEntry.id.desc()).offset((filters.page - 1) * PER_PAGE).limit(PER_PAGE)
    ).all()
    args = filters.query_args()
    return render_template(
        "admin/audit.html", rows=_rows(entries), filters=filters, colleagues=_staff_in_log(),
        actions=sorted(NAMES.items(), key=lambda item: str(item[1])),
        total=total, page=filters.page, pages=pages, per_page=PER_PAGE, csv_max=CSV_MAX,
        first=(filters.page - 1) * PER_PAGE + 1 if entries else 0,
        last=(filters.page - 1) * PER_PAGE + len(entries),
        csv_url=url_for(".audit_csv", **args),
        page_url=lambda number: url_for(".audit_log", **args, page=number),
        person_label=person_label,
        everyone_url=url_for(".audit_log", **{k: v for k, v in args.items() if k != "subject"}),
    )  # fmt: skip


@bp.get("/audit.csv")
@roles(*PRIVACY)
def audit_csv() -> Response:
    """The filtered entries as a spreadsheet takes them, in the same words (newest first)."""
    filters = _filters()
    entries = db.session.scalars(
        _query(filters).order_by(AuditEntry.id.desc()).limit(CSV_MAX)
    ).all()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [_("Time"), _("Staff member"), _("What happened"), _("Person"), _("Reason"), _("Details")]
    )
    for row in _rows(entries):
        reason = f"{row.reason_label}: {row.reason}" if row.reason else ""
        cells = [
            format_datetime(row.at, "yyyy-MM-dd HH:mm"), row.staff, row.sentence,
            row.person or "", reason, row.detail or "",
        ]  # fmt: skip
        writer.writerow([cell(c) for c in cells])
    words = _("audit-log")  # a file name: letters and hyphens only
    name = f"{g.library.slug}-{words}.csv"
    return Response(
        out.getvalue(), mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )  # fmt: skip


def _filters() -> Filters:
    """The GET parameters, checked; one that is not right is named and not used."""
    args = request.args
    typed = {
        k: args.get(k, "").strip()[:254]
        for k in ("staff", "subject", "person", "action", "from", "to", "page")
    }
    filters = Filters(typed=typed)
    errors = filters.errors
    if typed["staff"]:
        number = as_id(typed["staff"])
        filters.staff = next((s for s in _staff_in_log() if s.id == number), None)
        if filters.staff is None:
            errors["staff"] = str(FILTER_ERRORS["staff"])
    # A typed address wins over the person the page was opened for (a hidden field).
    if typed["person"]:
        found = ledger.find_subject(db.session, g.library, typed["person"])
        if found is None:
            errors["person"] = str(FILTER_ERRORS["person"])
        else:
            filters.subject = found
    elif typed["subject"]:
        number = as_id(typed["subject"])
        found = db.session.get(Subject, number) if number else None
        if found is None or found.library_id != g.library.id:
            errors["subject"] = str(FILTER_ERRORS["subject"])
        else:
            filters.subject = found
    if typed["action"]:
        if typed["action"] in NAMES:
            filters.action = typed["action"]
        else:
            errors["action"] = str(FILTER_ERRORS["action"])
    for key in ("from", "to"):
        if typed[key]:
            try:
                moment = ledger.read_moment(typed[key], now=NO_LIMIT)
            except ledger.InvalidMoment:
                errors[key] = str(FILTER_ERRORS[key])
                continue
            if key == "from":
                filters.start = moment.start.astimezone(UTC)
            else:
                filters.end = moment.until.astimezone(UTC)
    if filters.start and filters.end and filters.start >= filters.end:
        filters.start = filters.end = None
        errors["order"] = str(FILTER_ERRORS["order"])
    if typed["page"]:
        number = as_id(typed["page"])
        if number is None:
            errors["page"] = str(FILTER_ERRORS["page"])
        else:
            filters.page = number
    return filters


def _query(filters: Filters) -> Select[tuple[AuditEntry]]:
    query = select(AuditEntry).where(AuditEntry.library_id == g.library.id)
    if filters.staff is not None:
        query = query.where(AuditEntry.staff_id == filters.staff.id)
    if filters.subject is not None:
        query = query.where(AuditEntry.subject_id == filters.subject.id)
    if filters.action:
        query = query.where(AuditEntry.action == filters.action)
    if filters.start is not None:
        query = query.where(AuditEntry.at >= filters.start)
    if filters.end is not None:
        query = query.where(AuditEntry.at < filters.end)
    return query


def _staff_in_log() -> list[StaffUser]:
    """Everyone with an entry in this library's log (admins of other libraries too)."""
    if "audit_staff" not in g:
        in_log = select(AuditEntry.staff_id).where(AuditEntry.library_id == g.library.id)
        g.audit_staff = list(
            db.session.scalars(
                select(StaffUser)
                .where(StaffUser.id.in_(in_log.distinct()))
                .order_by(StaffUser.name)
            )
        )
    return g.audit_staff  # type: ignore[no-any-return]


def _rows(entries: Any) -> list[Row]:
    """The entries as sentences; the people they are about read in one query."""
    ids = {e.subject_id for e in entries if e.subject_id}
    people = {
        p.id: p for p in db.session.scalars(select(Subject).where(Subject.id.in_(ids)))
    } if ids else {}  # fmt: skip
    titles = {p.code: purpose_title(p) for p in g.library.purposes}
    names = _names([numbered(e.detail) for e in entries])
    rows = []
    for entry in entries:
        about = entry.subject_id
        person = person_label(people.get(about)) if about else None
        row = Row(
            at=entry.at, staff=entry.staff.name,
            sentence=sentence(entry.action, entry.staff.name, person),
            linked=sentence(entry.action, entry.staff.name, _link(about, person, people)),
            person=person, subject_id=about if about in people else None,
            reason_label=reason_label(entry.action), reason=entry.reason,
            detail=detail_text(entry.detail, titles, names),
        )  # fmt: skip
        rows.append(row)
    return rows


def _names(mentioned: list[tuple[str, int] | None]) -> dict[tuple[str, int], str]:
    """The names of the staff accounts, API keys and webhooks that details mention by number;
    the staff member with their role in words, keys and webhooks of this library only."""
    wanted: dict[str, set[int]] = {"staff": set(), "client": set(), "endpoint": set()}
    for kind, number in filter(None, mentioned):
        wanted[kind].add(number)
    names: dict[tuple[str, int], str] = {}
    if wanted["staff"]:
        for user in db.session.scalars(select(StaffUser).where(StaffUser.id.in_(wanted["staff"]))):
            role = ROLE_LABELS.get(user.role, user.role)
            names["staff", user.id] = f"{user.name} ({role})"
    if wanted["client"]:
        clients = select(ApiClient).where(
            ApiClient.id.in_(wanted["client"]), ApiClient.library_id == g.library.id
        )
        names.update((("client", c.id), c.name) for c in db.session.scalars(clients))
    if wanted["endpoint"]:
        endpoints = select(WebhookEndpoint).where(
            WebhookEndpoint.id.in_(wanted["endpoint"]), WebhookEndpoint.library_id == g.library.id
        )
        names.update((("endpoint", e.id), e.url) for e in db.session.scalars(endpoints))
    return names


def _link(about: int | None, person: str | None, people: dict[int, Subject]) -> Markup | None:
    if about is None or person is None:
        return None
    if about not in people:
        return Markup.escape(person)
    href = url_for(".subject", subject_id=about)
    return Markup('<a href="{}">{}</a>').format(href, person)
