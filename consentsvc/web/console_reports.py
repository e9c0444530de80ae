"""The console's reports (/admin/reports): a library's figures as charts drawn here as SVG
(pygal, no script), each with its numbers as a table beside it and as CSV. Privacy officers
and admins; aggregates only (reports.py)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import sys
from dataclasses import dataclass
from datetime import date

import pygal
from flask import Response, abort, g, render_template
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from pygal.style import Style

from .. import reports
from ..database import reading_only
from ..extensions import db
from ..models import LegalBasis, StaffRole, local_today
from .admin import bp, roles
from .labels import purpose_title
from .spreadsheet import cell

SERIES_LABELS = {
    "signups": _l("Sign-ups"),
    "confirmations": _l("Confirmed by mail"),
    "one_click": _l("One click in the mail program"),
    "unsubscribe_page": _l("Unsubscribe link"),
    "preference_centre": _l("Mail settings page"),
    "complaint": _l("Spam complaint"),
    "processor": _l("Reported by the mailing service"),
    "staff": _l("Staff"),
    "retention": _l("Retention period over"),
    "other": _l("Other"),
}
REPORTS = {
    "consent": _l("People who gave consent, at the end of each month"),
    "signups": _l("Newsletter sign-ups and confirmations (double opt-in)"),
    "withdrawals": _l("Withdrawals and objections, by how they came in"),
    "new": _l("Consents given per month"),
    "suppressions": _l("Addresses never mailed again, by reason"),
}
# Every reason the ledger writes (ledger.suppress: the API and providers, erasure, imports).
REASON_LABELS = {
    "hard_bounce": _l("Address does not exist (hard bounce)"),
    "complaint": _l("Spam complaint"),
    "unsubscribed": _l("Unsubscribed in an imported list"),
    "erased": _l("Person erased (kept only as a keyed hash)"),
}
# The console's own colours, dark enough for text beside them; never fetched from anywhere.
CHART_STYLE = Style(
    background="white", plot_background="white", foreground="#1a1a1a",
    foreground_strong="#1a1a1a", foreground_subtle="#555555", font_family="sans-serif",
    colors=("#1f4e79", "#c0504d", "#4f7a28", "#7a1f5c", "#b36b00", "#00666e", "#555555"),
)  # fmt: skip
# pygal puts an import finder for its map plugins (pygal.maps.*) on sys.meta_path. No map is
# drawn here, and the finder has only the old find_module API, for which Python warns at
# every later import that reaches it: take it off again.
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, pygal.PluginImportFixer)]
SCRIPT = re.compile(r"<script\b.*?</script>", re.S)
NONE = "'none'"
STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S)


@dataclass(frozen=True)
class Shown:
    key: str
    title: str
    table: reports.Table
    labels: list[str]  # one per series, in the staff member's language
    kind: str  # "line", "bar", "stacked", "horizontal"


@bp.get("/reports")
@roles(StaffRole.ADMIN, StaffRole.PRIVACY_OFFICER)
def reports_overview() -> str:
    """Every report of the library in the console's view: chart, table, CSV."""
    return render_template("admin/reports.html", shown=_all())


@bp.get("/reports/<report>.svg")
@roles(StaffRole.ADMIN, StaffRole.PRIVACY_OFFICER)
def report_chart(report: str) -> Response:
    """One report's chart, as an image of its own."""
    svg = _chart(_one(report))
    # Its own style sheet, allowed by its hash; nothing else loads or runs.
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()}'"
        for css in STYLE.findall(svg)
    )
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src {hashes or NONE}; frame-ancestors 'none'"
    )
    return response


@bp.get("/reports/<report>.csv")
@roles(StaffRole.ADMIN, StaffRole.PRIVACY_OFFICER)
def report_csv(report: str) -> Response:
    """One report's numbers, as a spreadsheet takes them."""
    shown = _one(report)
    out = io.StringIO()
    writer = csv.writer(out)
    heading = [_("Month") if shown.key != "suppressions" else _("Reason"), *shown.labels]
    # Purpose titles are typed by admins: no cell may run as a formula.
    for row in [heading, *shown.table.rows()]:
        writer.writerow([cell(c) for c in row])
    name = f"{g.library.slug}-{shown.key}.csv"
    return Response(
        out.getvalue(), mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )  # fmt: skip


def _one(key: str) -> Shown:
    if key not in REPORTS:
        abort(404)
    return _build({key})[0]


def _all() -> list[Shown]:
    return _build(set(REPORTS))


def _build(keys: set[str]) -> list[Shown]:
    """The reports asked for, each query made only if one of them needs it: a chart image
    or a CSV asks for one, and on a million people each query takes a second or two."""
    library = g.library
    months = reports.last_months(local_today())
    # The purposes a person consents to (legitimate interest has no consent to count).
    given = [p for p in library.purposes if p.legal_basis == LegalBasis.CONSENT]
    purposes = {p.id: purpose_title(p) for p in given}
    newsletter = next((p.id for p in library.purposes if p.code == "newsletter"), 0)
    with reading_only():
        events = (
            reports.event_counts(db.session, library.id, months)
            if keys & {"signups", "withdrawals", "new"}
            else []
        )
        consent = (
            reports.people_with_consent(db.session, library.id, months, purposes)
            if "consent" in keys
            else None
        )
        suppressed = (
            reports.suppressions_by_reason(db.session, library.id) if "suppressions" in keys else {}
        )
        db.session.rollback()
    shown = []
    if consent is not None:
        shown.append(Shown("consent", str(REPORTS["consent"]), consent, consent.series, "line"))
    if "signups" in keys:
        table = reports.signups_and_confirmations(events, months, newsletter)
        labels = [str(SERIES_LABELS["signups"]), str(SERIES_LABELS["confirmations"])]
        shown.append(Shown("signups", str(REPORTS["signups"]), table, labels, "bar"))
    if "withdrawals" in keys:
        table = reports.withdrawals_by_channel(events, months)
        labels = [str(SERIES_LABELS[s]) for s in table.series]
        shown.append(Shown("withdrawals", str(REPORTS["withdrawals"]), table, labels, "stacked"))
    if "new" in keys:
        table = reports.new_consents(events, months, purposes)
        shown.append(Shown("new", str(REPORTS["new"]), table, table.series, "bar"))
    if "suppressions" in keys:
        reasons = list(suppressed)
        column = str(_("Addresses"))
        table = reports.Table(
            [str(REASON_LABELS.get(r, r)) for r in reasons], [column],
            {column: [suppressed[r] for r in reasons]},
        )  # fmt: skip
        shown.append(
            Shown("suppressions", str(REPORTS["suppressions"]), table, [column], "horizontal")
        )
    return shown


@bp.app_template_filter()
def month_name(month: str) -> str:
    """'2026-10' as staff read it ("okt 2026"); the CSV keeps the sortable form."""
    year, number = month.split("-")
    return format_date(date(int(year), int(number), 1), "MMM yyyy")


def _chart(shown: Shown) -> str:
    kinds = {
        "line": pygal.Line, "bar": pygal.Bar, "stacked": pygal.StackedBar,
        "horizontal": pygal.HorizontalBar,
    }  # fmt: skip
    chart = kinds[shown.kind](
        style=CHART_STYLE, js=[], disable_xml_declaration=False, width=800, height=360,
        legend_at_bottom=True, show_y_guides=True, x_label_rotation=0, truncate_legend=-1,
        print_values=False, margin=16, no_data_text=_("Nothing to count yet."),
    )  # fmt: skip
    chart.x_labels = (
        shown.table.months if shown.kind == "horizontal" else
        [month_name(m) for m in shown.table.months]
    )  # fmt: skip
    for series, label in zip(shown.table.series, shown.labels, strict=True):
        chart.add(label, shown.table.values[series])
    # pygal writes its configuration as a script element even without scripts to load; an
    # image runs none, and none is sent. Its one style attribute (the hidden tooltip) becomes
    # the attribute SVG has for it, so the policy needs no inline styles.
    svg = SCRIPT.sub("", chart.render(is_unicode=True))
    return svg.replace(' style="opacity: 0"', ' opacity="0"')
