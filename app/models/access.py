"""Who may act, besides API keys: the console's users and what they did, OAuth clients and
revoked tokens, and encryption key rotations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.models.base import Base, BigIntPK, TenantScoped, Timestamped
from app.models.types import UTCDateTime

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
    # Every session cookie carries the epoch it was signed in at; sign-out, disabling the user
    # and a password change move it on, so every earlier cookie stops opening the console.
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")


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


class OAuthClient(TenantScoped, Timestamped, Base):
    """A tenant's OAuth client. Its secret, random like an API key, is kept as a SHA-256."""

    __tablename__ = "oauth_clients"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("cli"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RevokedToken(Base):
    """An access token revoked before it expired; kept until it would have expired."""

    __tablename__ = "oauth_revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class KeyRotation(Base):
    """How far ``keys rotate`` got through one encrypted column, so it can resume."""

    __tablename__ = "key_rotations"

    table_name: Mapped[str] = mapped_column(String(60), primary_key=True)
    column_name: Mapped[str] = mapped_column(String(60), primary_key=True)
    # The fingerprint of the key it re-encrypts to: a new key starts the column over.
    target: Mapped[str] = mapped_column(String(16))
    last_id: Mapped[str | None] = mapped_column(String(60), default=None)
    rotated: Mapped[int] = mapped_column(BigInteger, default=0)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
