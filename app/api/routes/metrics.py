"""/metrics: Prometheus's text format, for a scraper holding METRICS_TOKEN.

The counters and histograms of every process (multiprocess mode, see app.observability.metrics)
and the database gauges (app.reports.gauges), read at scrape time.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app.api.errors import Problem
from app.observability.metrics import REGISTRY
from config import Settings

bp = Blueprint("metrics", __name__)


class _ThisProcess(Collector):
    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


@bp.get("/metrics")
def metrics() -> Any:
    settings: Settings = current_app.extensions["switchboard.settings"]
    if settings.metrics_token is None:
        raise Problem(404, "not_found", "metrics are off: set METRICS_TOKEN to serve /metrics")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {settings.metrics_token}".encode()):
        raise Problem(
            401,
            "unauthorized",
            "send Authorization: Bearer <METRICS_TOKEN>",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    registry = CollectorRegistry(auto_describe=False)
    if settings.metrics_dir is not None:
        MultiProcessCollector(registry, path=str(settings.metrics_dir))  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    registry.register(current_app.extensions["switchboard.gauges"])
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
