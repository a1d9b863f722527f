"""Contacts: the phone number is encrypted, and found through a keyed blind index."""

from __future__ import annotations

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantScoped, Timestamped
from app.models.types import Encrypted, new_id


class Contact(TenantScoped, Timestamped, Base):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("tenant_id", "phone_index"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("con"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    phone: Mapped[str] = mapped_column(Encrypted())
    phone_index: Mapped[str] = mapped_column(String(64))
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    # Its preferred locale (pt-BR), for templates; None: the template's default.
    locale: Mapped[str | None] = mapped_column(String(35), default=None)
    crm_refs: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
