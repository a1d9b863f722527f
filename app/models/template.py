"""Message templates and their versions (immutable: an edit makes a new version)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.ids import new_id
from app.models.base import Base, BigIntPK, TenantScoped, Timestamped
from app.models.types import UTCDateTime


class Template(TenantScoped, Timestamped, Base):
    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("tpl"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    latest_version: Mapped[int] = mapped_column(default=1)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class ShortLink(Timestamped, Base):
    """A template's URL variable, shortened at intake: ``/s/<code>`` redirects to ``url``."""

    __tablename__ = "short_links"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)


class TemplateVersion(Timestamped, Base):
    """One version's declared variables and its content per locale and channel."""

    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    template_id: Mapped[str] = mapped_column(ForeignKey("templates.id"))
    version: Mapped[int] = mapped_column()
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    default_locale: Mapped[str] = mapped_column(String(35))
    locales: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The API key (or "cli") that made it.
    created_by: Mapped[str] = mapped_column(String(40))
