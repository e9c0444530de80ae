"""Response headers that make the pages safe to trust, and logs that keep links secret."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
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

# Answers that are the same for everyone and may be cached as their view says.
PUBLIC = {"static", "public.theme", "public.logo", "well_known.receipt_key"}

TOKEN_PATH = re.compile(
    r"/(confirm|preferences|unsubscribe|download|email|api/v1/providers/\w+)/[^/\s?\"']+"
)
# Also percent-encoded, as gunicorn logs the request line raw: jan%40example.nl.
ADDRESS = re.compile(r"[\w.+%-]+(?:@|%40)([\w%-]+\.[\w.%-]+)")


def _spelt(char: str) -> str:
    """A character as itself or percent-encoded, once or twice (%5F, %255F)."""
    return rf"(?:{re.escape(char)}|%(?:25)?{ord(char):02x})"


# An API key wherever it stands, not only where a route expects it: a misspelt webhook
# URL (/providers/send-grid/csk_…, /api/v1//providers/…) is logged as it came.
API_KEY = re.compile(
    "".join(_spelt(c) for c in "csk_") + r"(?:[A-Za-z0-9_-]|%(?:25)?[0-9a-f]{2})+",
    re.IGNORECASE,
)
# A signed link's token (payload.timestamp.signature) wherever it stands, for the same reason.
SIGNED_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_-])\.?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27}(?![A-Za-z0-9_-])"
)


def redact(text: str) -> str:
    """Replace API keys, tokens and the secret part of link paths, and the person's part
    of addresses."""
    text = SIGNED_TOKEN.sub("…", API_KEY.sub("csk_…", text))
    return ADDRESS.sub(r"***@\1", TOKEN_PATH.sub(r"/\1/…", text))


class RedactTokens(logging.Filter):
    """Keep signed tokens and addresses out of every log line, tracebacks included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as it would
            return True
        # The finished line, not the format string: redacting "/confirm/%s" would eat the
        # placeholder, and the line would be lost in a formatting error.
        record.msg, record.args = redact(message), None
        return True


class RedactingRecordFactory:
    """Makes log records as before, then redacts them: every logger of the process (a
    library's, the root, one created later), before any handler or formatter sees it."""

    def __init__(self, previous: Callable[..., logging.LogRecord]) -> None:
        self.previous, self.redactor = previous, RedactTokens()

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        self.redactor.filter(record)
        return record


def init_app(app: Flask) -> None:
    if not isinstance(logging.getLogRecordFactory(), RedactingRecordFactory):
        logging.setLogRecordFactory(RedactingRecordFactory(logging.getLogRecordFactory()))
    redactor = RedactTokens()
    # A logger's filters do not apply to its children's records: name the service's own
    # module loggers (consentsvc.outbox, consentsvc.web.errors, …) one by one.
    own = [n for n in logging.root.manager.loggerDict if n.startswith(f"{app.logger.name}.")]
    for name in ("werkzeug", "gunicorn.access", "gunicorn.error", app.logger.name, *own):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(redactor)

    @app.after_request
    def _headers(response: Response) -> Response:
        headers: dict[str, Any] = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        # Only over HTTPS (directly, or per X-Forwarded-Proto from a trusted proxy, see
        # PROXY_COUNT): a browser ignores HSTS received over plain HTTP (RFC 6797, 8.1).
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        # Pages and JSON alike show one person's choices or carry their links: nothing is
        # kept in any cache unless it is the same for everyone and its view says how long
        # (static files, a library's theme.css). Errors included.
        if request.endpoint not in PUBLIC or "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        if response.mimetype == "text/html":
            response.vary.add("HX-Request")
        return response
