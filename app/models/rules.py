"""Routing rules for inbound messages, per tenant, evaluated in ``position`` order."""

from __future__ import annotations

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantScoped, Timestamped
from app.models.types import new_id


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
