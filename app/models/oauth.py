"""OAuth 2.0 clients (client credentials, RFC 6749 section 4.4), the access tokens revoked
before they expire (RFC 7009), and the progress of an encryption key rotation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantScoped, Timestamped
from app.models.types import UTCDateTime, new_id, utcnow


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
