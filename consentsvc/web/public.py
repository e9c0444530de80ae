"""The member's pages: signup, confirm, preference centre, unsubscribe, link request.

Each view parses the request, calls the ledger, commits, and renders. Token pages change
nothing on GET, so link scanners that fetch every link in a mail do no harm.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from jinja2_fragments.flask import render_blocks
from sqlalchemy import select

from .. import intake, ledger, mailer, receipts, tokens
from ..config import LANGUAGES
from ..database import commit_keeping, end_read, reading_only, reads_first, writing
from ..extensions import csrf, db, htmx, limiter
from ..ledger import Channel, LedgerError, Proof
from ..libraries import COLOUR, DEFAULT_COLOUR, RESERVED_SLUGS
from ..models import Library, Purpose, Subject
from .data_copy import copy_context, export_data
from .errors import render_error
from .forms import as_id, email_error
from .i18n import current_language, use_member_language
from .labels import STATUS, purpose_title

bp = Blueprint("public", __name__)


class Stop(Exception):
    """Ends a view early with a finished page (a bad or expired link)."""

    def __init__(self, page: tuple[str, int]) -> None:
        super().__init__()
        self.page = page


@bp.errorhandler(Stop)
def _stop(stop: Stop) -> tuple[str, int]:
    return stop.page


@bp.after_request
def _keep_the_address_after_a_refused_form(response: Response) -> Response:
    """A boosted form that is refused shows its errors at the form's own address, without a
    second history entry for the same page (as in the console, web/admin.py)."""
    if htmx and request.method == "POST" and response.status_code >= 400:
        response.headers["HX-Push-Url"] = "false"
    return response


# What a "check your mail" page shows after Post/Redirect/Get: kept in the (signed) session,
# never in the address, long enough to reload or come back to that page. Not longer, and
# gone when the form is opened again: on a library's shared computer the next person must
# not find the address typed before them.
SENT = "sent"
SENT_SECONDS = 10 * 60


def _remember_sent(library: Library, page: str, email: str = "") -> None:
    session[SENT] = {
        "library": library.slug, "page": page, "email": email,
        "language": current_language(), "at": int(time.time()),
    }  # fmt: skip


def _sent(library: Library, pages: tuple[str, ...]) -> dict[str, str] | None:
    sent = session.get(SENT)
    if (
        not isinstance(sent, dict)
        or sent.get("library") != library.slug
        or sent.get("page") not in pages
        or time.time() - sent.get("at", 0) > SENT_SECONDS
    ):
        return None
    if sent.get("language") in LANGUAGES:
        use_member_language(sent["language"])
    return sent


@bp.get("/<library>/theme.css")
def theme(library: str) -> Response:
    """Serve the library's colour as CSS, so pages need no inline style."""
    lib = _library(library)
    colour = lib.colour if COLOUR.match(lib.colour) else DEFAULT_COLOUR
    response = Response(f":root {{ --brand: {colour}; }}\n", mimetype="text/css")
    response.cache_control.max_age = 300
    return response


# -- signup -------------------------------------------------------------------------------


@bp.route("/<library>/signup", methods=["GET", "POST"])
@csrf.exempt  # checked in the view: the library's own website may post here cross-site
@limiter.limit(lambda: current_app.config["SIGNUP_RATE_LIMIT"], methods=["POST"])
def signup(library: str) -> str | tuple[str, int]:
    """Show the signup form; on POST start double opt-in and mail a confirmation link."""
    lib = _library(library)
    if request.method == "GET":
        session.pop(SENT, None)
        return _signup_form(lib)
    if current_app.config["WTF_CSRF_ENABLED"] and not _from_allowed_origin(lib):
        csrf.protect()
    email = request.form.get("email", "")
    codes = request.form.getlist("purpose")
    offered = {p.code for p in ledger.signup_purposes(lib)}
    if any(code not in offered for code in codes):
        return render_error(400, _("Unknown choice"), _("This choice does not exist here."))
    errors = {}
    if error := email_error(email, _("Fill in your e-mail address.")):
        errors["email"] = error
    if not codes:
        errors["purpose"] = _("Choose at least one kind of mail.")
    if errors:
        return _signup_form(lib, errors=errors, email=email[:254], chosen=codes), 400
    text_ids = {code: as_id(request.form.get(f"text_{code}")) for code in codes}
    try:
        # Only recorded here, for every address alike; the worker decides (see intake.py).
        intake.record_signup(
            db.session, lib, email, codes,
            language=current_language(), channel=Channel.WEB_FORM,
            proof=_proof(), text_ids={k: v for k, v in text_ids.items() if v},
        )  # fmt: skip
    except LedgerError:
        db.session.rollback()
        return render_error(400, _("Unknown choice"), _("This choice does not exist here."))
    db.session.commit()
    # The same words for a new, a pending and a confirmed address: nobody learns who is
    # subscribed. A page of its own, so a reload or the back button never posts again.
    _remember_sent(lib, "signup", email.strip()[:254])
    return redirect(url_for(".signup_sent", library=lib.slug), 303)


@bp.get("/<library>/signup/sent")
def signup_sent(library: str) -> str:
    """Say that a confirmation mail is on its way, to the address the member typed."""
    lib = _library(library)
    # Without the session (a browser that keeps no cookies) the page still says what
    # happened, only without the address.
    sent = _sent(lib, ("signup", "undo")) or {"page": "signup", "email": ""}
    return render_template(
        "public/signup_sent.html", library=lib, email=sent["email"],
        again_url=url_for(".signup", library=lib.slug) if sent["page"] == "signup" else None,
    )  # fmt: skip


def _signup_form(
    lib: Library,
    errors: dict[str, str] | None = None,
    email: str = "",
    chosen: list[str] | None = None,
) -> str:
    language = current_language()
    offers = [(p, ledger.current_text(p, language)) for p in ledger.signup_purposes(lib)]
    return render_template(
        "public/signup.html",
        library=lib,
        offers=offers,
        errors=errors or {},
        email=email,
        chosen=set(chosen or []),
    )


# -- confirm ------------------------------------------------------------------------------


@bp.get("/confirm/<token>")
def confirm(token: str) -> str | tuple[str, int]:
    """Show what will be confirmed and a button; a GET changes nothing."""
    link, subject = _confirm_link(token)
    waiting = ledger.still_pending(db.session, subject, link.request_ids)
    if not waiting:
        return _confirm_used(subject)
    return render_template(
        "public/confirm.html", library=subject.library, requests=waiting, token=token
    )


@bp.post("/confirm/<token>")
@csrf.exempt  # the signed token is the proof; a stale session must not lose a confirmation
def confirm_post(token: str) -> str | tuple[str, int]:
    """Record the grant with the wording that was shown at signup."""
    link, subject = _confirm_link(token)
    confirmed = ledger.confirm(
        db.session, subject, link.request_ids, _proof(),
        suppression_key=current_app.config["SUPPRESSION_KEY"],
    )  # fmt: skip
    db.session.commit()
    if not confirmed:
        return _confirm_used(subject)
    granted = receipts.answering(db.session, subject, link.request_ids)
    return render_template(
        "public/confirmed.html",
        library=subject.library,
        titles=[purpose_title(p) for p in subject.library.purposes if p.code in confirmed],
        receipts=[(purpose_title(e.purpose), receipts.receipt_id(e)) for e in granted],
        preferences_token=tokens.make_preferences(subject.id),
    )


@bp.post("/confirm/<token>/resend")
@csrf.exempt
@limiter.limit(lambda: current_app.config["LINK_REQUEST_RATE_LIMIT"])
def confirm_resend(token: str) -> Response | str | tuple[str, int]:
    """Mail a fresh confirmation link for a link that expired."""
    try:
        link = tokens.read_confirm(token, expired_ok=True)
    except tokens.InvalidToken:
        return _bad_link()
    subject = _subject_or_stop(link.subject_id)
    ledger.lock(db.session, subject)
    waiting = ledger.still_pending(db.session, subject, link.request_ids)
    mailer.confirm_again(db.session, subject, waiting)
    db.session.commit()
    return _link_sent(subject.library, "resend")


def _confirm_used(subject: Subject) -> str:
    return render_template(
        "public/confirm_used.html",
        library=subject.library,
        preferences_token=tokens.make_preferences(subject.id),
    )


def _confirm_link(token: str) -> tuple[tokens.ConfirmLink, Subject]:
    try:
        link = tokens.read_confirm(token)
    except tokens.ExpiredToken:
        raise Stop(_expired("confirm", token, "public.confirm_resend")) from None
    except tokens.InvalidToken:
        raise Stop(_bad_link()) from None
    return link, _subject_or_stop(link.subject_id)


# -- preference centre ----------------------------------------------------------------------


@bp.get("/preferences/<token>")
def preferences(token: str) -> str | tuple[str, int]:
    """Show every purpose with its state, and the controls to change them."""
    subject = _preference_subject(token)
    # Always the whole page: htmx's history restore also sends HX-Request.
    context = _preference_context(subject, token, request.args.get("saved"))
    return render_template("public/preferences.html", **context)


@bp.post("/preferences/<token>")
@csrf.exempt  # the signed token is the proof; see confirm_post
def preferences_post(token: str) -> Response | str | tuple[str, int]:
    """Switch one purpose on or off: an htmx fragment, or a redirect back to the page."""
    subject = _preference_subject(token)
    code, choice = request.form.get("purpose", ""), request.form.get("choice")
    if choice not in ("on", "off", "never"):
        return render_error(400)
    try:
        if choice == "on":
            event = ledger.grant(
                db.session, subject, code, channel=Channel.PREFERENCE_CENTRE,
                language=current_language(),
                text_id=as_id(request.form.get("text_id")), proof=_proof(),
            )  # fmt: skip
            # A minor's "on" waits for the guardian, who gets the mail (ledger/minors.py).
            mailer.after_grant(db.session, subject, event)
        elif choice == "off":
            ledger.withdraw(
                db.session, subject, code, channel=Channel.PREFERENCE_CENTRE, proof=_proof()
            )
        else:
            ledger.object_to(
                db.session, subject, code, channel=Channel.PREFERENCE_CENTRE, proof=_proof()
            )
    except ledger.GuardianMissing:
        db.session.rollback()
        return _guardian_missing()
    except ledger.MandateRunning:
        db.session.rollback()
        return render_error(
            400,
            _("This runs on a mandate"),
            _("You end your direct debit with “End this direct debit” in your mail settings, "
              "or at the library desk."),
        )  # fmt: skip
    except LedgerError:
        db.session.rollback()
        return render_error(400, _("Unknown choice"), _("This choice does not exist here."))
    db.session.commit()
    return _after_preference_change(subject, token, code)


@bp.post("/preferences/<token>/stop-all")
@csrf.exempt
def stop_all(token: str) -> Response | str | tuple[str, int]:
    """Stop every kind of mail at once."""
    subject = _preference_subject(token)
    ledger.withdraw_all(db.session, subject, channel=Channel.PREFERENCE_CENTRE, proof=_proof())
    db.session.commit()
    return _after_preference_change(subject, token, "all")


@bp.post("/preferences/<token>/language")
@csrf.exempt
def preferences_language(token: str) -> Response | str | tuple[str, int]:
    """Choose the language of pages and mails."""
    subject = _preference_subject(token)
    language = request.form.get("language")
    if language not in LANGUAGES:
        return render_error(400)
    ledger.set_language(db.session, subject, language)
    db.session.commit()
    return redirect(
        url_for(
            ".preferences", token=token, lang=language, saved="language", _anchor="language-choice"
        ),
        303,
    )


@bp.get("/preferences/<token>/history")
def preferences_history(token: str) -> str | tuple[str, int]:
    """Show every change to the member's consents, with the wording they agreed to."""
    subject = _preference_subject(token)
    events = ledger.history(db.session, subject)
    return render_template(
        "public/history.html",
        library=subject.library,
        events=events,
        titles={p.id: purpose_title(p) for p in subject.library.purposes},
        receipt_ids={e.id: receipts.receipt_id(e) for e in events if receipts.has_receipt(e)},
        token=token,
    )


@bp.get("/preferences/<token>/data")
def preferences_data(token: str) -> Response | str | tuple[str, int]:
    """Everything held about the member, at once: the preference link already proves that
    this is their mailbox, so there is nothing to mail (right of access)."""
    subject = _preference_subject(token)
    return _data_copy(subject, url_for(".preferences_data", token=token, format="json"), token)


@bp.get("/download/<token>")
def download(token: str) -> Response | str | tuple[str, int]:
    """The same copy, from the download link that earlier mails carried."""
    try:
        subject = _subject_or_stop(tokens.read_download(token))
    except tokens.ExpiredToken:
        return _expired("download", token, "public.download_resend")
    except tokens.InvalidToken:
        return _bad_link()
    return _data_copy(subject, url_for(".download", token=token, format="json"))


@bp.post("/download/<token>/resend")
@csrf.exempt
@limiter.limit(lambda: current_app.config["LINK_REQUEST_RATE_LIMIT"])
def download_resend(token: str) -> Response | str | tuple[str, int]:
    """Mail a fresh link to the mail settings, where the copy can be seen at once."""
    try:
        subject = _subject_or_stop(tokens.read_download(token, expired_ok=True))
    except tokens.InvalidToken:
        return _bad_link()
    ledger.lock(db.session, subject)
    mailer.preference_link(db.session, subject)
    db.session.commit()
    return _link_sent(subject.library, "resend")


def _data_copy(
    subject: Subject, json_url: str, preferences_token: str | None = None
) -> Response | str:
    """The member's copy: a page in their words, or (?format=json) the file to keep."""
    data = export_data(subject)
    if request.args.get("format") == "json":
        response = current_app.response_class(
            json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json"
        )
        name = _("my-data")  # a file name: letters and hyphens only
        filename = f"{subject.library.slug}-{name}.json"
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        response.headers["Cache-Control"] = "no-store"  # personal data, like every page
        return response
    return render_template(
        "public/download.html", json_url=json_url, preferences_token=preferences_token,
        **copy_context(subject, data),
    )  # fmt: skip


@bp.route("/email/<token>", methods=["GET", "POST"])
@csrf.exempt  # the signed token is the proof
def email_change(token: str) -> str | tuple[str, int]:
    """Confirm a corrected e-mail address: GET shows a button, POST puts it in use."""
    try:
        subject_id, fingerprint = tokens.read_email_change(token)
    except tokens.ExpiredToken:
        # Staff started the change; only they can send a new link.
        return _expired("email_change", token, None)
    except tokens.InvalidToken:
        return _bad_link()
    subject = _subject_or_stop(subject_id)
    waiting = bool(subject.pending_email) and (
        ledger.email_fingerprint(subject.pending_email) == fingerprint
    )
    if request.method == "POST" and waiting:
        changed = ledger.confirm_email_change(db.session, subject, fingerprint)
        db.session.commit()
        return render_template(
            "public/email_changed.html", library=subject.library, changed=changed, subject=subject
        )
    return render_template(
        "public/email_change.html", library=subject.library, waiting=waiting, subject=subject,
        token=token,
    )  # fmt: skip


@bp.post("/preferences/<token>/resend")
@csrf.exempt
@limiter.limit(lambda: current_app.config["LINK_REQUEST_RATE_LIMIT"])
def preferences_resend(token: str) -> Response | str | tuple[str, int]:
    """Mail a fresh preference link for one that expired."""
    try:
        subject = _subject_or_stop(tokens.read_preferences(token, expired_ok=True))
    except tokens.InvalidToken:
        return _bad_link()
    ledger.lock(db.session, subject)
    mailer.preference_link(db.session, subject)
    db.session.commit()
    return _link_sent(subject.library, "resend")


def _guardian_missing() -> tuple[str, int]:
    """A minor switched something on, and no guardian can be asked (ledger/minors.py)."""
    return render_error(400, _("Your parent or guardian has to agree"), _(
        "You are younger than 16. Then your parent or guardian has to agree first. "
        "We don't have their e-mail address yet. Ask at the library desk."
    ))  # fmt: skip


def _preference_context(subject: Subject, token: str, saved: str | None) -> dict[str, object]:
    language = current_language()
    # A retired purpose is no longer offered; its history stays on the history page.
    states = [s for s in ledger.state_of(db.session, subject) if s.purpose.retired_at is None]
    rows = [(s, ledger.current_text(s.purpose, language)) for s in states]
    if saved not in {s.purpose.code for s in states} | {"all", "language", "statement"}:
        saved = None
    return {
        "library": subject.library,
        "subject": subject,
        "token": token,
        # Purposes that are not mail (direct debit) have their own section: unsubscribing
        # and "stop all mail" never touch them.
        "mail_rows": [(s, t) for s, t in rows if s.purpose.is_mail],
        "other_rows": [(s, t) for s, t in rows if not s.purpose.is_mail],
        # A running direct-debit mandate replaces the switch: it ends on a page of its own.
        "mandates": [
            m
            for m in ledger.mandates_of(db.session, subject)
            if m.status in ("active", "awaiting_approval", "awaiting_member")
        ],
        "saved": saved,
        "saved_message": _saved_message(saved, states),
        # A changed privacy statement, until the member says they read it (web/statement.py).
        "statement": ledger.unseen_statement(db.session, subject),
        "anything_running": any(
            s.purpose.is_mail
            and (s.as_member or s.status in ("granted", "pending", "reconfirm_requested"))
            for s in states
        ),
    }


def _saved_message(saved: str | None, states: list[ledger.PurposeState]) -> str:
    """What the live region says after a change: which choice, and how it stands now."""
    if saved is None:
        return ""
    if saved == "all":
        return _("All mail is stopped. Your choice has been saved.")
    for state in states:
        if state.purpose.code == saved:
            return _(
                "%(title)s: %(status)s. Your choice has been saved.",
                title=purpose_title(state.purpose),
                status=STATUS[state.status],
            )
    return _("Your choice has been saved.")


def _after_preference_change(subject: Subject, token: str, saved: str) -> Response | str:
    if htmx and not htmx.boosted:
        # An htmx toggle: only the list of purposes, and the notice out of band.
        context = _preference_context(subject, token, saved)
        blocks = ["purposes", "saved_notice"]
        return render_blocks("public/preferences.html", blocks, fragment=True, **context)
    # Without JavaScript the page opens at the card that changed, where its notice is.
    anchor = "stop-all" if saved == "all" else f"purpose-{saved}"
    return redirect(url_for(".preferences", token=token, saved=saved, _anchor=anchor), 303)


def _preference_subject(token: str) -> Subject:
    try:
        subject_id = tokens.read_preferences(token)
    except tokens.ExpiredToken:
        raise Stop(_expired("preferences", token, "public.preferences_resend")) from None
    except tokens.InvalidToken:
        raise Stop(_bad_link()) from None
    return _subject_or_stop(subject_id)


# -- unsubscribe ------------------------------------------------------------------------------


# Unsubscribe links never expire and pass through mailing processors, so their pages never
# lead into the preference centre; they offer the "mail me my link" page instead.


@bp.get("/unsubscribe/<token>")
def unsubscribe(token: str) -> str | tuple[str, int]:
    """Say what will stop, with a button; a GET changes nothing."""
    subject, purpose = _unsubscribe_target(token)
    status = ledger.status_of(db.session, subject, purpose)
    return render_template(
        "public/unsubscribe.html",
        library=subject.library,
        purpose=purpose,
        title=purpose_title(purpose),
        running=status in ("granted", "pending"),
        token=token,
    )


@bp.post("/unsubscribe/<token>")
@csrf.exempt  # RFC 8058: mail providers post here without cookies or a form token
@reads_first
def unsubscribe_post(token: str) -> str | tuple[str, int]:
    """Stop this mail at once; also the RFC 8058 one-click POST.

    A mailbox provider's one-clicks come in bursts, and on SQLite each waits for the one
    write lock: the person, library and texts are read before it, and the page is
    rendered after it from what was loaded (docs/performance.md).
    """
    subject, purpose = _unsubscribe_target(token)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    page = {
        "library": subject.library, "purpose": purpose, "title": purpose_title(purpose),
        "can_undo": purpose in ledger.signup_purposes(subject.library), "token": token,
    }  # fmt: skip
    end_read(db.session)
    with writing():
        ledger.withdraw(
            db.session, subject, purpose.code,
            channel=Channel.ONE_CLICK if one_click else Channel.UNSUBSCRIBE_PAGE,
            proof=_proof(),
        )  # fmt: skip
        commit_keeping(db.session)
    with reading_only():
        return render_template("public/unsubscribed.html", **page)


@bp.post("/unsubscribe/<token>/undo")
@csrf.exempt
@limiter.limit(lambda: current_app.config["SIGNUP_RATE_LIMIT"])
def unsubscribe_undo(token: str) -> Response | str | tuple[str, int]:
    """Subscribe again after an unsubscribe; this needs a new confirmation by mail."""
    subject, purpose = _unsubscribe_target(token)
    try:
        result = ledger.signup(
            db.session, subject.library, subject.email, [purpose.code],
            language=subject.language, channel=Channel.UNSUBSCRIBE_PAGE, proof=_proof(),
        )  # fmt: skip
    except ledger.GuardianMissing:
        db.session.rollback()
        return _guardian_missing()
    except LedgerError:
        db.session.rollback()
        return render_error(400, _("Unknown choice"), _("This choice does not exist here."))
    mailer.after_signup(db.session, subject, result)
    db.session.commit()
    _remember_sent(subject.library, "undo", subject.email)
    return redirect(url_for(".signup_sent", library=subject.library.slug), 303)


def _unsubscribe_target(token: str) -> tuple[Subject, Purpose]:
    try:
        link = tokens.read_unsubscribe(token)
    except tokens.InvalidToken:
        raise Stop(_bad_link()) from None
    subject = _subject_or_stop(link.subject_id)
    purpose = db.session.get(Purpose, link.purpose_id)
    if purpose is None or purpose.library_id != subject.library_id:
        raise Stop(_bad_link())
    if not purpose.is_mail:
        # Direct debit is not mail: an unsubscribe link (or a mailbox provider's one-click
        # POST, which fires on its own) must never end it. Nothing is recorded.
        raise Stop(
            (
                render_template(
                    "public/not_mail.html", library=subject.library, title=purpose_title(purpose)
                ),
                400,
            )
        )
    return subject, purpose


# -- "mail me my preference link" -------------------------------------------------------------


@bp.route("/<library>/preferences", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LINK_REQUEST_RATE_LIMIT"], methods=["POST"])
def request_link(library: str) -> Response | str | tuple[str, int]:
    """Mail a preference link to an address, saying the same whether it is known or not."""
    lib = _library(library)
    if request.method == "GET":
        session.pop(SENT, None)
        return render_template("public/request_link.html", library=lib, errors={}, email="")
    email = request.form.get("email", "")
    if error := email_error(email, _("Fill in your e-mail address.")):
        errors = {"email": error}
        return render_template(
            "public/request_link.html", library=lib, errors=errors, email=email[:254]
        ), 400
    # Whether the address is known is for the worker to find out (see intake.py).
    intake.record_link_request(db.session, lib, email)
    db.session.commit()
    return _link_sent(lib, "link", email.strip()[:254])


@bp.get("/<library>/preferences/sent")
def link_sent(library: str) -> str:
    """Say that a link is on its way, if the address is known (or a new link, after a resend)."""
    lib = _library(library)
    sent = _sent(lib, ("link", "resend"))
    asked = sent is not None and sent["page"] == "link"
    return render_template(
        "public/link_sent.html", library=lib,
        resend=sent is not None and sent["page"] == "resend",
        email=sent["email"] if asked else "",
        again_url=url_for(".request_link", library=lib.slug) if asked else None,
    )  # fmt: skip


def _link_sent(library: Library, page: str, email: str = "") -> Response:
    _remember_sent(library, page, email)
    return redirect(url_for(".link_sent", library=library.slug), 303)


# -- helpers ----------------------------------------------------------------------------------


def _library(slug: str) -> Library:
    if slug in RESERVED_SLUGS or len(slug) > 40:
        abort(404)
    lib = db.session.scalar(select(Library).where(Library.slug == slug))
    if lib is None:
        abort(404)
    g.library = lib
    return lib


def _subject(subject_id: int) -> Subject | None:
    subject = db.session.get(Subject, subject_id)
    if subject is not None and subject.erased_at is not None:
        return None  # links of an erased person lead nowhere
    if subject is not None:
        g.library = subject.library
        use_member_language(subject.language)
    return subject


def _subject_or_stop(subject_id: int) -> Subject:
    subject = _subject(subject_id)
    if subject is None:
        raise Stop(_bad_link())
    return subject


# Readers that accept an authentic but old link: it still names the person, so the page
# about it can be in their language and their library's colours.
_EXPIRED_READERS: dict[str, Callable[[str], int]] = {
    "confirm": lambda token: tokens.read_confirm(token, expired_ok=True).subject_id,
    "preferences": lambda token: tokens.read_preferences(token, expired_ok=True),
    "download": lambda token: tokens.read_download(token, expired_ok=True),
    "email_change": lambda token: tokens.read_email_change(token, expired_ok=True)[0],
}


def _expired(kind: str, token: str, resend_endpoint: str | None) -> tuple[str, int]:
    subject = _subject(_EXPIRED_READERS[kind](token))
    if subject is None:
        return _bad_link()
    return render_template(
        "public/expired.html",
        action=url_for(resend_endpoint, token=token) if resend_endpoint else None,
        library=subject.library,
    ), 410


def _bad_link() -> tuple[str, int]:
    # A changed link names nobody, so it cannot say whose library it was; the page leads to
    # the "mail me my link" page of the library the member chooses.
    return _find_library_page(broken=True), 400


def _find_library_page(broken: bool) -> str:
    libraries = db.session.scalars(select(Library).order_by(Library.name)).all()
    return render_template("public/find_library.html", broken=broken, libraries=libraries)


@bp.get("/preferences")
def find_library() -> Response | str:
    """Lead a member without a working link to their library's "mail me my link" page."""
    slug = request.args.get("library", "")
    if slug and db.session.scalar(select(Library.id).where(Library.slug == slug[:40])):
        return redirect(url_for(".request_link", library=slug), 303)
    return _find_library_page(broken=False)


def _from_allowed_origin(lib: Library) -> bool:
    origin = request.headers.get("Origin")
    return bool(origin) and origin in (lib.allowed_origins or [])


def _proof() -> Proof:
    origin = request.headers.get("Origin")
    if not origin and request.referrer:
        parts = urlsplit(request.referrer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return Proof(
        ip_address=request.remote_addr,
        user_agent=request.user_agent.string or None,
        origin=origin,
        details={"language": current_language()},
    )
