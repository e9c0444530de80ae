"""/metrics for Prometheus, reachable from the allowed networks or with the metrics token,
and the request counts and latencies every answer adds to it (consentsvc/metrics.py)."""

from __future__ import annotations

import hmac
import ipaddress
import time

from flask import Blueprint, Flask, Response, abort, current_app, g, request

from .. import metrics
from ..database import reading_only
from ..extensions import db

bp = Blueprint("metrics", __name__)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@bp.get("/metrics")
def exposition() -> Response:
    """The metrics in Prometheus' text format; 404 to anyone not allowed, as if absent."""
    if not _allowed():
        abort(404)
    with reading_only():
        body = metrics.exposition(db.session)
    return Response(body, mimetype="text/plain", headers={"Cache-Control": "no-store"})


def _allowed() -> bool:
    # str(): a token of digits alone comes from the environment as a number.
    token = str(current_app.config["METRICS_TOKEN"] or "").encode()
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token):
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in current_app.config["_METRICS_NETWORKS"])


def init_app(app: Flask) -> None:
    app.config["_METRICS_NETWORKS"] = [
        ipaddress.ip_network(n, strict=False) for n in app.config["METRICS_ALLOWED_NETWORKS"]
    ]

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.get("request_started")
        # A request that matched no route is counted as one label, not by its path.
        route = request.url_rule.rule if request.url_rule else "unmatched"
        # Methods a client makes up would each make a series of their own.
        method = request.method if request.method in METHODS else "other"
        if started is not None and route != "/metrics":
            metrics.REQUESTS.labels(route, method, str(response.status_code)).inc()
            metrics.LATENCY.labels(route, method).observe(time.perf_counter() - started)
        return response
