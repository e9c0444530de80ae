"""consentsvc: consent and newsletter preferences for Dutch public libraries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config

# Inside the package, so an installed wheel finds them from any working directory.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and configure the app."""
    app = Flask(__name__, instance_relative_config=True)
    config.load(app, test_config)
    register_extensions(app)
    register_blueprints(app)
    register_cli(app)
    if app.config["PROXY_COUNT"]:
        n = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    return app


def register_extensions(app: Flask) -> None:
    from .database import tune_engine
    from .extensions import babel, csrf, db, htmx, limiter, login_manager, mail, migrate
    from .web.i18n import select_locale

    # A connection that died while idle (database restarted, network gone for a moment) is
    # noticed and replaced before a request uses it, so the service recovers without a restart.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "pool_pre_ping": True,
        **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
    }
    db.init_app(app)
    with app.app_context():
        tune_engine(db.engine)
    migrate.init_app(app, db, directory=str(MIGRATIONS), render_as_batch=True)
    mail.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    htmx.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)


def register_blueprints(app: Flask) -> None:
    from .web import (
        admin,
        api,
        console_purposes,  # noqa: F401 - adds its pages to admin.bp
        console_retention,  # noqa: F401 - adds its pages to admin.bp
        edge,
        errors,
        family,
        health,
        i18n,
        labels,
        metrics,
        public,
        request_log,
        security,
        well_known,
    )
    from .web.forms import IdConverter

    app.url_map.converters["id"] = IdConverter
    # Adds the subscriber-list import to the console's blueprint before it is registered.
    # The library's face adds its settings to admin.bp and its logo to public.bp; the young
    # members' parts go to the console, the guardian's page to public.bp; the mandates to
    # the console and the member pages.
    from .web import (
        console_api_keys,  # noqa: F401 - the API keys' pages
        console_audit,  # noqa: F401 - the audit log and its CSV
        console_auditor,  # noqa: F401 - the auditor's view
        console_export,  # noqa: F401 - a person's copy, for an access request
        console_import,  # noqa: F401
        console_library,  # noqa: F401
        console_mandates,  # noqa: F401
        console_minors,  # noqa: F401
        console_nav,  # noqa: F401 - the console's navigation
        console_new_library,  # noqa: F401 - a new library's page
        console_person,  # noqa: F401 - a person's page and what staff record there
        console_reports,  # noqa: F401 - the charts and their numbers
        console_statement,  # noqa: F401 - the privacy-statement page
        console_webhooks,  # noqa: F401 - webhook receivers and their deliveries
        guardian,  # noqa: F401
        logo,
        member_mandates,  # noqa: F401
        member_receipts,  # noqa: F401 - the member's receipts, on public.bp
        staff_words,  # noqa: F401 - the ledger's codes in staff words, for the console
    )
    from .web import statement as member_statement

    app.register_blueprint(admin.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(family.bp)
    app.register_blueprint(well_known.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    edge.init_app(app)
    security.init_app(app)
    request_log.init_app(app)
    metrics.init_app(app)
    errors.init_app(app)
    i18n.init_app(app)
    labels.init_app(app)
    logo.init_app(app)
    member_statement.init_app(app)
    htmx_file = Path(app.static_folder or "") / "vendor" / "htmx.min.js"

    @app.context_processor
    def _htmx_available() -> dict[str, bool]:
        # Without npm at setup there is no htmx; every page still works as plain forms.
        return {"htmx_available": htmx_file.exists()}


def register_cli(app: Flask) -> None:
    from .cli import register

    register(app)
