"""Campaigns: one send to a list of recipients, each recipient becoming a message of its own."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.channels import Channel
from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.models.base import Base, BigIntPK, TenantScoped, Timestamped
from app.models.types import Encrypted, UTCDateTime


class Campaign(TenantScoped, Timestamped, Base):
    """What every recipient's message shares, and where the campaign stands.

    ``status``: ``draft`` (recipients may be added, nothing is sent), ``running`` (its
    recipients become messages), ``paused`` (none does, and its messages not yet
    dispatched wait), ``canceled`` (none ever will), ``completed`` (every recipient is a
    message, or was skipped).
    """

    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_campaigns_tenant_status", "tenant_id", "status", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("cmp"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    status: Mapped[str] = mapped_column(String(12), default="draft")
    # From a template (pinned to its version when the campaign is created) or one body.
    template_id: Mapped[str | None] = mapped_column(String(40), default=None)
    template_version: Mapped[int | None] = mapped_column(default=None)
    body: Mapped[str | None] = mapped_column(Encrypted(), default=None)
    channels: Mapped[list[Channel]] = mapped_column(JSON)
    account_id: Mapped[str | None] = mapped_column(String(40), default=None)
    priority: Mapped[str] = mapped_column(String(8), default="bulk")
    ttl_seconds: Mapped[int | None] = mapped_column(default=None)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    quiet_hours: Mapped[str] = mapped_column(String(8), default="respect")
    # Messages a second of its own, beneath the account's rate limit.
    rate_per_second: Mapped[float | None] = mapped_column(Float(), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    # Rows refused at upload, as the answers listed them: never written as recipients.
    invalid_rows: Mapped[int] = mapped_column(default=0)
    duplicate_rows: Mapped[int] = mapped_column(default=0)
    # The first problems of its uploads, by row and field, for the console to show a draft's.
    row_errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    # Messages spaced so far by the campaign's rate since it started (the next one's order).
    made: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class CampaignRecipient(Base):
    """One accepted row: ``pending`` until it becomes a message (``made``), or ``skipped``
    with a reason (opted out, say) when it never will."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        # A number once per campaign: a duplicate row, or a retried upload, adds nothing.
        UniqueConstraint("campaign_id", "phone_index"),
        Index("ix_campaign_recipients_state", "campaign_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    tenant_id: Mapped[str] = mapped_column(String(40))
    phone: Mapped[str] = mapped_column(Encrypted())
    phone_index: Mapped[str] = mapped_column(String(64))
    # The row's variables, a JSON text encrypted as a whole (they may hold personal data).
    variables: Mapped[str | None] = mapped_column(Encrypted(), default=None)
    reference: Mapped[str | None] = mapped_column(String(200), default=None)
    # The number's zone, found at upload: '' when it has no single zone (the tenant's then
    # applies), NULL for a row written before the column (the expansion finds it then).
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    state: Mapped[str] = mapped_column(String(8), default="pending")
    reason: Mapped[str | None] = mapped_column(String(64), default=None)
    message_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def variables_dict(self) -> dict[str, Any]:
        return dict(json.loads(self.variables)) if self.variables else {}
