"""The webhook inbox: raw provider callbacks, encrypted, deduplicated, then processed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.models.base import Base, TenantScoped
from app.models.types import Encrypted, UTCDateTime


class InboxItem(TenantScoped, Base):
    __tablename__ = "webhook_inbox"
    __table_args__ = (
        UniqueConstraint("account_id", "dedupe_key"),
        Index("ix_webhook_inbox_pending", "processed_at", "next_attempt_at"),
        # The retention purge: processed rows by age (a partial index: pending rows stay out).
        Index(
            "ix_webhook_inbox_processed_received",
            "received_at",
            postgresql_where=text("processed_at IS NOT NULL"),
            sqlite_where=text("processed_at IS NOT NULL"),
        ),
        # The receipts batch claim: unprocessed rows by arrival.
        Index(
            "ix_webhook_inbox_unprocessed",
            "received_at",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("inb"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    account_id: Mapped[str] = mapped_column(ForeignKey("channel_accounts.id"))
    provider: Mapped[str] = mapped_column(String(20))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Encrypted())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    result: Mapped[str | None] = mapped_column(String(40), default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_error: Mapped[str | None] = mapped_column(String(200), default=None)
    # When the tenant's payload retention (app.messaging.compliance.privacy) blanked the
    # payload; the row stays until the dedupe purge, so a replay is still a duplicate.
    payload_removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
