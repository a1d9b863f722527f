"""Channel accounts (one provider account and sender) and their webhook secrets."""

from __future__ import annotations

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.channels import Channel
from app.domain.ids import new_id
from app.models.base import Base, TenantScoped, Timestamped
from app.models.types import Encrypted


class ChannelAccount(TenantScoped, Timestamped, Base):
    __tablename__ = "channel_accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("acc"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    channels: Mapped[list[Channel]] = mapped_column(JSON)
    sender: Mapped[str] = mapped_column(String(64))
    # Provider credentials as encrypted JSON (account sid, auth token, base url, ...).
    credentials: Mapped[str | None] = mapped_column(Encrypted(), default=None)
    # A token bucket in SMS segments: this many a second, and bursts of up to rate_limit_burst.
    rate_limit_per_second: Mapped[float | None] = mapped_column(default=None)
    rate_limit_burst: Mapped[float | None] = mapped_column(default=None)


class WebhookSecret(TenantScoped, Timestamped, Base):
    """Several may be active per account at once, so secrets can be rotated."""

    __tablename__ = "webhook_secrets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("whs"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("channel_accounts.id"), index=True)
    secret: Mapped[str] = mapped_column(Encrypted())
    active: Mapped[bool] = mapped_column(default=True)
