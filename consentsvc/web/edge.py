"""What the service accepts at its edge, for every route at once: body sizes whatever the
framing, how deeply JSON may nest, and only text a database column can store.

Every request goes through `EdgeRequest` (the app's request class, whose body and JSON are
checked whoever reads them) and `_refuse_at_the_edge` (run before every view), so no view
has to remember any of this.
"""

from __future__ import annotations

import io
import json
import re
from typing import IO, Any

from flask import Flask, Request, Response, abort, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import get_input_stream

from ..library_face import LOGO_UPLOAD_LIMIT
from .errors import render_error

# No body the service reads nests deeper than a few levels (a check is an object holding a
# list; SendGrid sends a list of objects holding lists). Python's decoder recurses once per
# level and gives up with RecursionError near a thousand.
MAX_JSON_DEPTH = 32

# PostgreSQL text cannot hold U+0000, and UTF-8 cannot hold a lone surrogate (JSON's
# "\ud800" decodes to one).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# Brackets only, and of one kind: for the depth it does not matter which.
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
# Only an escape (or a surrogate the decoder let through) can give NUL or a lone surrogate
# in decoded JSON: bodies without one need no walk through every string.
_MAY_BE_UNSTORABLE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])|[\ud800-\udfff]")
NOT_STORABLE = "Text may not contain NUL characters or lone surrogates."


class Refused(BadRequest):
    """A request the edge will not pass on; answered as a page or as API JSON."""

    def __init__(self, code: str, api_message: str, field: str | None = None) -> None:
        super().__init__()
        self.api_code, self.api_message, self.field = code, api_message, field


def nesting_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays and objects deeper than `limit`, found without
    decoding it (string contents do not count)."""
    # As UTF-8 bytes, where no other character holds a bracket's or a quote's byte, with
    # bytes methods only (a 4 MiB body takes milliseconds). Escapes go first, in pairs from
    # the left as a decoder reads them, so an escaped quote does not end a string; then
    # every other piece between quotes is outside the strings.
    data = text.encode("utf-8", "surrogatepass").replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(data.split(b'"')[::2])
    brackets = outside.translate(_BRACKETS, _NOT_BRACKETS)
    # Each pass takes away the innermost level, so after `passes` of them what is left may
    # nest `limit - passes` deep. Few brackets cannot nest deeper; a run of openings does.
    for passes in range(limit + 1):
        allowed = limit - passes
        if brackets.count(b"[") <= allowed:
            return False
        if b"[" * (allowed + 1) in brackets:
            return True
        brackets = brackets.replace(b"[]", b"")
    return True  # not reached: with nothing allowed, any bracket left is a run of one


def unstorable_field(value: Any, path: str = "") -> str | None:
    """The JSON path of the first text (value or name) that cannot be stored, if any."""
    if isinstance(value, str):
        return (path or "body") if UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        for name, item in value.items():
            if UNSTORABLE.search(name):
                return path or "body"
            found = unstorable_field(item, f"{path}.{name}" if path else name)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable_field(item, f"{path}[{index}]")
            if found:
                return found
    return None


class BodyJSONProvider(DefaultJSONProvider):
    """Flask's JSON, which reads every request body: depth and text are checked for every
    route, whoever reads the body."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        text = _text(s)
        _refuse_deep(text)
        value = super().loads(text, **kwargs)
        _refuse_unstorable(text, value)
        return value


def screen_json(body: bytes) -> None:
    """The refusals of BodyJSONProvider, for a view that decodes its body itself (the
    consent check, with msgspec): too deep, or text that cannot be stored."""
    try:
        text = _text(body)
    except UnicodeDecodeError:
        return  # not text at all: the view's own decoder refuses it
    _refuse_deep(text)
    if _MAY_BE_UNSTORABLE.search(text):
        try:
            value = json.loads(text)
        except ValueError:
            return  # not JSON at all: the view's own decoder says so
        _refuse_unstorable(text, value)


def _text(s: str | bytes) -> str:
    return s.decode(json.detect_encoding(s), "surrogatepass") if isinstance(s, bytes) else s


def _refuse_deep(text: str) -> None:
    if nesting_too_deep(text):
        raise Refused("invalid_body", f"JSON may nest at most {MAX_JSON_DEPTH} levels deep.")


def _refuse_unstorable(text: str, value: Any) -> None:
    if _MAY_BE_UNSTORABLE.search(text):
        field = unstorable_field(value)
        if field:
            raise Refused("invalid_field", NOT_STORABLE, field)


class EdgeRequest(Request):
    @property
    def max_content_length(self) -> int | None:
        """The API's own limit on its routes (a check of 10,000 addresses is far larger
        than any member's form), MAX_CONTENT_LENGTH everywhere else."""
        if self._max_content_length is not None or not current_app:
            return super().max_content_length
        key = "API_MAX_CONTENT_LENGTH" if self.blueprint == "api" else "MAX_CONTENT_LENGTH"
        if self.endpoint == "admin.import_preview":
            # An uploaded subscriber list (web/console_import.py); only admins get there.
            key = "IMPORT_MAX_UPLOAD_BYTES"
        if self.endpoint == "admin.upload_logo":
            # A library's logo (web/console_library.py): a little too large still gets the
            # page's own clear answer, far too large a 413.
            return LOGO_UPLOAD_LIMIT
        return current_app.config[key]  # type: ignore[no-any-return]

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value

    @cached_property
    def stream(self) -> IO[bytes]:
        """The body, refused with 413 when it is over the limit however it was framed.

        With a Content-Length, Werkzeug refuses a length over the limit and never reads
        past the length given. Without one (Transfer-Encoding: chunked, which the server
        decodes), Werkzeug stops reading at the limit without a word, and a view would act
        on a cut body: read one byte past the limit instead, and refuse if it is there.
        """
        limit = self.max_content_length
        stream = get_input_stream(self.environ, max_content_length=limit)
        if (
            limit is None
            or self.content_length is not None
            or "wsgi.input_terminated" not in self.environ
        ):
            return stream
        body = self.environ["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            raise RequestEntityTooLarge()
        return io.BytesIO(body)


def _unstorable_input() -> str | None:
    """Where the request carries text that cannot be stored: query, form, headers."""
    sources = (("query", request.args), ("form", request.form))
    for source, values in sources:
        for name, value in values.items(multi=True):
            if UNSTORABLE.search(name):
                return source
            if UNSTORABLE.search(value):
                return f"{source}.{name}"
    # Every header, not only those stored today (User-Agent, Origin, Referer).
    for name, value in request.headers.items():
        if UNSTORABLE.search(value):
            return f"headers.{name}"
    return None


def init_app(app: Flask) -> None:
    app.request_class = EdgeRequest
    app.json = BodyJSONProvider(app)

    @app.before_request
    def _refuse_at_the_edge() -> None:
        # Refuse a body over the limit now, also for views that never read it: confirm and
        # unsubscribe must not act on a request that every form refuses.
        request.stream  # noqa: B018 - reading the property is the check
        if UNSTORABLE.search(request.path):
            # No library, token, address or key holds one: a mangled link, not found.
            abort(404)
        field = _unstorable_input()
        if field:
            raise Refused("invalid_field", NOT_STORABLE, field)

    @app.errorhandler(Refused)
    def _refused(refused: Refused) -> Response | tuple[str, int]:
        if request.path.startswith("/api/"):
            body: dict[str, Any] = {"code": refused.api_code, "message": refused.api_message}
            if refused.field:
                body["field"] = refused.field
            return Response(json.dumps({"error": body}), 400, mimetype="application/json")
        return render_error(
            400,
            _l("We cannot use this"),
            _l(
                "What you sent contains a character we cannot use, such as a NUL "
                "character. Remove it and try again."
            ),
        )
