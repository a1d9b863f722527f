"""Tenants, their API keys, and their routing rules for inbound messages (in ``position`` order)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.ids import new_id
from app.models.base import Base, TenantScoped, Timestamped
from app.models.types import UTCDateTime


class Tenant(Timestamped, Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ten"))
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Local quiet hours in the recipient's zone: "21:00-08:00", or per weekday
    # "mon-fri 21:00-08:00; sat,sun 20:00-10:00" (see quiet_hours.py); None means none.
    quiet_hours: Mapped[str | None] = mapped_column(String(200), default=None)
    allow_quiet_hours_override: Mapped[bool] = mapped_column(default=False)
    # An urgent message may send through quiet hours only when this is set.
    urgent_bypasses_quiet_hours: Mapped[bool] = mapped_column(default=False)
    # "opt_out": send unless the recipient opted out; "opt_in": only with an opt-in on record.
    consent_policy: Mapped[str] = mapped_column(String(8), default="opt_out")
    # Overrides of the keyword lists ({"opt_out": [...], "opt_in": [...], "help": [...]})
    # and of the auto-reply texts ({"opt_out": "...", ...}); missing kinds take the defaults.
    keywords: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    auto_replies: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # POST /v1/messages per second (and burst) for this tenant; None takes the settings' default.
    api_rate_per_second: Mapped[float | None] = mapped_column(default=None)
    api_rate_burst: Mapped[float | None] = mapped_column(default=None)
    # Its share of a dispatch batch in the normal and bulk lanes, against other tenants'.
    dispatch_weight: Mapped[int] = mapped_column(default=1, server_default="1")
    # Privacy (app.messaging.compliance.privacy): "keep" bodies (for body_retention_days, None:
    # forever), "until_final" (removed once the message is final) or "none" (removed at
    # the send). Processed webhook payloads are kept payload_retention_hours (None: until
    # the dedupe purge).
    body_retention: Mapped[str] = mapped_column(String(12), default="keep", server_default="keep")
    body_retention_days: Mapped[int | None] = mapped_column(default=None)
    payload_retention_hours: Mapped[int | None] = mapped_column(default=None)


class ApiKey(TenantScoped, Timestamped, Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RoutingRule(TenantScoped, Timestamped, Base):
    __tablename__ = "routing_rules"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rul"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    position: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(String(100))
    # known_contact | unknown_sender | keywords | area_code | any
    match: Mapped[str] = mapped_column(String(20))
    values: Mapped[list[str]] = mapped_column(JSON, default=list)
    # route_activity | create_lead | tag | escalate | assign_owner
    action: Mapped[str] = mapped_column(String(20))
    target: Mapped[str | None] = mapped_column(String(200), default=None)
    # Stop evaluating later rules once this one fires.
    final: Mapped[bool] = mapped_column(default=False)
