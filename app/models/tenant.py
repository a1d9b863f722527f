"""Tenants and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantScoped, Timestamped
from app.models.types import UTCDateTime, new_id


class Tenant(Timestamped, Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ten"))
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Local quiet hours as "HH:MM-HH:MM" in the recipient's zone; None means none.
    quiet_hours: Mapped[str | None] = mapped_column(String(11), default=None)
    allow_quiet_hours_override: Mapped[bool] = mapped_column(default=False)
    # POST /v1/messages per second (and burst) for this tenant; None takes the settings' default.
    api_rate_per_second: Mapped[float | None] = mapped_column(default=None)
    api_rate_burst: Mapped[float | None] = mapped_column(default=None)


class ApiKey(TenantScoped, Timestamped, Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
