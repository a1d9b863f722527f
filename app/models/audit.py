"""The audit chain: append-only events hash-chained per tenant, their heads, and the
signed checkpoints beat writes (rules in app.security.audit_chain)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.clock import utcnow
from app.models.base import Base, BigIntPK
from app.models.types import UTCDateTime

# The chain of what belongs to no tenant: console users, sign-ins, operators' redrives.
SYSTEM_CHAIN = "system"


class AuditEvent(Base):
    """One recorded action. Postgres (and SQLite) refuse UPDATE and DELETE on this table.

    ``change`` holds ids, blind indexes and settings only: never a phone number or a body,
    so an erasure never has to touch (and so break) the chain.
    """

    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("chain", "seq"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    chain: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(30))
    ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    change: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[str] = mapped_column(String(30))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """Each chain's last seq and hash: the row writers lock to append in order."""

    __tablename__ = "audit_heads"

    chain: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed statement of a chain's head (append-only, like the events)."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (UniqueConstraint("chain", "seq"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    chain: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[str] = mapped_column(String(30))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
