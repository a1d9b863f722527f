"""A contact (the phone number encrypted, found by its blind index) and what they said of being
messaged: consent records, suppressions and erasures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.models.base import Base, BigIntPK, TenantScoped, Timestamped
from app.models.types import Encrypted, UTCDateTime


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


class ConsentRecord(TenantScoped, Base):
    """One consent fact. Never updated: the current state is the latest record per channel.

    ``channel`` is ``sms``, ``mms``, ``rcs`` or ``all`` (a STOP covers every channel).
    """

    __tablename__ = "consent_records"
    __table_args__ = (Index("ix_consent_records_lookup", "tenant_id", "phone_index", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"), index=True)
    phone_index: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12))
    source: Mapped[str] = mapped_column(String(40))
    jurisdiction: Mapped[str | None] = mapped_column(String(8), default=None)
    evidence: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Suppression(TenantScoped, Base):
    """A number that opted out and was then erased: only its keyed blind index is kept,
    so the opt-out is still honoured (a suppression list is what regulators expect)."""

    __tablename__ = "suppressions"

    phone_index: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The fingerprint of the blind key that made ``phone_index`` (None: made before it was
    # kept). Its number is erased, so a re-keying cannot move it: see keys rotate.
    blind_key: Mapped[str | None] = mapped_column(String(12), default=None)


class Erasure(TenantScoped, Base):
    """That an erasure happened, with non-identifying counts of what it erased."""

    __tablename__ = "erasures"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    contact_id: Mapped[str] = mapped_column(String(40))
    requested_by: Mapped[str | None] = mapped_column(String(40), default=None)
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
