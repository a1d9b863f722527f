"""The operator console's users and the record of what they did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigIntPK, Timestamped
from app.models.types import UTCDateTime, new_id

ROLES = ("viewer", "operator", "admin")


class ConsoleUser(Timestamped, Base):
    """Someone who signs in to /console. ``role``: viewer (reads, masked), operator (acts),
    admin (acts, and sees phone numbers and bodies)."""

    __tablename__ = "console_users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("usr"))
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(10))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Failed sign-ins in a row; past the limit, sign-in is refused until ``locked_until``.
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class ConsoleAction(Timestamped, Base):
    """One thing done from the console (or a sign-in): who, what, when, on which ids.

    Append-only. ``detail`` holds each id's outcome; never a phone number or a body.
    """

    __tablename__ = "console_actions"
    __table_args__ = (Index("ix_console_actions_created", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(20))
    ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
