"""The service's Prometheus metrics: what is counted, and where a process records it.

Labels carry only route templates, statuses, reasons and channels, never an address, a
token or an id. Under gunicorn set PROMETHEUS_MULTIPROC_DIR (docs/operations.md): each
worker process writes its counts there and /metrics adds them up; a `consentsvc worker`
on the same host that shares the directory is added too. What the database knows for the
whole cluster (the outbox backlog) is read from it at each scrape.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy.orm import Session

from . import outbox

REQUESTS = Counter("consentsvc_http_requests", "Answered requests.", ["route", "method", "status"])
LATENCY = Histogram(
    "consentsvc_http_request_duration_seconds",
    "Time from the request to its answer, per route.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CHECKED = Counter(
    "consentsvc_check_recipients", "Recipients answered by the consent check.", ["reason"]
)
DELIVERIES = Counter(
    "consentsvc_outbox_deliveries",
    "Outbox messages tried, by channel (webhook, mail, request) and result.",
    ["channel", "result"],
)
STAFF_LOGINS = Counter(
    "consentsvc_staff_logins", "Staff logins (a password, or a login code).", ["result"]
)
RETENTION = Counter(
    "consentsvc_retention_removed", "What the retention run removed or erased.", ["category"]
)


def count_check(reasons: Mapping[str, int]) -> None:
    for reason, n in reasons.items():
        CHECKED.labels(reason).inc(n)


def count_deliveries(outcomes: Mapping[tuple[str, str], int]) -> None:
    for (channel, result), n in outcomes.items():
        DELIVERIES.labels(channel, result).inc(n)


def count_retention(counts: Mapping[str, int]) -> None:
    for category, n in counts.items():
        if n:
            RETENTION.labels(category).inc(n)


class Backlog(Collector):
    """The outbox as the database has it now, for every host at once."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = outbox.backlog(self.session)
        yield GaugeMetricFamily(
            "consentsvc_outbox_due", "Outbox messages due for delivery now.", value=now.due
        )
        yield GaugeMetricFamily(
            "consentsvc_outbox_oldest_due_seconds",
            "How long the oldest due outbox message has waited.",
            value=now.oldest_due_seconds,
        )
        yield GaugeMetricFamily(
            "consentsvc_outbox_waiting", "Messages that failed and wait for a retry.",
            value=now.waiting,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "consentsvc_outbox_given_up", "Messages given up after their last retry.",
            value=now.given_up,
        )  # fmt: skip


def exposition(session: Session) -> bytes:
    """Every metric in the text format: this process's (or all gunicorn workers') counts,
    and the backlog read now."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
        registry.register(Backlog(session))
        return generate_latest(registry)
    registry.register(Backlog(session))
    return generate_latest(REGISTRY) + generate_latest(registry)
