"""A request id for every request (X-Request-Id), and with CONSENTSVC_LOG_FORMAT=json every
log line as one JSON object, with one line per request: route template, status, duration,
library.

The redaction of web/security.py happens when a record is made, before any formatter sees
it, so it holds in both formats. Route templates (/unsubscribe/<token>) are logged, never
the path itself.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from ..libraries import SLUG
from .security import redact

FORMATS = ("text", "json")
# A request id a trusted proxy or load balancer already gave the request is kept, when it
# looks like one; anything else is replaced, so a log line never carries what a client wrote.
INCOMING_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
REQUESTS = logging.getLogger("consentsvc.request")


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and the request's id."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if has_request_context() and "request_id" not in line and "request_id" in g:
            line["request_id"] = g.request_id
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def init_app(app: Flask) -> None:
    log_format = str(app.config["LOG_FORMAT"]).lower()
    if log_format not in FORMATS:
        raise ValueError('CONSENTSVC_LOG_FORMAT must be "text" or "json"')
    if log_format == "json":
        _json_everywhere(app)

    def _begin() -> None:
        g.request_started = time.perf_counter()
        given = request.headers.get("X-Request-Id", "")
        trusted = app.config["PROXY_COUNT"] and INCOMING_ID.fullmatch(given)
        g.request_id = given if trusted else uuid.uuid4().hex

    # First of all: a request the rate limiter or the edge refuses gets its id and its line.
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)

    @app.after_request
    def _end(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id is None:  # a request that failed before _begin ran
            return response
        response.headers["X-Request-Id"] = request_id
        if log_format == "json":
            REQUESTS.info("request", extra={"fields": _fields(response, request_id)})
        return response


def _fields(response: Response, request_id: str) -> dict[str, Any]:
    started = g.get("request_started", time.perf_counter())
    library = (request.view_args or {}).get("library")
    # Only what looks like a slug: the segment is whatever the client typed there.
    if not isinstance(library, str) or not SLUG.match(library):
        library = None
    return {
        "request_id": request_id,
        "method": request.method,
        "route": request.url_rule.rule if request.url_rule else None,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        "library": library,
    }


def _json_everywhere(app: Flask) -> None:
    """Give every handler that writes the service's lines the JSON formatter.

    Under gunicorn its own loggers have their handlers (error log, access log) and the
    service's records go to the error log's; elsewhere (the CLI, a worker) to stderr.
    """
    formatter = JsonLines()
    gunicorn_error = logging.getLogger("gunicorn.error")
    handlers = list(gunicorn_error.handlers) or [logging.StreamHandler(sys.stderr)]
    for handler in (*handlers, *logging.getLogger("gunicorn.access").handlers):
        handler.setFormatter(formatter)
    service = logging.getLogger("consentsvc")
    service.handlers = handlers
    service.setLevel(logging.INFO)
    service.propagate = False
