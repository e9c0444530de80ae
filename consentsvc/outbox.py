"""The transactional outbox: what to send is written in the same transaction as the change
that caused it; `consentsvc worker` delivers it afterwards, with retries.

Webhooks follow Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature) and its
retry schedule; the service's own mails go the same way, so a crash between commit and send
loses nothing and a failing SMTP server is retried. Requests whose outcome must not show in
the answer (signups, "mail me my link") wait here too, until the worker decides them.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import secrets
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from .models import ConsentEvent, OutboxMessage, SepaMandate, Subject, WebhookEndpoint, utcnow

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "consent.granted",
    "consent.withdrawn",
    "consent.objected",
    "suppression.added",
    "subject.erased",
    # For the payment system: a direct-debit mandate became active, or ended (IBAN masked).
    "mandate.approved",
    "mandate.ended",
)
# What "send a test event" sends: to one receiver only, whatever it subscribed to, with no
# personal data; signed and delivered like any other event.
TEST_EVENT = "webhook.test"
# Standard Webhooks' schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), stretched with two
# daily attempts so an endpoint may be down for about three days before a message is dropped.
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000, 86400, 86400)
# How long a worker holds the messages it claimed (docs/operations.md says so; a test
# compares). MAIL_TIMEOUT bounds each SMTP exchange, not a whole mail: a slow server may take
# it on each of the eight or so exchanges of one mail, and a hold that ran out meanwhile would
# let a second worker send the same mail again. Not longer, because the messages of a worker
# that dies wait this long for another.
LEASE = timedelta(minutes=5)
# The longest one delivery may take: connect, send, and wait for the status line. A worker
# starts a delivery only while its lease has at least this much time left, so a lease never
# runs out while a message is on its way and no other worker can take it meanwhile.
SEND_BUDGET = timedelta(seconds=30)
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_URL = 500  # the column's length
# What a queued request holds about the person, dropped once it is decided.
PERSONAL_REQUEST_FIELDS = ("email", "proof")


class EndpointRefused(ValueError):
    """A webhook endpoint that cannot be registered.

    `code` names the reason (events, scheme, credentials, unresolvable, not_public) and `host`
    the host it concerns, so the console can say it in the staff member's language; the
    message is English, for the command line and the worker's log.
    """

    def __init__(self, code: str, message: str, host: str | None = None) -> None:
        super().__init__(message)
        self.code, self.host = code, host


class UnsafeURL(EndpointRefused):
    """A webhook URL the service will not call."""


# -- writing --------------------------------------------------------------------------------


def new_secret() -> str:
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def enqueue_event(
    session: Session, library_id: int, event_type: str, data: dict[str, Any]
) -> list[OutboxMessage]:
    """Queue one webhook per active endpoint of the library that wants this event."""
    messages = []
    endpoints = session.scalars(
        select(WebhookEndpoint).where(
            WebhookEndpoint.library_id == library_id, WebhookEndpoint.active.is_(True)
        )
    )
    for endpoint in endpoints:
        if event_type not in endpoint.events:
            continue
        message = OutboxMessage(
            library_id=library_id,
            channel="webhook",
            endpoint_id=endpoint.id,
            event_type=event_type,
            message_id=_message_id(),
            payload={"type": event_type, "timestamp": _iso(utcnow()), "data": data},
        )
        session.add(message)
        messages.append(message)
    return messages


def enqueue_mail(
    session: Session, library_id: int, kind: str, subject_id: int, **params: Any
) -> OutboxMessage:
    """Queue one of the service's own mails; it is composed when it is sent."""
    return _queue_mail(session, library_id, kind, {"subject_id": subject_id, **params})


def enqueue_staff_mail(
    session: Session, library_id: int, kind: str, *, to: str, **params: Any
) -> OutboxMessage:
    """Queue a mail to the library's own people (not to a member), e.g. its privacy officer."""
    return _queue_mail(session, library_id, kind, {"to": to, **params})


def _queue_mail(
    session: Session, library_id: int, kind: str, payload: dict[str, Any]
) -> OutboxMessage:
    message = OutboxMessage(
        library_id=library_id,
        channel="mail",
        event_type=f"mail.{kind}",
        message_id=_message_id(),
        payload={**payload, "mail": kind},
    )
    session.add(message)
    return message


def enqueue_request(
    session: Session, library_id: int, kind: str, payload: dict[str, Any]
) -> OutboxMessage:
    """Queue a request for the worker to decide (see intake.py); the same row for any address."""
    message = OutboxMessage(
        library_id=library_id,
        channel="request",
        event_type=f"request.{kind}",
        message_id=_message_id(),
        payload={"request": kind, **payload},
    )
    session.add(message)
    return message


def add_endpoint(
    session: Session,
    library_id: int,
    url: str,
    events: Iterable[str],
    *,
    allow_http: bool = False,
    allowed_networks: Iterable[str] = (),
) -> WebhookEndpoint:
    """Register a webhook URL after checking it is safe to call; its secret is made here."""
    events = list(dict.fromkeys(events))
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown or not events:
        raise EndpointRefused("events", f"unknown events: {', '.join(unknown) or 'none given'}")
    if len(url) > MAX_URL:
        raise EndpointRefused("too_long", f"a URL has at most {MAX_URL} characters")
    check_url(url, allow_http=allow_http, allowed=allowed_networks)
    endpoint = WebhookEndpoint(library_id=library_id, url=url, events=events, secret=new_secret())
    session.add(endpoint)
    session.flush()
    return endpoint


def forget_address(session: Session, library_id: int, email: str) -> None:
    """Take an erased person's address out of webhooks that still wait, and drop the
    requests that still wait for them: erasure must not be undone by a signup a moment old."""
    waiting = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.library_id == library_id,
            OutboxMessage.channel.in_(("webhook", "request")),
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.dead_at.is_(None),
        )
    )
    for message in waiting:
        if message.channel == "request" and message.payload.get("email") == email:
            _dead(message, "the person was erased")
        elif message.payload.get("data", {}).get("email") == email:
            _forget_address(message)


def endpoints_of(session: Session, library_id: int) -> list[WebhookEndpoint]:
    """The library's webhook receivers, stopped ones too, oldest first."""
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.library_id == library_id)
            .order_by(WebhookEndpoint.id)
        )
    )


def find_endpoint(session: Session, library_id: int, endpoint_id: int) -> WebhookEndpoint | None:
    """One of the library's receivers; another library's is not there for it."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    return endpoint if endpoint is not None and endpoint.library_id == library_id else None


def endpoint_counts(session: Session, endpoint_id: int) -> dict[str, int]:
    """How many messages for an endpoint wait, were delivered, or were given up."""
    rows = session.execute(
        select(OutboxMessage.delivered_at.is_not(None), OutboxMessage.dead_at.is_not(None)).where(
            OutboxMessage.endpoint_id == endpoint_id
        )
    )
    counts = {"waiting": 0, "delivered": 0, "dead": 0}
    for delivered, dead in rows:
        counts["delivered" if delivered else "dead" if dead else "waiting"] += 1
    return counts


def deliveries(session: Session, endpoint: WebhookEndpoint, limit: int = 50) -> list[OutboxMessage]:
    """The receiver's latest messages, newest first: its delivery log."""
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.endpoint_id == endpoint.id)
            .order_by(OutboxMessage.id.desc())
            .limit(limit)
        )
    )


def find_delivery(
    session: Session, endpoint: WebhookEndpoint, message_id: int
) -> OutboxMessage | None:
    """One message of this receiver's log; a message of any other receiver is not there."""
    message = session.get(OutboxMessage, message_id)
    return message if message is not None and message.endpoint_id == endpoint.id else None


class NotQueued(ValueError):
    """A test event or a redelivery that is not queued; `code` says why (not_given_up,
    stopped, address_gone), for the console to say in the staff member's language."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def enqueue_test(session: Session, endpoint: WebhookEndpoint) -> OutboxMessage:
    """Queue a test event for one receiver: signed, retried and logged like any other, and
    about nobody (no address, no person), so it is safe to send at any time."""
    if not endpoint.active:
        raise NotQueued("stopped")
    now = utcnow()
    message = OutboxMessage(
        library_id=endpoint.library_id,
        channel="webhook",
        endpoint_id=endpoint.id,
        event_type=TEST_EVENT,
        message_id=_message_id(),
        payload={
            "type": TEST_EVENT,
            "timestamp": _iso(now),
            "data": {"library": endpoint.library.slug, "test": True},
        },
        created_at=now,
        next_attempt_at=now,
    )
    session.add(message)
    session.flush()
    return message


def redeliver(session: Session, message: OutboxMessage) -> None:
    """Put a given-up webhook back in the queue, due now, with a fresh count of attempts.

    A fresh count, because the message was given up after the whole retry schedule: kept,
    its next failure would end it at once, while whoever fixed the receiver wants the full
    three days again. The webhook-id stays the same, so a receiver that did take it (and
    answered badly) can drop the second copy. The address was taken out when the message
    was given up (`_forget_address`); it is put back from the ledger for consent and
    mandate events of a person who still exists, and otherwise the message is refused:
    an event about nobody would tell the receiver nothing, and erasure must stay erasure.
    """
    if message.dead_at is None or message.channel != "webhook":
        raise NotQueued("not_given_up")
    if message.endpoint is None or not message.endpoint.active:
        raise NotQueued("stopped")
    data = dict(message.payload.get("data", {}))
    if message.event_type != TEST_EVENT and "email" not in data:
        person = _person_of(session, message.library_id, message.event_type, data)
        if person is None or person.erased_at is not None:
            raise NotQueued("address_gone")
        data["email"] = person.email
        message.payload = {**message.payload, "data": data}
    message.dead_at = None
    message.attempts = 0
    message.last_error = message.last_status = message.leased_until = None
    message.next_attempt_at = utcnow()


def _person_of(
    session: Session, library_id: int, event_type: str, data: dict[str, Any]
) -> Subject | None:
    """Whom a consent or mandate event was about, as far as the ledger still knows."""
    if event_type.startswith("consent.") and isinstance(data.get("event_id"), int):
        event = session.get(ConsentEvent, data["event_id"])
        if event is not None and event.library_id == library_id:
            return session.get(Subject, event.subject_id)
    elif event_type.startswith("mandate.") and data.get("mandate_reference"):
        mandate = session.scalar(
            select(SepaMandate).where(
                SepaMandate.library_id == library_id,
                SepaMandate.reference == data["mandate_reference"],
            )
        )
        return mandate.subject if mandate is not None else None
    return None


def enqueue_many(
    session: Session,
    library_id: int,
    events: Iterable[tuple[str, dict[str, Any]]] = (),
    mails: Iterable[tuple[str, int, datetime, dict[str, Any]]] = (),
) -> int:
    """Queue many webhooks (event type, data) and mails (kind, subject id, when, params)
    in one statement: what enqueue_event and enqueue_mail queue one at a time, for a bulk
    change such as an import. Returns the number of messages queued."""
    now = utcnow()
    endpoints = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events).where(
            WebhookEndpoint.library_id == library_id, WebhookEndpoint.active.is_(True)
        )
    ).all()
    rows: list[dict[str, Any]] = []
    for event_type, data in events:
        for endpoint_id, wanted in endpoints:
            if event_type in wanted:
                rows.append(dict(
                    library_id=library_id, channel="webhook", endpoint_id=endpoint_id,
                    event_type=event_type, message_id=_message_id(), created_at=now,
                    next_attempt_at=now,
                    payload={"type": event_type, "timestamp": _iso(now), "data": data},
                ))  # fmt: skip
    for kind, subject_id, due, params in mails:
        rows.append(dict(
            library_id=library_id, channel="mail", endpoint_id=None, event_type=f"mail.{kind}",
            message_id=_message_id(), created_at=now, next_attempt_at=due,
            payload={"subject_id": subject_id, "mail": kind, **params},
        ))  # fmt: skip
    if rows:
        session.execute(insert(OutboxMessage), rows)
    return len(rows)


@dataclass(frozen=True)
class Backlog:
    """What waits in the outbox: for `worker status`, /metrics and an operator's alerts."""

    due: int  # to be delivered now (a first attempt or a retry whose time has come)
    waiting: int  # failed before, retried later
    given_up: int
    oldest_due_seconds: float  # how long the oldest due message has waited (0: none due)


def backlog(session: Session, now: datetime | None = None) -> Backlog:
    """Counts of undelivered messages, in one query (over the outbox's due index)."""
    now = now or utcnow()
    open_ = OutboxMessage.delivered_at.is_(None) & OutboxMessage.dead_at.is_(None)
    is_due = open_ & (OutboxMessage.next_attempt_at <= now)
    row = session.execute(
        select(
            func.count().filter(is_due),
            func.count().filter(open_ & (OutboxMessage.next_attempt_at > now)),
            func.count().filter(OutboxMessage.dead_at.is_not(None)),
            func.min(OutboxMessage.next_attempt_at).filter(is_due),
        )
    ).one()
    oldest = row[3]
    return Backlog(row[0], row[1], row[2], (now - oldest).total_seconds() if oldest else 0.0)


# -- delivering ---------------------------------------------------------------------------------


@dataclass
class Report:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    # Requests (signups, link requests) carried out; what they queue is counted as delivered.
    decided: int = 0
    errors: list[str] = field(default_factory=list)
    # (channel, result) -> count, for /metrics: webhook, mail or request; delivered, retry
    # or given_up.
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def handled(self) -> int:
        return self.delivered + self.retried + self.dead + self.decided


class RetryLater(Exception):
    """A delivery that failed in a way worth trying again (status: the HTTP answer, if any)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GiveUp(Exception):
    """A delivery that can never succeed (status: the HTTP answer, if any)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# Sends a queued mail: (payload, the message's id, the same on every retry).
MailSender = Callable[[dict[str, Any], str], None]
# Decides a queued request: (library id, payload).
Decider = Callable[[int, dict[str, Any]], None]


def deliver_due(
    session: Session,
    *,
    send_mail: MailSender,
    decide: Decider,
    allowed_networks: Iterable[str] = (),
    allow_http: bool = False,
    limit: int = 50,
) -> Report:
    """Claim the messages that are due, deliver them, and record each outcome.

    Deciding a request queues its mail, due at once: then one more batch is claimed, so a
    single turn of the worker takes a signup all the way to the member's inbox.
    """
    report = Report()
    for _round in range(2):
        decided = report.decided
        ids = claim(session, limit=limit)
        if not ids:
            break
        _deliver(session, ids, report, send_mail, decide, allowed_networks, allow_http)
        if report.decided == decided:
            break
    return report


def _deliver(
    session: Session,
    ids: list[int],
    report: Report,
    send_mail: MailSender,
    decide: Decider,
    allowed_networks: Iterable[str],
    allow_http: bool,
) -> None:
    lease_end = utcnow() + LEASE
    with webhook_client(allowed_networks) as client:
        for position, message_id in enumerate(ids):
            if utcnow() + SEND_BUDGET > lease_end:
                release(session, ids[position:])
                break
            message = session.get(OutboxMessage, message_id)
            if message is None:
                continue
            message.attempts += 1
            try:
                if message.channel == "mail":
                    send_mail(message.payload, message.message_id)
                elif message.channel == "request":
                    decide(message.library_id, message.payload)
                else:
                    message.last_status = _post_webhook(client, message, allow_http=allow_http)
            except GiveUp as exc:
                message.last_status = exc.status
                _dead(message, str(exc))
                report.dead += 1
                report.outcomes[(message.channel, "given_up")] += 1
            except Exception as exc:
                # Whatever went wrong, this message waits for its next turn and the others
                # still go: one bad message must never stop the worker.
                session.rollback()
                message = session.get(OutboxMessage, message_id)
                if message is None:
                    continue
                message.attempts += 1
                message.last_status = exc.status if isinstance(exc, RetryLater) else None
                error = str(exc) if isinstance(exc, RetryLater) else type(exc).__name__
                if not isinstance(exc, RetryLater):
                    log.warning("outbox message %s failed: %s", message.id, error)
                if _retry(message, error):
                    report.retried += 1
                    report.outcomes[(message.channel, "retry")] += 1
                else:
                    report.dead += 1
                    report.outcomes[(message.channel, "given_up")] += 1
                report.errors.append(error)
            else:
                message.delivered_at = utcnow()
                message.leased_until = None
                _forget_address(message)
                if message.channel == "request":
                    report.decided += 1
                else:
                    report.delivered += 1
                report.outcomes[(message.channel, "delivered")] += 1
            session.commit()


def release(session: Session, ids: list[int]) -> None:
    """Give back messages this worker claimed but will not try now."""
    session.execute(
        update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(leased_until=None)
    )
    session.commit()


def claim(session: Session, *, limit: int = 50, now: datetime | None = None) -> list[int]:
    """Take up to `limit` due messages for this worker and commit the lease at once.

    On PostgreSQL, SKIP LOCKED lets several workers claim side by side without waiting for
    or taking each other's messages; SQLite runs one writer at a time anyway.
    """
    now = now or utcnow()
    due = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.dead_at.is_(None),
            OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.leased_until.is_(None), OutboxMessage.leased_until < now),
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(due))
    if ids:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(leased_until=now + LEASE)
        )
    session.commit()
    return ids


def _post_webhook(client: httpx.Client, message: OutboxMessage, *, allow_http: bool) -> int:
    """Send one webhook; the receiver's HTTP status when it took it (2xx)."""
    endpoint = message.endpoint
    if endpoint is None or not endpoint.active:
        raise GiveUp("endpoint disabled")
    body = json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False)
    sent_at = utcnow()
    signature = Webhook(endpoint.secret).sign(message.message_id, sent_at, body)
    headers = {
        "content-type": "application/json",
        "user-agent": "consentsvc-webhooks/1",
        "webhook-id": message.message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }
    try:
        check_url(endpoint.url, allow_http=allow_http, resolve=False)
        # Only the status matters; the body is never read, so a receiver that trickles it
        # cannot hold the worker.
        with client.stream(
            "POST", endpoint.url, content=body.encode(), headers=headers
        ) as response:
            status = response.status_code
    except UnsafeURL as exc:
        raise GiveUp(f"unsafe url: {exc}") from None
    except httpx.HTTPError as exc:
        raise RetryLater(type(exc).__name__) from None
    if status == 410:
        # The receiver says this endpoint is gone for good: stop sending to it.
        endpoint.active = False
        endpoint.disabled_reason = f"410 Gone on {_iso(utcnow())}"
        raise GiveUp("410 Gone: endpoint disabled", status)
    if not 200 <= status < 300:
        raise RetryLater(f"HTTP {status}", status)
    return status


def _retry(message: OutboxMessage, error: str) -> bool:
    message.leased_until = None
    message.last_error = error[:200]
    if message.attempts > len(RETRY_DELAYS):
        message.dead_at = utcnow()
        _forget_address(message)
        return False
    delay = RETRY_DELAYS[message.attempts - 1]
    jitter = random.uniform(0.9, 1.1)  # noqa: S311 - spreads retries, not a secret  # nosec B311
    message.next_attempt_at = utcnow() + timedelta(seconds=delay * jitter)
    return True


def _dead(message: OutboxMessage, error: str) -> None:
    message.leased_until = None
    message.last_error = error[:200]
    message.dead_at = utcnow()
    _forget_address(message)


def _forget_address(message: OutboxMessage) -> None:
    """Once a webhook or request is done with, keep what happened but not to whom."""
    if message.channel == "webhook" and "email" in message.payload.get("data", {}):
        data = {k: v for k, v in message.payload["data"].items() if k != "email"}
        message.payload = {**message.payload, "data": data}
    elif message.channel == "request":
        # The ledger now holds the evidence; the row keeps only what kind of request it was.
        message.payload = {
            k: v for k, v in message.payload.items() if k not in PERSONAL_REQUEST_FIELDS
        }


# -- where webhooks may go ------------------------------------------------------------------------


def check_url(
    url: str, *, allow_http: bool, resolve: bool = True, allowed: Iterable[str] = ()
) -> None:
    """Refuse URLs the service must not call: not https (unless allowed), with credentials,
    or (when resolve) naming a private, loopback or link-local address not allowed."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        raise UnsafeURL("scheme", "only https URLs are accepted")
    if not parts.hostname or parts.username or parts.password:
        raise UnsafeURL("credentials", "the URL needs a host and no user name or password")
    if resolve:
        _vetted_addresses(parts.hostname, parts.port or 443, _networks(allowed))


def webhook_client(allowed_networks: Iterable[str] = ()) -> httpx.Client:
    """An HTTP client that never follows redirects and checks every address it connects to."""
    transport = httpx.HTTPTransport(retries=0)
    # The check happens where the socket is opened, so a DNS answer that changes between
    # registration and delivery (DNS rebinding) cannot lead the request inside.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        network_backend=_GuardedBackend(_networks(allowed_networks)),
        retries=0,
    )
    return httpx.Client(transport=transport, follow_redirects=False, timeout=TIMEOUT)


class _GuardedBackend(httpcore.SyncBackend):
    def __init__(self, allowed: list[ipaddress._BaseNetwork]) -> None:
        self.allowed = allowed

    def connect_tcp(
        self, host: str, port: int, *args: Any, **kwargs: Any
    ) -> httpcore.NetworkStream:
        try:
            addresses = _vetted_addresses(host, port, self.allowed)
        except UnsafeURL as exc:
            raise httpcore.ConnectError(str(exc)) from None
        return super().connect_tcp(addresses[0], port, *args, **kwargs)


def _vetted_addresses(host: str, port: int, allowed: list[ipaddress._BaseNetwork]) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UnsafeURL("unresolvable", f"cannot resolve {host}", host) from None
    addresses = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if any(ip in network for network in allowed):
            addresses.append(str(ip))
            continue
        if not all(candidate.is_global for candidate in _with_embedded(ip)):
            raise UnsafeURL("not_public", f"{host} resolves to a non-public address", host)
        addresses.append(str(ip))
    return addresses


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


def _with_embedded(ip: ipaddress._BaseAddress) -> list[ipaddress._BaseAddress]:
    """The address and any IPv4 address hidden inside it (mapped, 6to4, Teredo, NAT64)."""
    found: list[ipaddress._BaseAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            found.append(ip.ipv4_mapped)
        if ip.sixtofour:
            found.append(ip.sixtofour)
        if ip.teredo:
            found.extend(ip.teredo)
        if ip in _NAT64 or ip in _V4_COMPATIBLE:
            found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _networks(allowed: Iterable[str]) -> list[ipaddress._BaseNetwork]:
    return [ipaddress.ip_network(n, strict=False) for n in allowed]


def _message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
