"""Error pages in the member's language; nothing about the request is logged."""

from __future__ import annotations

import json
import logging

from flask import Flask, Response, g, render_template, request
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError

from ..extensions import db, htmx

log = logging.getLogger(__name__)

# Seconds a client is asked to wait when the database does not answer.
RETRY_AFTER = 30

MESSAGES = {
    400: (_l("Something is wrong with this request"), _l("Please go back and try again.")),
    403: (_l("Not allowed"), _l("You may not do this here.")),
    404: (
        _l("Page not found"),
        _l("This page does not exist. Check the address, or use the link from your mail."),
    ),
    405: (_l("Not possible this way"), _l("This page cannot be used like this.")),
    413: (_l("Too much data"), _l("What you sent is too large. Please send less.")),
    429: (
        _l("Too many attempts"),
        _l("You tried this too often in a short time. Please wait a while and try again."),
    ),
    500: (
        _l("Something went wrong on our side"),
        _l("Please try again later. Does it keep happening? Then contact your library."),
    ),
    503: (
        _l("This is not possible right now"),
        _l(
            "We cannot reach our records for a moment. Nothing was changed. "
            "Please try again in a few minutes."
        ),
    ),
}


API_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "server_error",
    503: "unavailable",
}


def render_error(status: int, title: object = None, message: object = None) -> tuple[str, int]:
    default_title, default_message = MESSAGES.get(status, MESSAGES[400])
    return (
        render_template(
            "error.html",
            library=g.get("library"),
            status=status,
            title=title or default_title,
            message=message or default_message,
        ),
        status,
    )


def init_app(app: Flask) -> None:
    @app.after_request
    def _errors_replace_the_page(response: Response) -> Response:
        # htmx swaps error answers too (see responseHandling in base.html); an error page
        # must replace the whole body, not land inside the list that was being updated.
        if htmx and not htmx.boosted and response.status_code >= 400:
            response.headers["HX-Retarget"] = "body"
            response.headers["HX-Reswap"] = "innerHTML"
        return response

    @app.errorhandler(CSRFError)
    def _csrf(_exc: CSRFError) -> tuple[str, int]:
        return render_error(
            400,
            _l("This form has expired"),
            _l("Please reload the page and send the form again."),
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        # Keep the exception's own headers (Allow, Retry-After); replace only the body.
        response = exc.get_response()
        status = exc.code or 500
        if request.path.startswith("/api/"):
            title, _message = MESSAGES.get(status, MESSAGES[400])
            with force_locale("en"):
                body = {"code": API_CODES.get(status, "error"), "message": str(title)}
            response.set_data(json.dumps({"error": body}))
            response.mimetype = "application/json"
            return response
        response.set_data(render_error(status)[0])
        response.mimetype = "text/html"
        return response

    @app.errorhandler(InternalServerError)
    def _server(_exc: InternalServerError) -> Response | tuple[str, int]:
        # This handler must not fail: if it raised, the server would send its own bare page
        # without any security header. A failed flush leaves the session unusable until it
        # is rolled back (PendingRollbackError), and the page reads the library's name.
        _roll_back()
        if request.path.startswith("/api/"):
            return _http(InternalServerError())
        try:
            return render_error(500)
        except Exception:
            # E.g. the database went away in between: the page without the library's name.
            log.exception("the error page itself failed")
            _roll_back()
            g.pop("library", None)
        try:
            return render_error(500)
        except Exception:
            return Response(str(MESSAGES[500][0]), 500, mimetype="text/plain")

    @app.errorhandler(OperationalError)
    @app.errorhandler(DisconnectionError)
    @app.errorhandler(PoolTimeout)
    def _database_away(exc: Exception) -> Response | tuple[str, int, dict[str, str]]:
        return database_unavailable(exc)


def _roll_back() -> None:
    try:
        db.session.rollback()
    except Exception:
        # The connection is gone; dropping it lets the pool open a fresh one later.
        db.session.invalidate()


def database_unavailable(exc: Exception) -> Response | tuple[str, int, dict[str, str]]:
    """503 while the database cannot be reached: nothing was saved, and the API says so
    rather than answering (a consent check must fail closed, never "allowed")."""
    # Logged: the kind of failure, its code (SQLSTATE, or SQLite's name such as
    # SQLITE_BUSY: a lock, not a lost connection) and the route's pattern. Never the path,
    # which holds tokens, nor the driver's message, which may quote data.
    rule = request.url_rule.rule if request.url_rule else "-"
    driver_error = exc.orig if isinstance(exc, DBAPIError) else None
    code = getattr(driver_error, "sqlstate", None) or getattr(
        driver_error, "sqlite_errorname", None
    )
    invalidated = isinstance(exc, DBAPIError) and exc.connection_invalidated
    log.warning(
        "database unavailable (%s%s%s) on %s %s",
        type(exc).__name__,
        f" {code}" if code else "",
        ", connection dropped" if invalidated else "",
        request.method,
        rule,
    )
    _roll_back()
    # The library was loaded before the failure; rendering its name would need the
    # database again, so the page names no library.
    g.pop("library", None)
    headers = {"Retry-After": str(RETRY_AFTER)}
    if request.path.startswith("/api/"):
        title, _message = MESSAGES[503]
        with force_locale("en"):
            body = {"code": API_CODES[503], "message": str(title)}
        return Response(
            json.dumps({"error": body}), 503, headers=headers, mimetype="application/json"
        )
    page, status = render_error(503)
    return page, status, headers
