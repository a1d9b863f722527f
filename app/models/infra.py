"""The pipeline's own plumbing: outbox rows (written with the state they announce, deleted once
the broker has the task) and token buckets kept in the database (without Redis)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigIntPK, Timestamped


class OutboxRow(Timestamped, Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    task_name: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(40))
    # Ids only, never PII: Flower shows task arguments.
    args: Mapped[list[Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(default=0)


class RateBucket(Base):
    """One bucket's theoretical arrival time (GCRA), in seconds since the epoch."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    tat: Mapped[float] = mapped_column()
