"""Token buckets kept in the database, for deployments without Redis (the embedded default)."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class RateBucket(Base):
    """One bucket's theoretical arrival time (GCRA), in seconds since the epoch."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    tat: Mapped[float] = mapped_column()
