"""Delivery analytics: an hourly rollup kept by beat, and the queries that read it.

The rollup (``delivery_rollups``) holds, per tenant, account, channel and hour:
sent, delivered, failed and undelivered (by reason in the taxonomy), replies,
opt-outs, and a histogram of the time from intent to ``delivered``. Beat
recomputes the last hours whole (idempotent), so a late receipt lands in its
hour; ``switchboard analytics rollup --hours N`` backfills further.

Reading a month of one tenant is a few hundred rows at any number of messages:
the raw events are read only by the rollup, one hour of one tenant at a time.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.models import DeliveryRollup, Message, MessageEvent, Tenant

# Upper bounds (seconds) of the time-to-delivered histogram's buckets; the last is open.
LATENCY_BOUNDS: tuple[float, ...] = (
    1, 2, 3, 5, 7, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 450, 600, 900, 1200, 1800,
    2700, 3600, 5400, 7200, 10800, 14400, 21600, 43200, 86400, float("inf"),
)  # fmt: skip
OUTCOMES = ("sent", "delivered", "failed", "undelivered", "replies", "opt_outs")
SENT_FROM = "dispatched"
SENT_TO = ("accepted", "sent", "delivered", "read")
Bucket = Literal["hour", "day"]
GROUPS = ("tenant", "account", "channel", "campaign")
MAX_RANGE = timedelta(days=92)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class _Cell:
    counts: dict[str, Any]
    latencies: list[int]

    @classmethod
    def empty(cls) -> _Cell:
        counts: dict[str, Any] = dict.fromkeys(OUTCOMES, 0)
        counts["reasons"] = {"failed": {}, "undelivered": {}}
        return cls(counts, [0] * len(LATENCY_BOUNDS))

    def add(self, other_counts: dict[str, Any], other_latencies: list[int]) -> None:
        for name in OUTCOMES:
            self.counts[name] += int(other_counts.get(name, 0))
        for status, reasons in (other_counts.get("reasons") or {}).items():
            mine = self.counts["reasons"].setdefault(status, {})
            for reason, n in reasons.items():
                mine[reason] = mine.get(reason, 0) + n
        for i, n in enumerate(other_latencies[: len(self.latencies)]):
            self.latencies[i] += n


def _events_of_hour(session: Session, tenant_id: str, hour: datetime) -> Iterable[Any]:
    """The hour's events that analytics counts, with their message's account and channel."""
    end = hour + timedelta(hours=1)
    return session.execute(
        select(
            Message.account_id,
            Message.channel,
            Message.campaign_id,
            Message.created_at,
            MessageEvent.kind,
            MessageEvent.from_status,
            MessageEvent.to_status,
            MessageEvent.reason,
            MessageEvent.created_at,
            MessageEvent.data,
        )
        .join(Message, Message.id == MessageEvent.message_id)
        .where(
            MessageEvent.tenant_id == tenant_id,
            MessageEvent.created_at >= hour,
            MessageEvent.created_at < end,
            or_(
                and_(MessageEvent.kind == "transition", MessageEvent.outcome == "applied"),
                MessageEvent.kind == "opted_out",
            ),
        )
    )


def compute_hour(
    session: Session, tenant_id: str, hour: datetime
) -> dict[tuple[str, str, str], _Cell]:
    cells: dict[tuple[str, str, str], _Cell] = defaultdict(_Cell.empty)
    for (
        account,
        channel,
        campaign,
        created,
        kind,
        from_s,
        to_s,
        reason,
        at,
        data,
    ) in _events_of_hour(session, tenant_id, hour):
        cell = cells[(account, channel, campaign or "")]
        if kind == "opted_out":
            if not (data or {}).get("already"):
                cell.counts["opt_outs"] += 1
            continue
        if from_s == SENT_FROM and to_s in SENT_TO:
            cell.counts["sent"] += 1
        if to_s == "delivered":
            cell.counts["delivered"] += 1
            seconds = max(0.0, (at - created).total_seconds())
            cell.latencies[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
        elif to_s in ("failed", "undelivered"):
            cell.counts[to_s] += 1
            bucket = cell.counts["reasons"][to_s]
            key = reason or "unknown"
            bucket[key] = bucket.get(key, 0) + 1
        elif to_s == "received":
            cell.counts["replies"] += 1
    return cells


def rollup(session: Session, hours: int = 3, now: datetime | None = None) -> int:
    """Recompute the last ``hours`` hours (the current one included) for every tenant.
    Idempotent: each (tenant, hour) is replaced whole. Returns the rows written."""
    now = now or utcnow()
    last = hour_of(now)
    written = 0
    tenants = list(session.scalars(select(Tenant.id)))
    for n in range(hours):
        hour = last - timedelta(hours=n)
        for tenant_id in tenants:
            cells = compute_hour(session, tenant_id, hour)
            session.execute(
                delete(DeliveryRollup).where(
                    DeliveryRollup.tenant_id == tenant_id, DeliveryRollup.hour == hour
                )
            )
            for (account, channel, campaign), cell in cells.items():
                session.add(
                    DeliveryRollup(
                        tenant_id=tenant_id,
                        hour=hour,
                        account_id=account,
                        channel=channel,
                        campaign_id=campaign,
                        counts=cell.counts,
                        latencies=cell.latencies,
                        updated_at=now,
                    )
                )
                written += 1
            session.flush()
    return written


def percentile(latencies: list[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a histogram, interpolated within its bucket (as
    Prometheus's histogram_quantile does); None without deliveries."""
    total = sum(latencies)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(latencies):
        if n and seen + n >= rank:
            low = LATENCY_BOUNDS[i - 1] if i else 0.0
            high = LATENCY_BOUNDS[i]
            if high == float("inf"):
                return low
            return round(low + (high - low) * (rank - seen) / n, 1)
        seen += n
    return LATENCY_BOUNDS[-2]


def query(
    session: Session,
    *,
    tenant_id: str | None,
    start: datetime,
    end: datetime,
    bucket: Bucket = "day",
    by: tuple[str, ...] = (),
    account_id: str | None = None,
    channel: str | None = None,
    campaign_id: str | None = None,
) -> list[dict[str, Any]]:
    """Figures per ``bucket`` (and per each of ``by``: tenant, account, channel, campaign) between
    ``start`` and ``end`` (UTC hours; ``end`` excluded)."""
    if end <= start:
        raise ValueError("end must be after start")
    if end - start > MAX_RANGE:
        raise ValueError(f"at most {MAX_RANGE.days} days at once")
    stmt = select(DeliveryRollup).where(
        DeliveryRollup.hour >= hour_of(start), DeliveryRollup.hour < end
    )
    if tenant_id is not None:
        stmt = stmt.where(DeliveryRollup.tenant_id == tenant_id)
    if account_id is not None:
        stmt = stmt.where(DeliveryRollup.account_id == account_id)
    if channel is not None:
        stmt = stmt.where(DeliveryRollup.channel == channel)
    if campaign_id is not None:
        stmt = stmt.where(DeliveryRollup.campaign_id == campaign_id)
    cells: dict[tuple[datetime, *tuple[Any, ...]], _Cell] = defaultdict(_Cell.empty)
    for row in session.scalars(stmt):
        period = row.hour if bucket == "hour" else row.hour.replace(hour=0)
        parts = {
            "tenant": row.tenant_id,
            "account": row.account_id,
            "channel": row.channel,
            "campaign": row.campaign_id or None,
        }
        key: tuple[datetime, *tuple[Any, ...]] = (period, *(parts[name] for name in by))
        cells[key].add(row.counts, row.latencies)
    result = []
    for key in sorted(cells, key=lambda k: tuple(str(p) for p in k)):
        cell = cells[key]
        entry: dict[str, Any] = {"period": key[0].isoformat()}
        for name, value in zip(by, key[1:], strict=True):
            entry[f"{name}_id" if name != "channel" else name] = value
        entry.update({name: cell.counts[name] for name in OUTCOMES})
        entry["reasons"] = cell.counts["reasons"]
        entry["time_to_delivered"] = {
            "p50_seconds": percentile(cell.latencies, 0.5),
            "p95_seconds": percentile(cell.latencies, 0.95),
        }
        result.append(entry)
    return result
