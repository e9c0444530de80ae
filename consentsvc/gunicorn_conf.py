"""gunicorn's settings for consentsvc: `gunicorn -c python:consentsvc.gunicorn_conf
'consentsvc:create_app()'` (the container's entry point does this).

Every value can still be changed on the command line or in GUNICORN_CMD_ARGS. What it adds
to gunicorn's defaults: workers from the CPU count, a graceful stop, logs to standard
output through the service's redaction (in JSON with CONSENTSVC_LOG_FORMAT=json, the
arbiter's own lines included), and Prometheus' multiprocess directory for /metrics.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

# All addresses: in a container the port is published by the runtime, not by this.
bind = os.environ.get("CONSENTSVC_BIND", "0.0.0.0:8000")
# Sync workers, as the benchmark measured (docs/performance.md): two per core, at least two.
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, 2 * (os.cpu_count() or 1))))
timeout = 60
# A stop (SIGTERM from the orchestrator) lets running requests finish for this long.
graceful_timeout = 30
accesslog = "-"
errorlog = "-"
# One directory per arbiter, emptied at its start: counts of workers of an earlier run
# must not be added to this one's.
_metrics = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
    prefix="consentsvc-metrics-"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics

if os.environ.get("CONSENTSVC_LOG_FORMAT", "text").lower() == "json":
    logconfig_dict: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "consentsvc.web.request_log.JsonLines"}},
        "handlers": {
            "error": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        # gunicorn merges this into its own logging config, whose root logger names a
        # handler this one replaces: the root needs one of these.
        "root": {"level": "INFO", "handlers": ["error"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }


def on_starting(server: Any) -> None:
    folder = Path(_metrics)
    folder.mkdir(parents=True, exist_ok=True)
    # Only prometheus-client's own files: the directory may be one an operator chose.
    for counts in folder.glob("*.db"):
        counts.unlink()


def child_exit(server: Any, worker: Any) -> None:
    # A worker that ended: its live gauges go, its counts stay in the sums.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
