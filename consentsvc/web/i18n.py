"""Which language a page is in: ?lang=, then the lang cookie, then the member's own
choice, then the library's default (Dutch).

The browser's Accept-Language is deliberately not used: many Dutch members run an English
browser or operating system, and the libraries want Dutch unless the member picks English.
"""

from __future__ import annotations

from babel import Locale, UnknownLocaleError
from flask import Flask, Response, g, has_request_context, request
from flask_babel import get_locale, refresh

from ..config import LANGUAGES

COOKIE = "lang"
YEAR = 365 * 24 * 60 * 60


def select_locale() -> str:
    if not has_request_context():
        return LANGUAGES[0]
    for candidate in (
        request.args.get("lang"),
        request.cookies.get(COOKIE),
        g.get("member_language"),
    ):
        if candidate in LANGUAGES:
            return candidate
    library = g.get("library")
    return library.default_language if library is not None else LANGUAGES[0]


def use_member_language(language: str) -> None:
    """Show this page in the member's stored language unless the browser asked otherwise."""
    g.member_language = language
    refresh()


def current_language() -> str:
    return str(get_locale() or LANGUAGES[0])


def language_name(code: str) -> str:
    """A language's name in the page's language ("Engels" on a Dutch page); a code no
    language has (an old import's evidence) as it was written."""
    try:
        return str(Locale.parse(code).get_display_name(current_language()))
    except (ValueError, TypeError, UnknownLocaleError):
        return str(code)


def init_app(app: Flask) -> None:
    app.add_template_global(language_name)

    @app.after_request
    def _remember_choice(response: Response) -> Response:
        if response.mimetype == "text/html":
            # The page's language, also for htmx: a page it swaps in whole (hx-boost) keeps
            # the old <html lang>, so static/js/site.js copies this header into it.
            response.headers.setdefault("Content-Language", current_language())
        lang = request.args.get("lang")
        if lang in LANGUAGES and request.cookies.get(COOKIE) != lang:
            response.set_cookie(
                COOKIE,
                lang,
                max_age=YEAR,
                secure=app.config["SESSION_COOKIE_SECURE"],
                httponly=True,
                samesite="Lax",
            )
        return response

    @app.context_processor
    def _languages() -> dict[str, object]:
        return {"current_language": current_language(), "languages": LANGUAGES}
