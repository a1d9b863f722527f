"""The hourly delivery rollup that analytics reads (kept by beat, app.reports.analytics)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.clock import utcnow
from app.models.base import Base
from app.models.types import UTCDateTime


class DeliveryRollup(Base):
    """One tenant's, account's, channel's and campaign's figures for one hour (UTC), recomputed
    whole.

    ``counts``: sent, delivered, failed, undelivered, replies, opt_outs, and
    ``reasons`` ({"failed": {reason: n}, "undelivered": {...}}). ``latencies``: how
    many deliveries took up to each of ``LATENCY_BOUNDS`` seconds from intent.
    """

    __tablename__ = "delivery_rollups"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    # The campaign its messages belong to; '' for messages of none.
    campaign_id: Mapped[str] = mapped_column(String(40), primary_key=True, server_default="")
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    latencies: Mapped[list[int]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
