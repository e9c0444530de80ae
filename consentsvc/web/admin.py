"""The staff console at /admin: log in, find a person, see and record their consents.

Every look at a person and every change is written to the audit trail.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

import segno
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from jinja2_fragments.flask import render_block
from markupsafe import Markup
from sqlalchemy import select
from werkzeug.wrappers import Response

from .. import ledger, libraries, metrics, staff
from ..config import LANGUAGES
from ..extensions import db, htmx, limiter, login_manager
from ..models import (
    Library,
    StaffRole,
    StaffUser,
)
from .errors import render_error
from .forms import as_id

bp = Blueprint("admin", __name__, url_prefix="/admin")
login_manager.login_view = "admin.login"
login_manager.login_message = None  # the login page says enough

View = TypeVar("View", bound=Callable[..., Any])


@login_manager.user_loader
def _load_staff(session_id: str) -> StaffUser | None:
    staff_id, _, version = session_id.partition(".")
    number = as_id(staff_id)
    user = db.session.get(StaffUser, number) if number else None
    if user is None or not user.active or version != user.session_version:
        return None
    now, config = time.time(), current_app.config
    if not staff.session_is_current(
        session.get("staff_since"), session.get("staff_seen"), now,
        lifetime=config["STAFF_SESSION_SECONDS"], idle=config["STAFF_IDLE_SECONDS"],
    ):  # fmt: skip
        # Flask signs the cookie anew on every request, so its own expiry moves along with
        # use; the times kept inside it do not.
        session.clear()
        session["session_ended"] = True
        return None
    session["staff_seen"] = int(now)
    return user


def roles(*allowed: str) -> Callable[[View], View]:
    """Only staff with one of these roles; others get a 403 page."""

    def decorate(view: View) -> View:
        @wraps(view)
        @login_required
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in allowed:
                abort(403)
            g.library = _working_library()
            made_for = request.form.get("working_in") if request.method == "POST" else None
            if made_for is not None and made_for != str(g.library.id):
                # A page from before a switch of library (another tab): acting on it would
                # change the wrong library.
                return render_error(
                    409, _("Another library"),
                    _("You switched to another library after this page was opened. "
                      "Open the page again and check before you save."),
                )  # fmt: skip
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


@bp.after_request
def _keep_the_address_after_a_refused_form(response: Response) -> Response:
    """An htmx-boosted form that is refused shows its errors at the page's own address.

    htmx would otherwise put the POST-only address of the form in the address bar, where
    a reload answers 405 instead of showing the page again.
    """
    if htmx and request.method == "POST" and not 300 <= response.status_code < 400:
        response.headers["HX-Push-Url"] = "false"
    return response


def _working_library() -> Library:
    """The library chosen in the console; staff of one library always work in their own."""
    wanted = session.get("library_id")
    if wanted is not None and wanted != current_user.library_id:
        for library in current_user.libraries:
            if library.id == wanted:
                return library
        session.pop("library_id")  # access was taken away since
    return current_user.library


ROLE_LABELS = {
    StaffRole.DESK: _l("Desk"),
    StaffRole.PRIVACY_OFFICER: _l("Privacy officer"),
    StaffRole.ADMIN: _l("Administrator"),
}
RETENTION_LABELS = {
    "contact_after_membership": _l("Contact details, after membership ends"),
    "payment": _l("Payment data"),
    "inactive": _l("Everything, after the last activity"),
    "pending_signup": _l("Sign-ups never confirmed"),
    "evidence_details": _l("IP address, browser and web page of a consent"),
    "overall_maximum": _l("Everything, at most (0: no maximum)"),
    "check_decisions": _l("Answers to senders' checks"),
    "audit": _l("Audit trail"),
    "outbox": _l("Sent and given-up mails and webhooks"),
    "desk_notes": _l("Notes typed by staff"),
}
RETENTION_UNIT_LABELS = {"days": _l("days"), "months": _l("months")}


@bp.context_processor
def _console_context() -> dict[str, Any]:
    return {
        "library": g.get("library"),
        "role_labels": ROLE_LABELS,
        "retention_labels": RETENTION_LABELS,
        "retention_units": {
            c: RETENTION_UNIT_LABELS[u] for c, u in libraries.RETENTION_UNITS.items()
        },
    }


def _audit(action: str, **details: Any) -> None:
    staff.audit(db.session, current_user, action, library=g.library, **details)


ANY_STAFF = StaffRole.ALL
PRIVACY = (StaffRole.PRIVACY_OFFICER,)
SECOND_STEP_SECONDS = 300


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["STAFF_LOGIN_RATE_LIMIT"], methods=["POST"])
def login() -> Response | str | tuple[str, int]:
    """Log in with e-mail address and password (and a code, for those who set one up)."""
    if request.method == "GET":
        ended = session.pop("session_ended", False)
        return render_template("admin/login.html", failed=False, ended=ended)
    user = staff.login(db.session, request.form.get("email", ""), request.form.get("password", ""))
    db.session.commit()
    metrics.STAFF_LOGINS.labels("password_wrong" if user is None else "password_right").inc()
    if user is None:
        # One message for every reason, so it tells nothing about which accounts exist.
        return render_template("admin/login.html", failed=True), 401
    if user.totp_secret is not None:
        session["second_step"] = {"id": user.id, "at": int(time.time())}
        return redirect(url_for(".login_code"), 303)
    return _logged_in(user)


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["STAFF_LOGIN_RATE_LIMIT"], methods=["POST"])
def login_code() -> Response | str | tuple[str, int]:
    """The second step: the 6-digit code from the staff member's authenticator app."""
    pending = session.get("second_step") or {}
    user = db.session.get(StaffUser, pending.get("id", 0))
    if user is None or time.time() - pending.get("at", 0) > SECOND_STEP_SECONDS:
        session.pop("second_step", None)
        return redirect(url_for(".login"), 303)
    if request.method == "GET":
        return render_template("admin/login_code.html", failed=False)
    passed = staff.check_second_step(db.session, user, request.form.get("code", ""))
    if not passed:
        # Someone who knows the password is guessing codes, or a clock is off: worth a trace.
        staff.audit(db.session, user, "login.code_wrong")
    db.session.commit()
    metrics.STAFF_LOGINS.labels("code_right" if passed else "code_wrong").inc()
    if not passed:
        return render_template("admin/login_code.html", failed=True), 401
    session.pop("second_step", None)
    return _logged_in(user)


def _logged_in(user: StaffUser) -> Response:
    session.pop("library_id", None)
    session.pop("session_ended", None)
    login_user(user)
    session["staff_since"] = session["staff_seen"] = int(time.time())
    session.permanent = True  # the browser drops it after STAFF_SESSION_SECONDS too
    return redirect(url_for(".search"), 303)


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Log out, here and in every other browser where this account is logged in."""
    staff.end_sessions(current_user)
    db.session.commit()
    logout_user()
    session.clear()
    return redirect(url_for(".login"), 303)


@bp.get("/")
@roles(*ANY_STAFF)
def search() -> str:
    """Find a person by (the start of) their e-mail address or card number."""
    query = request.args.get("q", "").strip()[:254]
    results = staff.search(db.session, g.library, query) if query else []
    if len(query) >= staff.MIN_QUERY:
        _audit("search", detail=f"{len(results)} found")
        db.session.commit()
    if htmx and not htmx.boosted:
        # Searching while typing: only the results change.
        return render_block("admin/search.html", "results", query=query, results=results)
    return render_template("admin/search.html", query=query, results=results)


ADMIN = (StaffRole.ADMIN,)


STAFF_ERRORS = {
    "role": _l("Choose a role."),
    "password": _l("A password needs at least 12 characters."),
    "email": _l("This is not a valid e-mail address."),
    "taken": _l("There is already a staff member with this address."),
    "own": _l("You cannot close your own account."),
}
# Said when the role is not this staff member's to give (or take away by closing).
GIVE_ERRORS = {
    StaffRole.PRIVACY_OFFICER: _l("Only a privacy officer can give someone that role."),
    StaffRole.ADMIN: _l("Only an administrator can give someone that role."),
    StaffRole.DESK: _l("Only an administrator can give someone that role."),
}
CLOSE_ERRORS = {
    StaffRole.PRIVACY_OFFICER: _l("Only a privacy officer can close this account."),
    StaffRole.ADMIN: _l("Only an administrator can close this account."),
    StaffRole.DESK: _l("Only an administrator can close this account."),
}
ACCOUNTS = (StaffRole.ADMIN, StaffRole.PRIVACY_OFFICER)


@bp.get("/staff")
@roles(*ACCOUNTS)
def staff_members() -> str:
    """The library's staff accounts."""
    return _staff_page()


@bp.post("/staff")
@roles(*ACCOUNTS)
def add_staff() -> Response | str | tuple[str, int]:
    """Add a colleague; they log in with the password given here and should change it."""
    form = request.form
    typed = {k: form.get(k, "") for k in ("name", "email", "role")}  # never the password
    name = typed["name"].strip()[:100]
    if not name:
        return _staff_page(error=_("Give a name."), form=typed), 400
    try:
        user = staff.create(
            db.session, g.library, typed["email"], name, typed["role"],
            form.get("password", ""), by=current_user,
        )  # fmt: skip
    except staff.StaffError as exc:
        db.session.rollback()
        error = GIVE_ERRORS[typed["role"]] if exc.code == "give" else STAFF_ERRORS[exc.code]
        return _staff_page(error=error, form=typed), 400
    extra = [
        lib for lib in current_user.libraries
        if str(lib.id) in form.getlist("also") and lib.id != g.library.id
    ]  # fmt: skip
    if extra and user.role != StaffRole.ADMIN:
        db.session.rollback()
        error = _("Only administrators can look after several libraries.")
        return _staff_page(error=error, form=typed), 400
    for lib in extra:
        staff.add_library(user, lib)
        staff.audit(
            db.session, current_user, "staff.access", library=lib, detail=f"staff {user.id}"
        )
    _audit("staff.add", detail=f"staff {user.id} {user.role}")
    db.session.commit()
    flash(_("%(name)s can now log in.", name=user.name))
    return redirect(url_for(".staff_members"), 303)


@bp.route("/staff/<id:staff_id>/deactivate", methods=["GET", "POST"])
@roles(*ACCOUNTS)
def deactivate_staff(staff_id: int) -> Response | str | tuple[str, int]:
    """Close an account at once (its audit trail stays; GET asks first)."""
    user = db.session.get(StaffUser, staff_id)
    if user is None or user.library_id != g.library.id:
        abort(404)
    if request.method == "GET" and not user.active:
        abort(404)
    try:
        staff.check_close(user, by=current_user)
    except staff.StaffError as exc:
        error = CLOSE_ERRORS[user.role] if exc.code == "close" else STAFF_ERRORS[exc.code]
        return _staff_page(error=error), 400
    if request.method == "GET":
        return _confirm_page(
            _("Close the account of %(name)s?", name=user.name),
            _("%(name)s is logged out at once and can no longer log in. Everything they did "
              "stays in the audit log. A closed account cannot be opened again; add a new "
              "one if needed.", name=user.name),
            _("Close the account"), url_for(".staff_members"),
        )  # fmt: skip
    staff.close(user, by=current_user)
    _audit("staff.deactivate", detail=f"staff {user.id} {user.role}")
    db.session.commit()
    flash(_("The account of %(name)s is closed.", name=user.name))
    return redirect(url_for(".staff_members"), 303)


@bp.route("/staff/<id:staff_id>/access/remove", methods=["GET", "POST"])
@roles(*ADMIN)
def remove_access(staff_id: int) -> Response | str:
    """Take away an admin's access to this library (not their home library; GET asks first)."""
    user = db.session.get(StaffUser, staff_id)
    if user is None or user.library_id == g.library.id:
        abort(404)
    linked = [lib for lib in user.other_libraries if lib.id == g.library.id]
    if not linked:
        abort(404)
    if request.method == "GET":
        return _confirm_page(
            _("Take away the access of %(name)s to %(library)s?",
              name=user.name, library=g.library.name),
            _("%(name)s can no longer work in %(library)s, from their next page on. Their "
              "own library (%(home)s) stays theirs.",
              name=user.name, library=g.library.name, home=user.library.name),
            _("Take away the access"), url_for(".staff_members"),
        )  # fmt: skip
    user.other_libraries.remove(linked[0])
    _audit("staff.access_removed", detail=f"staff {user.id}")
    db.session.commit()
    flash(_("%(name)s no longer works in %(library)s.", name=user.name, library=g.library.name))
    return redirect(url_for(".staff_members"), 303)


def _confirm_page(question: str, consequence: str, button: str, back: str) -> str:
    """The second step of something that cannot be undone: what happens, then a button.

    Works without JavaScript: GET shows this page, its form POSTs to the same address.
    """
    return render_template(
        "admin/confirm.html", question=question, consequence=consequence, button=button,
        back=back,
    )  # fmt: skip


def _staff_page(**extra: Any) -> str:
    colleagues = db.session.scalars(
        select(StaffUser)
        .where(
            # Also admins of other libraries who look after this one.
            (StaffUser.library_id == g.library.id)
            | StaffUser.other_libraries.any(Library.id == g.library.id)
        )
        .order_by(StaffUser.name)
    ).all()
    return render_template(
        "admin/staff.html", colleagues=colleagues,
        roles=staff.roles_to_give(current_user), **extra,
    )  # fmt: skip


# -- the staff member's own account -----------------------------------------------------------

ACCOUNT_ERRORS = {
    "current": _l("Your current password is not right."),
    "password": _l("A password needs at least 12 characters."),
    "same": _l("Choose a password that differs from the old one."),
    "repeat": _l("The two new passwords are not the same."),
    "code": _l("This code is not right. Wait for the next code and try again."),
    "code_on": _l("You already log in with a code. Switch it off first to set up a new one."),
}


@bp.get("/account")
@roles(*ANY_STAFF)
def account() -> str:
    """Your own account: change your password, set up or remove the login code."""
    return _account_page()


@bp.post("/account/password")
@roles(*ANY_STAFF)
def change_password() -> Response | str | tuple[str, int]:
    """Change your own password; the current one is asked first."""
    form = request.form
    if form.get("new", "") != form.get("repeat", ""):
        return _account_page(error=ACCOUNT_ERRORS["repeat"]), 400
    try:
        staff.change_password(current_user, form.get("current", ""), form.get("new", ""))
    except staff.StaffError as exc:
        db.session.rollback()
        return _account_page(error=ACCOUNT_ERRORS[exc.code]), 400
    _account_changed("account.password")
    return redirect(url_for(".account", done="password"), 303)


@bp.post("/account/code")
@roles(*ANY_STAFF)
def login_code_setup() -> Response | str | tuple[str, int]:
    """Set up a login code app (shown as a QR code and as text), or switch it off."""
    form = request.form
    if form.get("action") == "remove":
        if not staff.password_is(current_user, form.get("current", "")):
            return _account_page(error=ACCOUNT_ERRORS["current"]), 400
        current_user.totp_secret = None
        current_user.totp_last_step = None
        session.pop(PENDING_CODE, None)
        _account_changed("account.code_removed")
        return redirect(url_for(".account", done="code_removed"), 303)
    if current_user.totp_secret is not None:
        # Replacing the code would need no password: switch it off first (that asks for it).
        return _account_page(error=ACCOUNT_ERRORS["code_on"]), 400
    if form.get("action") == "start":
        # Kept in the session until the app's first code proves it was scanned; the page
        # after the redirect shows it, so a reload does not make another one.
        session[PENDING_CODE] = staff.new_totp_secret()
        return redirect(url_for(".account"), 303)
    secret = session.get(PENDING_CODE) or ""
    if not re.fullmatch(r"[A-Z2-7]{32}", secret):
        abort(400)
    step = staff.totp_matches(secret, form.get("code", ""), None)
    if step is None:
        return _account_page(error=ACCOUNT_ERRORS["code"]), 400
    current_user.totp_secret = secret
    current_user.totp_last_step = step
    session.pop(PENDING_CODE)
    _account_changed("account.code_added")
    return redirect(url_for(".account", done="code_added"), 303)


def _account_changed(action: str) -> None:
    """Audit it in the person's home library, and end their other sessions (not this one)."""
    staff.audit(db.session, current_user, action, library=current_user.library)
    db.session.commit()
    login_user(current_user)


PENDING_CODE = "login_code_pending"


def _account_page(**extra: Any) -> str:
    new_secret = session.get(PENDING_CODE) if current_user.totp_secret is None else None
    qr = None
    if new_secret is not None:
        uri = staff.totp_uri(new_secret, current_user.email, "consentsvc")
        # segno writes only path data and the (escaped) title: safe to put in the page as is.
        svg = segno.make(uri, error="m").svg_inline(
            scale=4, border=2, omitsize=True, light="#fff", title=_("QR code for your app")
        )
        qr = Markup(svg)  # noqa: S704 - segno's own SVG, see above  # nosec B704
    return render_template(
        "admin/account.html", new_secret=new_secret, qr=qr,
        done=request.args.get("done"), **extra,
    )  # fmt: skip


# -- libraries: settings and switching (a new library: console_new_library.py) ------------

SETTINGS_ERRORS = {
    "name": _l("Give the library's name."),
    "colour": _l("Give a colour like #1f4e79, dark enough for white text on it."),
    "origins": _l("Give each website as https://www.example.nl, one per line."),
    "default_language": _l("Choose a language."),
    "legitimate_interest": _l("Choose who gets mail sent on legitimate interest."),
    "retention": _l(
        "Give each retention period as a whole number: months from 1 to 240, days from 1 to 3650."
    ),
    "slug": _l("A short name is 2 to 40 lower-case letters, digits or dashes, and not in use."),
}


def _settings_error(exc: libraries.SettingsError, form: Any) -> str:
    """The message for a refused setting; for the colour, empty, unreadable and too light
    are told apart, the last with its contrast figure."""
    if exc.field == "colour":
        typed = form.get("colour", "").strip()
        if not typed:
            return _("Give the library's colour, like #1f4e79.")
        if exc.code == "contrast":
            figure = format_decimal(libraries.contrast_with_white(typed), "0.0")
            return _(
                "White text on %(colour)s has a contrast of %(figure)s : 1, less than the "
                "4.5 : 1 it needs to be readable. Choose a darker colour.",
                colour=typed, figure=figure,
            )  # fmt: skip
    return str(SETTINGS_ERRORS[exc.field])


@bp.get("/library")
@roles(*ADMIN)
def library_settings() -> str:
    """The library's settings: name, colour, signup websites, language, retention, pauses."""
    return _library_page()


@bp.post("/library")
@roles(*ADMIN)
def save_library_settings() -> Response | str | tuple[str, int]:
    """Save the settings; nothing changes unless every one of them is right."""
    form = request.form
    try:
        settings = libraries.parse(
            name=form.get("name", ""),
            colour=form.get("colour", ""),
            origins=form.get("origins", "").splitlines(),
            default_language=form.get("default_language", ""),
            pause_until_reconfirmed=form.get("pause_until_reconfirmed") == "yes",
            retention={c: form.get(f"retention_{c}", "") for c in libraries.RETENTION_CATEGORIES},
            legitimate_interest=form.get("legitimate_interest", ""),
        )
    except libraries.SettingsError as exc:
        return _library_page(errors={exc.field: _settings_error(exc, form)}, form=form), 400
    # Who approves direct-debit mandates (see web/console_mandates.py); kept when not sent.
    approval = form.get("mandate_approval", g.library.mandate_approval)
    if approval not in ledger.MANDATE_APPROVALS:
        errors = {"mandate_approval": _("Choose who approves direct debit mandates.")}
        return _library_page(errors=errors, form=form), 400
    changed = libraries.apply(g.library, settings)
    # Young members (ledger/minors.py): whether staff record birth years.
    asks_birth_year = form.get("asks_birth_year") == "yes"
    if asks_birth_year != g.library.asks_birth_year:
        g.library.asks_birth_year = asks_birth_year
        changed.append("asks_birth_year")
    if g.library.mandate_approval != approval:
        g.library.mandate_approval = approval
        changed.append("mandate_approval")
    if changed:
        _audit("library.settings", detail=", ".join(changed))
    db.session.commit()
    return redirect(url_for(".library_settings", done="saved"), 303)


@bp.post("/library/switch")
@roles(*ANY_STAFF)
def switch_library() -> Response:
    """Work in another library you look after."""
    wanted = as_id(request.form.get("library"))
    if wanted is None or not staff.may_work_in(current_user, wanted):
        abort(404)
    session["library_id"] = wanted
    return redirect(url_for(".search"), 303)


def _library_page(errors: dict[str, str] | None = None, form: Any = None) -> str:
    return render_template(
        "admin/library.html", categories=libraries.RETENTION_CATEGORIES,
        retention=libraries.retention_of(g.library),
        languages=LANGUAGES, done=request.args.get("done"), errors=errors or {}, form=form,
        contrast=_contrast(g.library.colour),
    )  # fmt: skip


@dataclass(frozen=True)
class Contrast:
    figure: str  # in the page's language: "8,2" on a Dutch page
    enough: bool


def _contrast(colour: str) -> Contrast:
    """White text on the library's saved colour, as the settings page shows it."""
    ratio = libraries.contrast_with_white(colour)
    return Contrast(format_decimal(ratio, "0.0"), ratio >= libraries.MINIMUM_CONTRAST)
