"""Messages and their append-only event history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.channels import Channel
from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.models.base import Base, BigIntPK, TenantScoped, Timestamped
from app.models.types import Encrypted, UTCDateTime


class Message(TenantScoped, Timestamped, Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_messages_tenant_id_id", "tenant_id", "id"),
        Index("ix_messages_account_provider_id", "account_id", "provider_message_id"),
        Index("ix_messages_status_due", "status", "next_attempt_at", "not_before"),
        # The stuck report and reconciliation: a state, oldest first.
        Index("ix_messages_status_updated", "status", "updated_at"),
        # The batch claim: a lane's queued messages per tenant, oldest first
        # (app.messaging.dispatch.fair).
        # The console's held messages, by reason (app.reports.overview).
        Index(
            "ix_messages_held",
            "status_reason",
            "tenant_id",
            postgresql_where=text("status = 'scheduled'"),
            sqlite_where=text("status = 'scheduled'"),
        ),
        # A campaign's messages by status: its counts, and what a pause or a cancel holds back.
        Index("ix_messages_campaign_status", "campaign_id", "status"),
        Index(
            "ix_messages_queued_lane",
            "priority",
            "tenant_id",
            "id",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("msg"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    direction: Mapped[str] = mapped_column(String(10), default="outbound")
    channel: Mapped[Channel] = mapped_column(String(8))
    channels: Mapped[list[Channel]] = mapped_column(JSON)
    account_id: Mapped[str] = mapped_column(ForeignKey("channel_accounts.id"))
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"), index=True)
    body: Mapped[str | None] = mapped_column(Encrypted(), default=None)
    # JSON list of {url, content_type}, encrypted as a whole.
    media: Mapped[str | None] = mapped_column(Encrypted(), default=None)
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    throttles: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The send slot this message reserved in its account's rate limit, while it waits for it.
    rate_slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    provider_message_id: Mapped[str | None] = mapped_column(String(100), default=None)
    segments: Mapped[int] = mapped_column(default=1)
    encoding: Mapped[str] = mapped_column(String(8), default="GSM-7")
    quiet_hours: Mapped[str] = mapped_column(String(8), default="respect")
    # Why the system itself sent it: "auto_reply:opt_out" and the like; None for an API send.
    purpose: Mapped[str | None] = mapped_column(String(24), default=None)
    journey_id: Mapped[str | None] = mapped_column(String(200), default=None, index=True)
    external_ref: Mapped[str | None] = mapped_column(String(200), default=None)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # Sent from a template: which, which version (pinned at intake), in which locale; and
    # each channel's own content ({channel: {"body", "media"}}), encrypted as a whole, so
    # a fallback (RCS to SMS, say) sends that channel's text.
    template_id: Mapped[str | None] = mapped_column(String(40), default=None)
    template_version: Mapped[int | None] = mapped_column(default=None)
    template_locale: Mapped[str | None] = mapped_column(String(35), default=None)
    alternates: Mapped[str | None] = mapped_column(Encrypted(), default=None)
    # One recipient of a campaign (app.messaging.campaigns), or None.
    campaign_id: Mapped[str | None] = mapped_column(String(40), default=None)
    # When the tenant's privacy mode (or the provider's end-to-end encryption) removed the
    # body, media and alternates.
    body_removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class MessageEvent(TenantScoped, Timestamped, Base):
    """One row per transition tried, provider status seen, or conversation fact.

    ``outcome`` says what the state machine did with it: applied, duplicate,
    refused, or note. ``dedupe_key`` makes the same receipt twice one event.
    """

    __tablename__ = "message_events"
    __table_args__ = (
        UniqueConstraint("message_id", "dedupe_key"),
        # The CRM sweep reads a tenant's recent events (app.crm.owed.sweep_missing).
        Index("ix_message_events_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # No index of their own: (message_id, dedupe_key) serves lookups by message, and
    # (tenant_id, created_at) by tenant. Each index is one more write per event.
    tenant_id: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id"))
    kind: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(16), default=None)
    to_status: Mapped[str | None] = mapped_column(String(16), default=None)
    outcome: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(200), default=None)
    source: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
