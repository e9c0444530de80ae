"""Response headers that make the pages safe to trust, and logs that keep links secret."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, request

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)

TOKEN_PATH = re.compile(
    r"/(confirm|preferences|unsubscribe|download|email|api/v1/providers/\w+)/[^/\s?\"']+"
)
ADDRESS = re.compile(r"[\w.+-]+@([\w-]+\.[\w.-]+)")


def redact(text: str) -> str:
    """Replace the secret part of link paths, and the person's part of addresses."""
    return ADDRESS.sub(r"***@\1", TOKEN_PATH.sub(r"/\1/…", text))


class RedactTokens(logging.Filter):
    """Keep signed tokens and addresses out of every log line, tracebacks included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def init_app(app: Flask) -> None:
    redactor = RedactTokens()
    for name in ("werkzeug", "gunicorn.access", "gunicorn.error", app.logger.name):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(redactor)

    https = app.config["BASE_URL"].startswith("https://")

    @app.after_request
    def _headers(response: Response) -> Response:
        headers: dict[str, Any] = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if https:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if request.endpoint != "static" and response.mimetype == "text/html":
            # Pages show one person's choices: never keep them in a shared cache.
            headers.setdefault("Cache-Control", "no-store")
            response.vary.add("HX-Request")
        return response
