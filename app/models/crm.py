"""CRM connections (per tenant, credentials encrypted) and the syncs owed to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.ids import new_id
from app.models.base import Base, BigIntPK, TenantScoped, Timestamped
from app.models.types import Encrypted, UTCDateTime


class CrmConnection(TenantScoped, Timestamped, Base):
    __tablename__ = "crm_connections"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("crm"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # hubspot | salesforce | webhook
    # Tokens, URLs and secrets as encrypted JSON.
    config: Mapped[str] = mapped_column(Encrypted())
    active: Mapped[bool] = mapped_column(default=True)
    # Its API budget (``app.crm.budget``): the plan, overrides, and what the CRM stated.
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    # Every process stops calling it until then (a 429, or the daily share used up).
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    pause_reason: Mapped[str | None] = mapped_column(String(120), default=None)
    # The lease of the one drain writing to it (``app.crm.batches``).
    drain_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class CrmSync(TenantScoped, Timestamped, Base):
    """One write owed to one CRM, written in the transaction of the fact that owes it.

    ``source_key`` names that fact (``event:123``, ``consent:45``) and is unique per
    connection, so the fact is owed once however often it is swept. A contact's syncs
    apply in ``id`` order.
    """

    __tablename__ = "crm_syncs"
    __table_args__ = (
        UniqueConstraint("connection_id", "source_key"),
        Index("ix_crm_syncs_due", "status", "next_attempt_at"),
        Index("ix_crm_syncs_contact", "connection_id", "contact_id", "status", "id"),
        Index(
            "ix_crm_syncs_pending",
            "connection_id",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    connection_id: Mapped[str] = mapped_column(ForeignKey("crm_connections.id"))
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"))
    message_id: Mapped[str | None] = mapped_column(String(40), default=None)
    # log_message | opt_out | opt_in | routing
    action: Mapped[str] = mapped_column(String(20))
    source_key: Mapped[str] = mapped_column(String(60))
    # pending | running | done | dead
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    throttles: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_error: Mapped[str | None] = mapped_column(String(300), default=None)
    # What the CRM gave back (its ids), so a later write for the same message updates.
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The facts to write, ids and statuses only (PII is read from its rows when sending).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
