"""The console's navigation: which pages a staff member's role reaches, grouped so they fit
one row at desktop width, and which of them is the page shown (marked with aria-current)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from ..models import StaffRole
from .admin import bp

OFFICER, ADMIN = StaffRole.PRIVACY_OFFICER, StaffRole.ADMIN


@dataclass(frozen=True)
class Item:
    label: Any  # a lazy string, worded when the page is drawn
    endpoint: str
    roles: tuple[str, ...]
    # The other pages that count as this one: named in full, or (the forms and steps of an
    # area, such as the webhooks' log) by a word in their endpoint.
    pages: tuple[str, ...] = ()
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Link:
    label: str
    href: str
    current: bool


@dataclass(frozen=True)
class Group:
    label: str
    links: list[Link]

    @property
    def current(self) -> bool:
        return any(link.current for link in self.links)


ALL = StaffRole.ALL
# A person's page and its forms; the person is found through the search.
PERSON_PAGES = (
    "subject", "record_consent", "stop", "export", "export_copy", "erase", "correct_email",
    "restriction", "record_minor", "record_mandate",
)  # fmt: skip
MAIN = (
    Item(_l("Find a person"), "admin.search", ALL, pages=PERSON_PAGES),
    Item(_l("Mandates"), "admin.mandates_waiting", ALL, words=("mandate",)),
    Item(_l("Audit log"), "admin.audit_log", (OFFICER,), words=("audit_log",)),
    Item(_l("Consent on a date"), "admin.auditor", (OFFICER, ADMIN), words=("auditor", "receipt")),
    Item(_l("Reports"), "admin.reports_overview", (OFFICER, ADMIN), words=("report",)),
    Item(_l("Retention"), "admin.retention_overview", (OFFICER, ADMIN), words=("retention",)),
    Item(_l("Staff"), "admin.staff_members", (OFFICER, ADMIN), words=("staff", "access")),
)  # fmt: skip
# An administrator's settings, behind one entry so the row stays one row.
SETTINGS = (
    Item(_l("Library settings"), "admin.library_settings", (ADMIN,), words=("librar", "logo")),
    Item(_l("Purposes and texts"), "admin.purposes", (ADMIN,), words=("purpose", "text")),
    Item(_l("Privacy statement"), "admin.privacy_statement", (ADMIN,), words=("privacy",)),
    Item(_l("API keys"), "admin.api_clients", (ADMIN,), words=("client",)),
    Item(_l("Webhooks"), "admin.webhooks", (ADMIN,), words=("webhook",)),
    Item(_l("Import a list"), "admin.import_list", (ADMIN,), words=("import",)),
)  # fmt: skip


def _current(endpoint: str | None) -> Item | None:
    """The entry the page shown belongs to: by its own or a named page first, then by word."""
    if endpoint is None:
        return None
    name = endpoint.removeprefix("admin.")
    items = MAIN + SETTINGS
    for item in items:
        if endpoint == item.endpoint or name in item.pages:
            return item
    return next((item for item in items if any(word in name for word in item.words)), None)


def _links(items: tuple[Item, ...], role: str, current: Item | None) -> list[Link]:
    return [
        Link(str(item.label), url_for(item.endpoint), item is current)
        for item in items
        if role in item.roles
    ]


@bp.app_template_global()
def console_nav() -> dict[str, Any]:
    """The logged-in staff member's navigation, with the page shown marked."""
    role, endpoint = current_user.role, request.endpoint
    current = _current(endpoint)
    settings = _links(SETTINGS, role, current)
    return {
        "main": _links(MAIN, role, current),
        "settings": Group(str(_l("Settings")), settings) if settings else None,
        "account_current": endpoint
        in ("admin.account", "admin.change_password", "admin.login_code_setup"),
    }
