"""JSON for mailing processors and website backends: /api/v1/…, described in /api/openapi.json.

Every call carries `Authorization: Bearer csk_…`. A key sees its own library and purposes
only; anything else is a 403, never another library's data.
"""

from __future__ import annotations

import hashlib
import math
import time
from datetime import timedelta
from typing import Any, NoReturn

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask_limiter.util import get_remote_address
from limits import parse_many
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import TooManyRequests

from .. import clients, intake, ledger, mailer, metrics, tokens
from ..config import LANGUAGES
from ..database import end_read, reads_first, writing
from ..extensions import csrf, db, limiter
from ..ledger import Channel, LedgerError, Proof
from ..models import ApiClient, ConsentText, InboundEvent, Purpose, utcnow
from . import check_types, providers, purpose_cache
from .edge import screen_json
from .openapi import document

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> tuple[Response, int]:
    return error_response(error.status, error.code, error.message, error.field)


def error_response(
    status: int, code: str, message: str, field: str | None = None
) -> tuple[Response, int]:
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    response = jsonify(error=body)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="consentsvc"'
    return response, status


def rate_limit_key() -> str:
    """Limit per API key (hashed), so one busy sender does not slow down another."""
    key = _bearer() or (request.view_args or {}).get("key") or request.remote_addr or ""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:24]


def api_limit() -> str:
    return current_app.config["API_RATE_LIMIT"]


# One budget per key across every /api/v1 call, not one per route.
limited = limiter.shared_limit(api_limit, scope="api", key_func=rate_limit_key)


def refuse_key(status: int, code: str, message: str) -> NoReturn:
    """Answer a call without a valid key, counted per client address: past
    API_AUTH_FAILURE_RATE_LIMIT such calls get 429 instead.

    The per-key limit cannot see these calls (each wrong key is a budget of its own). A
    valid key is never counted or refused here, so others' failures do not slow it down.
    """
    if current_app.config["RATELIMIT_ENABLED"]:
        address = get_remote_address()
        for item in parse_many(current_app.config["API_AUTH_FAILURE_RATE_LIMIT"]):
            if not limiter.limiter.hit(item, "api-auth-failure", address):
                reset, _left = limiter.limiter.get_window_stats(item, "api-auth-failure", address)
                raise TooManyRequests(retry_after=max(1, math.ceil(reset - time.time())))
    raise ApiError(status, code, message)


@bp.before_request
def _authenticate() -> None:
    if request.endpoint in ("api.openapi", "api.provider_webhook"):
        return  # the document is public; provider webhooks authenticate by their URL
    client = clients.authenticate(db.session, _bearer() or "")
    if client is None:
        refuse_key(401, "unauthorized", "Send a valid key as 'Authorization: Bearer csk_…'.")
    _seen(client)


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of this API."""
    return jsonify(document(current_app.config["BASE_URL"]))


@bp.post("/v1/consent/check")
@limited
@reads_first
def consent_check() -> Response:
    """Which recipients may get mail for this purpose, with the headers to put in it."""
    if not request.is_json:
        raise ApiError(400, "invalid_body", check_types.NOT_AN_OBJECT)
    body = request.get_data()
    screen_json(body)
    try:
        asked = check_types.read_request(body)
    except check_types.Refused as refused:
        code = "invalid_field" if refused.field else "invalid_body"
        raise ApiError(400, code, refused.message, refused.field) from None
    client: ApiClient = g.client
    purpose = _checked_purpose(client, asked.purpose)
    decisions = ledger.check_in(
        db.session, purpose.scope, asked.recipients,
        suppression_key=current_app.config["SUPPRESSION_KEY"],
    )  # fmt: skip
    # On SQLite the read ends here and the decision is written in a transaction of its own;
    # the ids are taken now, as plain values, for that write.
    purpose_id, client_id = purpose.scope.purpose_id, client.id
    end_read(db.session)  # on SQLite no lock was taken for it (database.reads_first)
    subject_ids = [d.subject_id for d in decisions if d.allowed and d.subject_id is not None]
    base = current_app.config["BASE_URL"]
    preferences = {
        sid: f"{base}/preferences/{token}"
        for sid, token in zip(subject_ids, tokens.make_many_preferences(subject_ids), strict=True)
    }
    # A purpose that is not mail (direct debit) gets no unsubscribe link at all: mailbox
    # providers fire one-click on their own, and that must never end a payment mandate.
    headers: dict[int, Any] = {sid: {} for sid in subject_ids}
    if purpose.is_mail:
        one_click = "List-Unsubscribe=One-Click"
        links = tokens.make_many_unsubscribe([(sid, purpose_id) for sid in subject_ids])
        for sid, token in zip(subject_ids, links, strict=True):
            link = f"<{base}/unsubscribe/{token}>"
            headers[sid] = check_types.MailHeaders(link, one_click, purpose.list_id)
    with writing():
        kept = ledger.record_decision(
            db.session, purpose.scope.library_id, purpose_id, decisions, client_id=client_id
        )
        db.session.commit()
    metrics.count_check(kept.reasons)
    result = check_types.Result
    results = [
        result(d.email, True, d.reason, headers[d.subject_id], preferences[d.subject_id])
        if d.allowed and d.subject_id is not None
        else result(d.email, d.allowed, d.reason)
        for d in decisions
    ]
    answer = check_types.CheckAnswer(
        kept.id, purpose.scope.purpose_code, _iso(kept.checked_at), results
    )
    return Response(check_types.encode_answer(answer), mimetype="application/json")


@bp.post("/v1/signups")
@limited
def signups() -> tuple[Response, int]:
    """Start double opt-in for a person who ticked the box on the library website."""
    body = _json_object()
    email = _string(body, "email")
    codes = body.get("purposes")
    if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
        raise ApiError(400, "invalid_field", "A non-empty list of purpose codes.", "purposes")
    purposes = [_purpose_in_scope(code, field="purposes") for code in codes]
    language = body.get("language", g.client.library.default_language)
    if language not in LANGUAGES:
        raise ApiError(400, "invalid_field", f"One of {', '.join(LANGUAGES)}.", "language")
    text_ids = _shown_texts(body.get("text_versions"), purposes, language)
    evidence = body.get("evidence")
    evidence = {} if evidence is None else evidence
    if not isinstance(evidence, dict):
        raise ApiError(400, "invalid_field", "An object.", "evidence")
    proof = Proof(
        ip_address=_optional_string(evidence, "ip_address", 45, "evidence.ip_address"),
        user_agent=_optional_string(evidence, "user_agent", 400, "evidence.user_agent"),
        origin=_optional_string(evidence, "page_url", 200, "evidence.page_url"),
        details={"client": g.client.name},
    )
    try:
        ledger.normalise_email(email)
    except ledger.InvalidEmail:
        raise ApiError(400, "invalid_address", "Not a valid e-mail address.", "email") from None
    try:
        # Only recorded here, for every address alike; the worker decides (see intake.py).
        intake.record_signup(
            db.session, g.client.library, email, [p.code for p in purposes],
            language=language, channel=Channel.API, proof=proof, text_ids=text_ids,
            actor=_actor(),
        )  # fmt: skip
    except LedgerError as exc:
        db.session.rollback()
        raise ApiError(400, exc.code, "This purpose cannot be signed up for.", "purposes") from None
    db.session.commit()
    # The same answer for new, pending and confirmed addresses.
    return jsonify(status="accepted"), 202


@bp.post("/v1/events")
@limited
def events() -> Response:
    """Unsubscribes, spam complaints and hard bounces the sender saw."""
    body = _json_object()
    event = providers.Event(
        id=_string(body, "id", limit=200),
        type=_string(body, "type"),
        email=_string(body, "email"),
        purpose=_optional_string(body, "purpose", 40, "purpose"),
    )
    return jsonify(status=record_event(event))


@bp.route("/v1/providers/<provider>/<key>", methods=["GET", "POST"])
@csrf.exempt
@limited
def provider_webhook(provider: str, key: str) -> Response | tuple[Response, int]:
    """A processor's own webhook format (mailchimp, postmark, sendgrid, laposta, brevo), key
    in the URL because these processors cannot send an Authorization header."""
    parse = providers.PARSERS.get(provider)
    client = clients.authenticate(db.session, key)
    if client is None:
        refuse_key(404, "not_found", "No such webhook address.")
    if parse is None:
        return error_response(404, "not_found", "No such webhook address.")
    _seen(client)
    if request.method == "GET":
        return jsonify(status="ready")  # processors test the URL with a GET first
    try:
        found = parse(request, request.args.get("purpose"))
    except providers.BadPayload as exc:
        raise ApiError(400, "invalid_payload", str(exc)) from None
    # Each event stands alone: one the service cannot use must not block the others, or a
    # processor retrying the batch would never get its bounces through.
    statuses = []
    for event in found:
        try:
            statuses.append(record_event(event))
        except ApiError as error:
            db.session.rollback()
            statuses.append(f"rejected: {error.code} ({error.field or 'event'})")
    return jsonify(status="processed", events=len(found), results=statuses)


def record_event(event: providers.Event) -> str:
    """Apply one reported event once; 'duplicate' when its id was seen before."""
    client: ApiClient = g.client
    if event.type not in providers.TYPES:
        raise ApiError(400, "invalid_field", f"One of {', '.join(providers.TYPES)}.", "type")
    try:
        email = ledger.normalise_email(event.email)
    except ledger.InvalidEmail:
        raise ApiError(400, "invalid_address", "Not a valid e-mail address.", "email") from None
    purpose = None
    if event.type == "unsubscribe":
        if not event.purpose:
            raise ApiError(400, "invalid_field", "Which purpose to stop.", "purpose")
        purpose = _purpose_in_scope(event.purpose)
    key = current_app.config["SUPPRESSION_KEY"]
    report = InboundEvent(
        client_id=client.id,
        external_id=event.id,
        kind=event.type,
        email_hmac=ledger.email_hmac(key, email),
    )
    try:
        with db.session.begin_nested():
            db.session.add(report)
    except IntegrityError:
        return "duplicate"
    actor, library = _actor(), client.library
    subject = ledger.find_subject(db.session, library, email)
    if event.type == "unsubscribe" and subject is not None and purpose is not None:
        ledger.withdraw(
            db.session, subject, purpose.code, channel=Channel.PROVIDER_UNSUBSCRIBE, actor=actor
        )
    elif event.type == "complaint":
        if subject is not None:
            ledger.withdraw_all(
                db.session, subject, channel=Channel.PROVIDER_COMPLAINT, actor=actor
            )
        ledger.suppress(db.session, library, email, "complaint", suppression_key=key, actor=actor)
    elif event.type == "hard_bounce":
        # The mailbox is gone: its mail stops in the ledger too (not a direct debit), so the
        # record shows why, and a later signup of the address goes through double opt-in,
        # whose confirmation lifts the suppression.
        if subject is not None:
            ledger.withdraw_all(db.session, subject, channel=Channel.PROVIDER_BOUNCE, actor=actor)
        ledger.suppress(db.session, library, email, "hard_bounce", suppression_key=key, actor=actor)
    db.session.commit()
    return "processed"


# "/" may begin an address: the path must not be tidied into a redirect (308) to another one.
# What a key with direct_debit hears of each mandate (not the holder's name or the place).
MANDATE_FIELDS = ("reference", "creditor_id", "iban", "signed_on", "status", "active_since",
                  "ended_at")  # fmt: skip


@bp.get("/v1/subjects/<path:email>", merge_slashes=False)
@limited
def subject(email: str) -> Response:
    """The current state and history of one person, for this key's purposes only."""
    client: ApiClient = g.client
    try:
        ledger.normalise_email(email)
    except ledger.InvalidEmail:
        raise ApiError(400, "invalid_address", "Not a valid e-mail address.", "email") from None
    person = ledger.find_subject(db.session, client.library, email)
    if person is None:
        raise ApiError(404, "not_found", "This library does not know this address.")
    scope = set(client.purposes)
    states = [s for s in ledger.state_of(db.session, person) if s.purpose.code in scope]
    history = [e for e in ledger.history(db.session, person) if e.purpose.code in scope]
    extra = (
        {"membership": _membership_json(ledger.membership_of(person))}
        if clients.MEMBERSHIP in client.scopes
        else {}
    )
    if ledger.MANDATE_PURPOSE in scope:
        # The payment system's view of the person's mandates: the IBAN only masked.
        extra["mandates"] = [
            {k: row[k] for k in MANDATE_FIELDS} for row in ledger.mandate_rows(db.session, person)
        ]
    return jsonify(
        email=person.email,
        language=person.language,
        **extra,
        consents=[
            {
                "purpose": s.purpose.code,
                "status": s.status or "none",
                "changed_at": _iso(s.changed_at) if s.changed_at else None,
                "text_version": s.text.version if s.text else None,
            }
            for s in states
        ],
        events=[
            {
                "id": e.id,
                "purpose": e.purpose.code,
                "action": e.action,
                "channel": e.channel,
                "occurred_at": _iso(e.occurred_at),
                "text_version": e.consent_text.version if e.consent_text else None,
            }
            for e in history
        ],
    )


@bp.get("/v1/decisions/<decision_id>")
@limited
def decision(decision_id: str) -> Response:
    """What a past consent check answered; with ?email= whether it allowed that address."""
    client: ApiClient = g.client
    wanted = decision_id.lower()
    if not ledger.is_decision_id(wanted):
        raise ApiError(
            400, "invalid_field",
            "A decision id is the decision_id a consent check answered: a UUID "
            "(8-4-4-4-12 hexadecimal digits).", "decision_id",
        )  # fmt: skip
    kept = ledger.kept_decision(db.session, client.library, wanted, purposes=set(client.purposes))
    if kept is None:
        months = ledger.decision_retention_months(client.library)
        raise ApiError(
            404, "not_found",
            "No consent check with this decision_id for this key: it was never answered "
            f"here, or it was removed after this library's retention period ({months} "
            "months after the check).",
        )  # fmt: skip
    answer: dict[str, Any] = {
        "decision_id": kept.id,
        "purpose": kept.purpose.code,
        "checked_at": _iso(kept.checked_at),
        "kept_until": _iso(kept.kept_until) if kept.kept_until else None,
    }
    email = request.args.get("email")
    if email is not None:
        try:
            normalised = ledger.normalise_email(email)
        except ledger.InvalidEmail:
            raise ApiError(400, "invalid_address", "Not a valid e-mail address.", "email") from None
        person = ledger.find_subject(db.session, client.library, normalised)
        known = person is not None and person.erased_at is None
        allowed = person is not None and ledger.allowed_subject(db.session, kept, person)
        return jsonify(**answer, email=normalised, known=known, allowed=allowed)
    people = ledger.allowed_people(db.session, kept)
    return jsonify(
        **answer,
        recipients=kept.recipients,
        reasons=kept.reasons,
        allowed_people=people.count,
        allowed_erased=people.erased,
        allowed_emails=people.emails,
    )


@bp.put("/v1/subjects/<path:email>/membership", merge_slashes=False)
@limited
def put_membership(email: str) -> tuple[Response, int]:
    """Record a person's membership as the library system knows it (scope `membership`);
    the person is created if the service does not know them yet."""
    client: ApiClient = g.client
    if clients.MEMBERSHIP not in client.scopes:
        raise ApiError(403, "forbidden_scope", "This key may not report memberships.")
    try:
        ledger.normalise_email(email)
    except ledger.InvalidEmail:
        raise ApiError(400, "invalid_address", "Not a valid e-mail address.", "email") from None
    body = _json_object()
    card_number = _string(body, "card_number", limit=ledger.MAX_CARD_NUMBER_LENGTH)
    dates = {}
    for name in ("start", "end"):
        value = body.get(name)
        if name == "end" and value is None:
            dates[name] = None
        elif not isinstance(value, str):
            raise ApiError(400, "invalid_field", "A date written YYYY-MM-DD.", name)
        else:
            dates[name] = _membership_field(ledger.read_date, value, name)
    membership = _membership_field(
        ledger.check_membership, card_number, dates["start"], dates["end"]
    )
    outcome, person = _membership_field(
        ledger.record_membership, db.session, client.library, email, membership,
        suppression_key=current_app.config["SUPPRESSION_KEY"],
    )  # fmt: skip
    db.session.commit()
    assert person is not None
    return jsonify(
        email=person.email, status=outcome, membership=_membership_json(membership)
    ), 201 if outcome == ledger.Outcome.CREATED else 200


# -- helpers ----------------------------------------------------------------------------------


def _membership_field(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the ledger; a refused membership answers 400 invalid_field (409 for an address
    erased here), naming the field, with nothing stored."""
    try:
        return call(*args, **kwargs)
    except ledger.Erased as exc:
        db.session.rollback()
        raise ApiError(409, exc.code, str(exc), exc.field) from None
    except ledger.MembershipRefused as exc:
        db.session.rollback()
        raise ApiError(400, "invalid_field", str(exc), exc.field) from None


def _membership_json(membership: ledger.Membership | None) -> dict[str, Any] | None:
    if membership is None:
        return None
    return {
        "card_number": membership.card_number,
        "start": membership.start.isoformat(),
        "end": membership.end.isoformat() if membership.end else None,
    }


def _seen(client: ApiClient) -> None:
    """Note when a key was last used (at most once a minute, in its own small commit)."""
    g.client = client  # its library is loaded where a call needs it, not on every call
    now = utcnow()
    if client.last_used_at is None or now - client.last_used_at > timedelta(minutes=1):
        end_read(db.session)  # the write takes SQLite's lock on its own
        with writing():
            client.last_used_at = now
            db.session.commit()


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value else None


def _actor() -> str:
    return f"client:{g.client.id}"


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(
            400, "invalid_body", "Send a JSON object with Content-Type: application/json."
        )
    return body


def _string(body: dict[str, Any], name: str, limit: int = check_types.TEXT_LIMIT) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ApiError(400, "invalid_field", f"A text of 1 to {limit} characters.", name)
    return value


def _optional_string(body: dict[str, Any], name: str, limit: int, field: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ApiError(400, "invalid_field", f"A text of at most {limit} characters.", field)
    # NUL and lone surrogates never get here: the request edge refused them (web/edge.py).
    return value


def _checked_purpose(client: ApiClient, code: str) -> purpose_cache.CheckedPurpose:
    """_purpose_in_scope for the consent check, from this worker's copy of the purposes."""
    found = purpose_cache.purposes_of(db.session, client.library_id, client.library_version)
    if code not in client.purposes or code not in found:
        raise ApiError(403, "forbidden_purpose", "This key may not use this purpose.", "purpose")
    return found[code]


def _purpose_in_scope(code: str, field: str = "purpose") -> Purpose:
    client: ApiClient = g.client
    if code not in client.purposes:
        raise ApiError(403, "forbidden_purpose", "This key may not use this purpose.", field)
    try:
        return ledger.purpose_by_code(client.library, code)
    except LedgerError:
        raise ApiError(
            403, "forbidden_purpose", "This key may not use this purpose.", field
        ) from None


def _shown_texts(versions: Any, purposes: list[Purpose], language: str) -> dict[str, int]:
    if versions is None:
        return {}
    if not isinstance(versions, dict):
        raise ApiError(
            400, "invalid_field", "An object of purpose code to version.", "text_versions"
        )
    ids = {}
    for purpose in purposes:
        version = versions.get(purpose.code)
        if version is None:
            continue
        text = db.session.scalar(
            select(ConsentText).where(
                ConsentText.purpose_id == purpose.id,
                ConsentText.language == language,
                ConsentText.version == version,
            )
        ) if _is_version(version) else None  # fmt: skip
        if text is None:
            raise ApiError(
                400, "invalid_field", f"No version {version!r} of this text.", "text_versions"
            )
        ids[purpose.code] = text.id
    return ids


def _is_version(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**31


def _list_id(purpose: Purpose) -> str:
    # The same header the service's own newsletter-list mails carry (statement notices).
    return mailer.list_id(purpose)


def _iso(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z")
