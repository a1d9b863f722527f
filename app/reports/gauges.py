"""The gauges /metrics reads from the database at scrape time, cached a few seconds.

One overview query set per cache period, however many scrapers: the figures are
the console's (``app.reports.overview``), summed over tenants.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from app.infra.db import Database
from app.infra.ratelimit import RateLimiter
from app.infra.ttl_cache import TTLCache
from app.messaging.recovery.stuck import Window
from app.reports.overview import LANES, Overview, overview

log = logging.getLogger(__name__)


class DatabaseGauges(Collector):
    def __init__(
        self, db: Database, window: Window, limiter: RateLimiter | None, cache_seconds: float
    ) -> None:
        self.db = db
        self.window = window
        self.limiter = limiter
        self.cache: TTLCache[str, Overview] = TTLCache(cache_seconds, maxsize=1)

    def _load(self) -> Overview:
        with self.db.session() as session:
            return overview(session, self.window, self.limiter)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "switchboard_gauges_up",
            "1 when the database gauges below were read; 0 when the database did not answer.",
        )
        try:
            found = self.cache.get("overview", self._load)
        except SQLAlchemyError as exc:
            log.warning("metrics: database gauges unavailable", extra={"error": type(exc).__name__})
            up.add_metric([], 0)
            yield up
            return
        assert found is not None
        up.add_metric([], 1)
        yield up

        queued = GaugeMetricFamily(
            "switchboard_queued_messages", "Messages queued on each lane.", labels=["lane"]
        )
        oldest = GaugeMetricFamily(
            "switchboard_oldest_queued_seconds",
            "How long the oldest message queued on each lane has waited.",
            labels=["lane"],
        )
        in_flight = GaugeMetricFamily(
            "switchboard_in_flight_messages",
            "Messages handed to a provider, its answer not yet recorded, per lane.",
            labels=["lane"],
        )
        for lane in LANES:
            rows = [r for r in found.lanes if r.lane == lane]
            queued.add_metric([lane], sum(r.queued for r in rows))
            ages = [r.oldest_queued_seconds for r in rows if r.oldest_queued_seconds is not None]
            oldest.add_metric([lane], max(ages, default=0.0))
            in_flight.add_metric([lane], sum(r.in_flight for r in rows))
        yield queued
        yield oldest
        yield in_flight

        held = GaugeMetricFamily(
            "switchboard_held_messages",
            "Messages held (scheduled) by reason: quiet_hours, retry, throttled, rate_limit, "
            "send_at, or a routing rule's name.",
            labels=["reason"],
        )
        by_reason: dict[str, int] = {}
        for entry in found.held:
            by_reason[entry["reason"]] = by_reason.get(entry["reason"], 0) + entry["count"]
        for reason, count in sorted(by_reason.items()):
            held.add_metric([reason], count)
        yield held

        stuck = GaugeMetricFamily(
            "switchboard_stuck_messages",
            "Messages past their state's SLA (STUCK_SLAS), per state.",
            labels=["status"],
        )
        for status, count in found.stuck.items():
            stuck.add_metric([status], count)
        yield stuck

        parked = GaugeMetricFamily(
            "switchboard_receipts_parked", "Receipts for an unknown message, parked."
        )
        parked.add_metric([], found.receipts_parked)
        yield parked

        backlog = GaugeMetricFamily(
            "switchboard_crm_backlog",
            "CRM syncs owed (pending or running), per connection.",
            labels=["connection_id", "kind"],
        )
        dead = GaugeMetricFamily(
            "switchboard_crm_dead",
            "CRM syncs dead-lettered, per connection.",
            labels=["connection_id", "kind"],
        )
        for connection in found.crm:
            labels = [connection["connection_id"], connection["kind"]]
            backlog.add_metric(labels, connection["backlog"])
            dead.add_metric(labels, connection["dead"])
        yield backlog
        yield dead

        campaigns = GaugeMetricFamily(
            "switchboard_campaigns", "Campaigns, by status.", labels=["status"]
        )
        for status in ("draft", "running", "paused", "canceled", "completed"):
            campaigns.add_metric([status], found.campaigns.get(status, 0))
        yield campaigns
        pending = GaugeMetricFamily(
            "switchboard_campaign_recipients_pending",
            "Recipients of campaigns not yet made into messages.",
        )
        pending.add_metric([], found.campaign_recipients_pending)
        yield pending
