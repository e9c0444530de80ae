"""The service's own mails: confirmation, 'already subscribed', preference link.

Views build a mail before they commit (so the cool-down stamp is part of the same
transaction) and deliver it after the commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from pathlib import Path

import click
from flask import current_app, render_template
from flask_babel import force_locale, gettext
from flask_mail import Message

from . import tokens
from .config import DAY
from .extensions import mail
from .ledger import SignupResult, current_text
from .models import ConsentEvent, Purpose, Subject, utcnow

log = logging.getLogger(__name__)


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


def mask(email: str) -> str:
    """An address as it may appear in a log line: first letter and domain only."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


# A signup that makes something newly pending is news and is mailed, but never more than
# this many confirmation mails before the person has had a quiet cool-down period: an
# unsubscribe-and-undo loop must not become a way to flood someone's inbox.
MAX_CONFIRM_MAILS = 3


def after_signup(subject: Subject, result: SignupResult) -> Outgoing | None:
    """The mail a signup calls for, if the cool-down allows one."""
    if result.request_ids and _may_send_confirmation(subject, news=result.newly_pending):
        link = absolute_url(
            "public.confirm", token=tokens.make_confirm(subject.id, result.request_ids)
        )
        purposes = [p for p in subject.library.purposes if p.code in result.pending]
        return _compose(subject, "confirm", link, titles=_titles(purposes, subject.language))
    if not result.request_ids and result.already_granted:
        return preference_link(subject, kind="already_subscribed")
    return None


def confirm_again(subject: Subject, requests: list[ConsentEvent]) -> Outgoing | None:
    """A fresh confirmation link for requests whose link expired."""
    if not requests or not _may_send_confirmation(subject, news=False):
        return None
    token = tokens.make_confirm(subject.id, [r.id for r in requests])
    link = absolute_url("public.confirm", token=token)
    titles = _titles([r.purpose for r in requests], subject.language)
    return _compose(subject, "confirm", link, titles=titles)


def preference_link(subject: Subject, kind: str = "preference_link") -> Outgoing | None:
    """A mail with a fresh link to the preference centre, if the cool-down allows one."""
    if not _cooled(subject.last_link_mail_at):
        return None
    subject.last_link_mail_at = utcnow()
    link = absolute_url("public.preferences", token=tokens.make_preferences(subject.id))
    return _compose(subject, kind, link)


def deliver(outgoing: Outgoing | None) -> None:
    """Send over SMTP, or without MAIL_SERVER write the mail to MAIL_DIR for a person to open."""
    if outgoing is None:
        return
    config = current_app.config
    if config["MAIL_SERVER"]:
        try:
            mail.send(outgoing.message)
        except OSError as exc:
            log.warning("mail %s could not be sent: %s", outgoing.kind, type(exc).__name__)
        return
    folder = Path(config["MAIL_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{utcnow():%Y%m%dT%H%M%S%f}-{outgoing.kind}"
    (folder / f"{stem}.eml").write_bytes(outgoing.message.as_bytes())
    (folder / f"{stem}.html").write_text(outgoing.message.html or "", encoding="utf-8")
    # Only in this try-it-out mode does a link reach the terminal: it is the member's own
    # mail, shown to the person running the service on their machine.
    recipient = mask(outgoing.message.recipients[0])
    click.echo(f"[mail] {outgoing.kind} to {recipient}: {outgoing.link}  ({folder / stem}.html)")


SUBJECT_LINES = {
    "confirm": lambda library: gettext("Confirm your subscription to %(library)s", library=library),
    "already_subscribed": lambda library: gettext(
        "You are already subscribed to %(library)s", library=library
    ),
    "preference_link": lambda library: gettext(
        "Your link to your mail settings at %(library)s", library=library
    ),
}


def _compose(subject: Subject, kind: str, link: str, **context: object) -> Outgoing:
    library = subject.library
    with force_locale(subject.language):
        values = dict(
            library=library,
            link=link,
            days=current_app.config["CONFIRM_MAX_AGE"] // DAY,
            preference_days=current_app.config["PREFERENCES_MAX_AGE"] // DAY,
            **context,
        )
        message = Message(
            subject=SUBJECT_LINES[kind](library.name),
            recipients=[subject.email],
            body=render_template(f"email/{kind}.txt", **values),
            html=render_template(f"email/{kind}.html", **values),
            extra_headers={
                "Auto-Submitted": "auto-generated",
                "Content-Language": subject.language,
            },
        )
    message.msgId = make_msgid(domain="consentsvc")
    return Outgoing(kind, message, link)


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
