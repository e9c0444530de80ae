"""The service's own mails: confirmation, 'already subscribed', preference link, and the
notice of a new privacy statement; and the demo's sample newsletter (demo_send.py).

A view queues a mail in the outbox in the same transaction as the change (the cool-down
stamp included); the worker composes and sends it later, in the person's language, with
links made at that moment. So the queue holds no address and no link.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import click
from flask import current_app, render_template
from flask_babel import force_locale, gettext
from flask_mail import Message
from sqlalchemy.orm import Session

from . import iban, library_face, outbox, tokens
from .config import DAY
from .extensions import mail
from .ledger import (
    SignupResult,
    current_text,
    email_fingerprint,
    guardian_of,
    purpose_by_code,
    statement_notice_allowed,
    still_pending,
)
from .models import (
    ConsentEvent,
    FamilyAccess,
    LedgerAnchor,
    Library,
    PrivacyStatement,
    Purpose,
    SepaMandate,
    Subject,
    utcnow,
)

# A signup that makes something newly pending is news and is mailed, but never more than
# this many confirmation mails before the person has had a quiet cool-down period: an
# unsubscribe-and-undo loop must not become a way to flood someone's inbox.
MAX_CONFIRM_MAILS = 3


@dataclass
class Outgoing:
    kind: str
    message: Message
    # The link the mail is about, for the short line printed when mails go to files.
    link: str


def absolute_url(endpoint: str, **values: object) -> str:
    """A link for mails and headers, rooted at BASE_URL (never at the request's Host)."""
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return current_app.config["BASE_URL"] + path


def one_line(text: str) -> str:
    """Header text on one line: a line break in a name must never start a header of its own.

    A library's name reaches the Subject; the command line takes it as typed.
    """
    return " ".join(text.split())


def list_id(purpose: Purpose) -> str:
    """The List-Id header of a purpose's mail: its title in the library's language."""
    text = current_text(purpose, purpose.library.default_language)
    # Copied into a header: one line, nothing that ends the quoted name.
    title = text.title if text else purpose.code
    label = one_line(title.replace('"', "").replace("\\", ""))
    return f'"{label}" <{purpose.list_id}>'


def mask(email: str, filler: str = "***") -> str:
    """An address as it may appear in a log line or on a console list: first letter and
    domain only ("j***@example.nl"; the console writes "j…@example.nl")."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}{filler}@{domain}"


# -- queueing (in the caller's transaction) ------------------------------------------------------


def after_signup(session: Session, subject: Subject, result: SignupResult) -> bool:
    """Queue the mail a signup calls for, if the cool-down allows one."""
    if result.request_ids and _may_send_confirmation(subject, news=result.newly_pending):
        _queue(session, subject, "confirm", request_ids=result.request_ids)
        return True
    if not result.request_ids and result.already_granted:
        return preference_link(session, subject, kind="already_subscribed")
    return False


def confirm_again(session: Session, subject: Subject, requests: list[ConsentEvent]) -> bool:
    """Queue a fresh confirmation link for requests whose link expired."""
    if not requests or not _may_send_confirmation(subject, news=False):
        return False
    _queue(session, subject, "confirm", request_ids=[r.id for r in requests])
    return True


def after_grant(session: Session, subject: Subject, event: ConsentEvent | None) -> bool:
    """Queue the guardian's confirmation when a minor's grant became a request (ledger.grant)."""
    if event is None or event.action != "requested":
        return False
    if not _may_send_confirmation(subject, news=True):
        return False
    _queue(session, subject, "confirm", request_ids=[event.id])
    return True


def guardianship_ended(session: Session, subject: Subject) -> None:
    """Queue the two mails that say the guardian's role ended: to the person, and to the
    former guardian (whose address the worker reads from the person at sending time)."""
    _queue(session, subject, "guardianship_ended")
    _queue(session, subject, "guardianship_ended_guardian")


def preference_link(session: Session, subject: Subject, kind: str = "preference_link") -> bool:
    """Queue a mail with a fresh link to the preference centre, if the cool-down allows one."""
    if not _cooled(subject.last_link_mail_at):
        return False
    subject.last_link_mail_at = utcnow()
    _queue(session, subject, kind)
    return True


def reconfirm(session: Session, subject: Subject, request_id: int) -> None:
    """Queue the mail that asks to agree to changed wording (once per change: no cool-down)."""
    _queue(session, subject, "reconfirm", request_ids=[request_id])


def email_change(session: Session, subject: Subject) -> None:
    """Queue the mail to a corrected address that asks to confirm it (no cool-down: staff)."""
    _queue(session, subject, "email_change")


def family_request(session: Session, access: FamilyAccess) -> None:
    """Queue the mail that asks the other person to accept or refuse (one per request row;
    ledger.family limits the rows)."""
    _queue(session, access.giver, "family_request", access_id=access.id)


def family_changed(session: Session, access: FamilyAccess, event: ConsentEvent) -> None:
    """Queue the mail that tells the giver what their family member changed."""
    _queue(session, access.giver, "family_change", access_id=access.id, event_id=event.id)


def family_ended(session: Session, access: FamilyAccess) -> None:
    """Queue the mail that tells the other side an access ended."""
    other = access.giver if access.ended_by == "holder" else access.holder
    _queue(session, other, "family_ended", access_id=access.id)


def mandate_confirmation(session: Session, subject: Subject, mandate_id: int) -> None:
    """Queue the mail that asks the member to confirm a mandate signed online (once per
    approved mandate: no cool-down)."""
    _queue(session, subject, "mandate_confirm", mandate_id=mandate_id)


# -- sending (from the worker) ------------------------------------------------------------------


def send_queued(payload: dict[str, Any], message_id: str | None = None) -> None:
    """Compose and send a queued mail; raises outbox.RetryLater when the server fails.

    With the outbox message's id, the mail's Message-ID is made from it: a mail sent again
    after a worker died between sending and recording it has the same Message-ID, which
    mail systems take as the same mail.
    """
    session = current_app.extensions["sqlalchemy"].session
    if payload["mail"] in STAFF_MAILS:
        outgoing = STAFF_MAILS[payload["mail"]](session, payload)
    else:
        subject = session.get(Subject, payload["subject_id"])
        if subject is None or subject.erased_at is not None:
            raise outbox.GiveUp("the person is no longer known")
        outgoing = compose(session, subject, payload)
    if outgoing is None:
        return
    if message_id is not None:
        outgoing.message.msgId = f"<{message_id}@consentsvc>"
    try:
        send(outgoing)
    except OSError as exc:  # smtplib's errors are OSErrors too
        raise outbox.RetryLater(f"mail: {type(exc).__name__}") from None
    if payload["mail"] == "ledger_head":
        anchor = session.get(LedgerAnchor, payload["anchor_id"])
        if anchor is not None:
            anchor.mailed_at = utcnow()


def _ledger_head(session: Session, payload: dict[str, Any]) -> Outgoing | None:
    """The day's signed head statement to the privacy officer, the statement attached."""
    anchor = session.get(LedgerAnchor, payload.get("anchor_id") or 0)
    if anchor is None:
        return None
    library = session.get(Library, anchor.library_id)
    sender, reply_to = library_face.sender_of(library, current_app.config["MAIL_DEFAULT_SENDER"])
    chains = anchor.statement["payload"]["chains"]
    day = anchor.day.isoformat()
    message = Message(
        subject=one_line(
            gettext(
                "%(library)s: today's signed state of the consent register (%(day)s)",
                library=library.name,
                day=day,
            )
        ),
        sender=one_line(sender),
        reply_to=reply_to,
        recipients=[payload["to"]],
        body=render_template(
            "email/staff/ledger_head.txt",
            library=library,
            anchor=anchor,
            chains=chains,
            link=absolute_url("well_known.consent_ledger", library=library.slug),
            file_name=_statement_file(library, anchor),
        ),
        extra_headers={"Auto-Submitted": "auto-generated", "Content-Language": "nl"},
    )
    message.attach(
        _statement_file(library, anchor),
        "application/json",
        json.dumps(anchor.statement, indent=2, ensure_ascii=False).encode(),
    )
    message.msgId = make_msgid(domain="consentsvc")
    return Outgoing("ledger_head", message, "")


def _statement_file(library: Library, anchor: LedgerAnchor) -> str:
    return f"consent-ledger-{library.slug}-{anchor.day.isoformat()}.json"


# Mails to the library's own people rather than to a member: kind → composer.
STAFF_MAILS = {"ledger_head": _ledger_head}


def compose(session: Session, subject: Subject, payload: dict[str, Any]) -> Outgoing | None:
    """The mail for a queued payload, or None when there is nothing left to mail about."""
    kind = payload["mail"]
    if kind.startswith("family_"):
        return _compose_family(session, subject, payload)
    if kind in ("confirm", "reconfirm"):
        requests = still_pending(session, subject, payload.get("request_ids", []))
        if not requests:
            return None  # confirmed or withdrawn in the meantime
        titles = _titles([r.purpose for r in requests], subject.language)
        guardian = guardian_of(subject)
        if guardian is not None:
            # A minor's grant is the guardian's to give (ledger/minors.py): the link goes to
            # them, and only their link confirms.
            token = tokens.make_guardian_confirm(
                subject.id, [r.id for r in requests], email_fingerprint(guardian)
            )
            link = absolute_url("public.guardian_confirm", token=token)
            return _compose(
                subject, "guardian_confirm", link, to=guardian, titles=titles, member=subject.email
            )
        token = tokens.make_confirm(subject.id, [r.id for r in requests])
        link = absolute_url("public.confirm", token=token)
        return _compose(subject, kind, link, titles=titles)
    if kind == "guardianship_ended_guardian":
        if not subject.guardian_email or subject.guardian_ended_at is None:
            return None  # a new guardian was recorded in the meantime
        return _compose(subject, kind, "", to=subject.guardian_email, member=subject.email)
    if kind == "email_change":
        if not subject.pending_email:
            return None  # confirmed or replaced in the meantime
        fingerprint = email_fingerprint(subject.pending_email)
        link = absolute_url(
            "public.email_change", token=tokens.make_email_change(subject.id, fingerprint)
        )
        return _compose(subject, kind, link, to=subject.pending_email)
    if kind == "statement_notice":
        return _statement_notice(session, subject, payload)
    if kind == "mandate_confirm":
        mandate = session.get(SepaMandate, payload.get("mandate_id", 0))
        if mandate is None or mandate.subject_id != subject.id:
            return None
        if mandate.status != "awaiting_member":
            return None  # confirmed, ended or erased in the meantime
        link = absolute_url(
            "public.mandate_confirm", token=tokens.make_mandate(subject.id, mandate.id)
        )
        return _compose(
            subject, kind, link, mandate=mandate, masked_iban=iban.mask(mandate.iban_last4)
        )
    if kind == "data_copy":
        link = absolute_url("public.download", token=tokens.make_download(subject.id))
    else:
        link = absolute_url("public.preferences", token=tokens.make_preferences(subject.id))
    return _compose(subject, kind, link)


def send(outgoing: Outgoing) -> None:
    """Send over SMTP, or without MAIL_SERVER write the mail to MAIL_DIR for a person to open."""
    config = current_app.config
    if config["MAIL_SERVER"]:
        # Flask-Mail opens its SMTP connection without a time-out; the default for new
        # sockets is the only way to give it one, and only this worker sends mail.
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(config["MAIL_TIMEOUT"])
        try:
            mail.send(outgoing.message)
        finally:
            socket.setdefaulttimeout(previous)
        return
    folder = Path(config["MAIL_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{utcnow():%Y%m%dT%H%M%S%f}-{outgoing.kind}"
    (folder / f"{stem}.eml").write_bytes(outgoing.message.as_bytes())
    opened = folder / f"{stem}.eml"
    if outgoing.message.html is not None:
        opened = folder / f"{stem}.html"
        opened.write_text(outgoing.message.html, encoding="utf-8")
    # Only in this try-it-out mode does a link reach the terminal: it is the member's own
    # mail, shown to the person running the service on their machine.
    recipient = mask(outgoing.message.recipients[0])
    click.echo(f"[mail] {outgoing.kind} to {recipient}: {outgoing.link}  ({opened})")


SUBJECT_LINES = {
    "confirm": lambda library: gettext("Confirm your subscription to %(library)s", library=library),
    "already_subscribed": lambda library: gettext(
        "You are already subscribed to %(library)s", library=library
    ),
    "preference_link": lambda library: gettext(
        "Your link to your mail settings at %(library)s", library=library
    ),
    "reconfirm": lambda library: gettext(
        "%(library)s changed its wording: do you still want this mail?", library=library
    ),
    "email_change": lambda library: gettext(
        "Confirm your new e-mail address at %(library)s", library=library
    ),
    "data_copy": lambda library: gettext(
        "Your data at %(library)s: your download link", library=library
    ),
    "statement_notice": lambda library: gettext(
        "%(library)s changes its privacy statement", library=library
    ),
    "family_request": lambda library: gettext(
        "Someone wants to manage your mail settings at %(library)s", library=library
    ),
    "family_change": lambda library: gettext(
        "A family member changed your mail settings at %(library)s", library=library
    ),
    "family_ended": lambda library: gettext(
        "Family access to mail settings at %(library)s has stopped", library=library
    ),
    "guardian_confirm": lambda library: gettext(
        "Do you give permission? Mail from %(library)s", library=library
    ),
    "guardianship_ended": lambda library: gettext(
        "From now on you decide about your mail from %(library)s", library=library
    ),
    "guardianship_ended_guardian": lambda library: gettext(
        "%(library)s: your role as parent or guardian has ended", library=library
    ),
    "mandate_confirm": lambda library: gettext(
        "Confirm your direct debit mandate for %(library)s", library=library
    ),
    "sample_newsletter": lambda library: gettext("News from %(library)s", library=library),
}


def _statement_notice(
    session: Session, subject: Subject, payload: dict[str, Any]
) -> Outgoing | None:
    """A new privacy statement's notice, if the person still gets the newsletter now:
    a withdrawal made after the notice was queued stops it."""
    statement = session.get(PrivacyStatement, payload.get("statement_id") or 0)
    suppression_key = current_app.config["SUPPRESSION_KEY"]
    if statement is None or not statement_notice_allowed(
        session, subject, statement, suppression_key=suppression_key
    ):
        return None
    newsletter = purpose_by_code(subject.library, "newsletter")
    link = absolute_url("public.preferences", token=tokens.make_preferences(subject.id))
    unsubscribe = absolute_url(
        "public.unsubscribe", token=tokens.make_unsubscribe(subject.id, newsletter.id)
    )
    outgoing = _compose(
        subject, "statement_notice", link, statement=statement,
        summary=statement.summary(subject.language), unsubscribe_link=unsubscribe,
    )  # fmt: skip
    _list_headers(outgoing, unsubscribe, newsletter)
    return outgoing


def sample_newsletter(
    subject: Subject, purpose: Purpose, unsubscribe: str, preferences: str
) -> Outgoing:
    """The demo's newsletter (demo_send.py): what a processor would send, with its headers."""
    outgoing = _compose(
        subject, "sample_newsletter", unsubscribe,
        title=_titles([purpose], subject.language)[0],
        preferences_link=preferences, unsubscribe_link=unsubscribe,
    )  # fmt: skip
    # A newsletter is not an automatic reply, unlike the service's own mails.
    del outgoing.message.extra_headers["Auto-Submitted"]
    _list_headers(outgoing, unsubscribe, purpose)
    return outgoing


def _list_headers(outgoing: Outgoing, unsubscribe: str, purpose: Purpose) -> None:
    """RFC 2369 and RFC 8058 headers: the mail program's own "unsubscribe" stops it in one
    click, as in every newsletter the senders send (see the consent check)."""
    headers = outgoing.message.extra_headers
    if headers is None:
        headers = outgoing.message.extra_headers = {}
    headers.update({
        "List-Unsubscribe": _Unfolded("List-Unsubscribe", f"<{unsubscribe}>"),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": list_id(purpose),
    })  # fmt: skip


class _Unfolded(str):
    """A header value written on one line as it is (RFC 5322 allows 998 characters).

    Python's mail policy would fold a link longer than 78 characters, which has no space
    to fold at, into RFC 2047 encoded words, and mail programs then no longer find the
    link in List-Unsubscribe. The policy writes a value with a name and fold() itself.
    """

    name: str

    def __new__(cls, name: str, value: str) -> _Unfolded:
        made = super().__new__(cls, one_line(value))
        made.name = name
        return made

    def fold(self, *, policy: Any) -> str:
        return f"{self.name}: {self}{policy.linesep}"


def _compose_family(session: Session, subject: Subject, payload: dict[str, Any]) -> Outgoing | None:
    """A family-access mail, or None when its reason has gone (answered, erased, ended)."""
    kind = payload["mail"]
    access = session.get(FamilyAccess, payload["access_id"])
    if access is None or subject.id not in (access.holder_id, access.giver_id):
        return None
    other = access.holder if subject.id == access.giver_id else access.giver
    if other.erased_at is not None:
        return None
    own_link = absolute_url("public.preferences", token=tokens.make_preferences(subject.id))
    if kind == "family_request":
        if access.status != "requested":
            return None  # answered or ended in the meantime
        link = absolute_url("family.answer", token=tokens.make_family(access.id, subject.id))
        days = current_app.config["FAMILY_REQUEST_MAX_AGE"] // DAY
        return _compose(subject, kind, link, asker=other.email, request_days=days)
    if kind == "family_change":
        event = session.get(ConsentEvent, payload["event_id"])
        if event is None or event.subject_id != subject.id:
            return None
        titles = _titles([event.purpose], subject.language)
        return _compose(
            subject, kind, own_link, holder=other.email, title=titles[0], action=event.action
        )
    if kind == "family_ended":
        # Only the side that did not end it is mailed.
        return _compose(
            subject, kind, own_link, other=other.email, i_gave=subject.id == access.giver_id
        )
    raise outbox.GiveUp(f"unknown mail {kind!r}")


def _queue(session: Session, subject: Subject, kind: str, **params: Any) -> None:
    outbox.enqueue_mail(session, subject.library_id, kind, subject.id, **params)


def _compose(
    subject: Subject, kind: str, link: str, to: str | None = None, **context: object
) -> Outgoing:
    library = subject.library
    sender, reply_to = library_face.sender_of(library, current_app.config["MAIL_DEFAULT_SENDER"])
    with force_locale(subject.language):
        values = dict(
            library=library,
            link=link,
            logo_url=_logo_url(library),
            days=current_app.config["CONFIRM_MAX_AGE"] // DAY,
            preference_days=current_app.config["PREFERENCES_MAX_AGE"] // DAY,
            download_days=current_app.config["DOWNLOAD_MAX_AGE"] // DAY,
            **context,
        )
        message = Message(
            subject=one_line(SUBJECT_LINES[kind](library.name)),
            sender=one_line(sender),
            reply_to=reply_to,
            recipients=[to or subject.email],
            body=render_template(f"email/{kind}.txt", **values),
            html=render_template(f"email/{kind}.html", **values),
            extra_headers={
                "Auto-Submitted": "auto-generated",
                "Content-Language": subject.language,
            },
        )
    message.msgId = make_msgid(domain="consentsvc")
    return Outgoing(kind, message, link)


def _logo_url(library: Library) -> str | None:
    """The logo at the service's own address (never a third party's), with its version in
    the URL: a new logo has a new address, so no mail program shows an old one from cache."""
    if not library.logo_sha256:
        return None
    return absolute_url("public.logo", library=library.slug, v=library.logo_sha256[:16])


def _titles(purposes: list[Purpose], language: str) -> list[str]:
    titles = []
    for purpose in purposes:
        text = current_text(purpose, language)
        titles.append(text.title if text else purpose.code)
    return titles


def _may_send_confirmation(subject: Subject, *, news: bool) -> bool:
    if _cooled(subject.last_confirm_mail_at):
        subject.recent_confirm_mails = 0
    sent = subject.recent_confirm_mails or 0
    if sent and not (news and sent < MAX_CONFIRM_MAILS):
        return False
    subject.recent_confirm_mails = sent + 1
    subject.last_confirm_mail_at = utcnow()
    return True


def _cooled(last: datetime | None) -> bool:
    cooldown = timedelta(seconds=current_app.config["MAIL_COOLDOWN"])
    return last is None or utcnow() - last >= cooldown
