"""Error pages in the member's language; nothing about the request is logged."""

from __future__ import annotations

import json

from flask import Flask, Response, g, render_template, request
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from ..extensions import htmx

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
        if request.path.startswith("/api/"):
            return _http(InternalServerError())
        return render_error(500)
