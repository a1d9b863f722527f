"""OAuth 2.0 client credentials (RFC 6749 section 4.4) with short-lived JWT access tokens
(RFC 9068), and their revocation (RFC 7009), on Authlib.

No Flask here: the token and revocation endpoints are app.api.routes.oauth's; the CLI creates and
revokes clients; app.api.auth checks the tokens presented to /v1.

A token is an HS256 JWT: ``sub`` and ``client_id`` the client, ``tenant`` its tenant,
``scope`` the granted scopes, ``jti`` its id, and an ``exp`` OAUTH_TOKEN_SECONDS ahead. It is
refused once expired, once its client is revoked, or once the token itself is revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import OctKey
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.models import OAuthClient, RevokedToken, Tenant
from app.security import audit
from app.security.api_keys import parse_scopes

SECRET_PREFIX = "sbcs_"  # noqa: S105 (a prefix, not a secret)
AUDIENCE = "switchboard"
ALGORITHM = "HS256"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Client(ClientMixin):  # type: ignore[misc]
    """What Authlib asks of a client, over a detached OAuthClient row."""

    def __init__(self, row: OAuthClient) -> None:
        self.row = row

    def get_client_id(self) -> str:
        return self.row.id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this client holds (all of its scopes when none is asked)."""
        mine = list(self.row.scopes)
        if not scope:
            return " ".join(mine)
        asked = scope.split()
        if any(s not in mine for s in asked):
            raise InvalidScopeError(description="the client does not hold every scope asked")
        return " ".join(asked)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(hash_secret(client_secret), self.row.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


def find_client(session: Session, client_id: str) -> Client | None:
    """A live client (a revoked one cannot authenticate)."""
    if not client_id or len(client_id) > 40 or "\x00" in client_id:
        return None  # never a lookup the database must refuse (the HTTP edge refuses it first)
    row = session.get(OAuthClient, client_id)
    if row is None or row.revoked_at is not None:
        return None
    session.expunge(row)
    return Client(row)


def signing_jwk(secret: str) -> OctKey:
    return OctKey.import_key(secret.encode())


class TokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068 access tokens, signed with OAUTH_TOKEN_SECRET, carrying the tenant."""

    def __init__(self, issuer: str, secret: str, lifetime: int) -> None:
        super().__init__(issuer=issuer, alg=ALGORITHM, expires_generator=lambda *_: lifetime)
        self._jwk = signing_jwk(secret)

    def get_jwks(self) -> OctKey:
        return self._jwk

    def get_audiences(self, client: Client, user: Any, scope: str) -> str:
        return AUDIENCE

    def get_extra_claims(
        self, client: Client, grant_type: str, user: Any, scope: str
    ) -> dict[str, Any]:
        return {"tenant": client.row.tenant_id}

    def get_jti(self, client: Client, grant_type: str, user: Any, scope: str) -> str:
        return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class TokenClaims:
    jti: str
    client_id: str
    tenant_id: str
    scopes: frozenset[str]
    expires_at: datetime


class InvalidToken(ValueError):
    """Not a token of ours, or expired: the message says which (never the token)."""


def decode_token(token: str, issuer: str, secret: str, *, check_expiry: bool = True) -> TokenClaims:
    """The token's claims, once its signature, issuer, audience and (by default) expiry hold."""
    try:
        decoded = jwt.decode(token, signing_jwk(secret), algorithms=[ALGORITHM])
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            now=None if check_expiry else int(claims.get("iat", 0)),
            leeway=5,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": AUDIENCE},
            exp={"essential": True},
            jti={"essential": True},
            client_id={"essential": True},
            tenant={"essential": True},
        )
        registry.validate(claims)
    except ExpiredTokenError:
        raise InvalidToken("expired") from None
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidToken("invalid") from None
    scope = claims.get("scope") or ""
    return TokenClaims(
        jti=str(claims["jti"]),
        client_id=str(claims["client_id"]),
        tenant_id=str(claims["tenant"]),
        scopes=frozenset(str(scope).split()),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
    )


def token_live(session: Session, claims: TokenClaims) -> Tenant | None:
    """The tenant, when the token's client is live and the token is not revoked."""
    row = session.execute(
        select(OAuthClient.revoked_at, OAuthClient.tenant_id, Tenant)
        .join(Tenant, Tenant.id == OAuthClient.tenant_id)
        .where(OAuthClient.id == claims.client_id)
    ).first()
    if row is None or row.revoked_at is not None or row.tenant_id != claims.tenant_id:
        return None
    if session.get(RevokedToken, claims.jti) is not None:
        return None
    tenant: Tenant = row[2]
    session.expunge(tenant)
    return tenant


def revoke_token(session: Session, claims: TokenClaims, actor: str) -> None:
    if session.get(RevokedToken, claims.jti) is not None:
        return
    session.add(
        RevokedToken(jti=claims.jti, client_id=claims.client_id, expires_at=claims.expires_at)
    )
    audit.append(
        session,
        tenant_id=claims.tenant_id,
        actor=actor,
        action="oauth_token.revoke",
        target="oauth_client",
        ids=[claims.client_id],
        change={"jti_sha256": hashlib.sha256(claims.jti.encode()).hexdigest()},
    )


def purge_revoked(session: Session) -> int:
    """Forget revocations of tokens that have expired anyway."""
    result = session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


class ClientError(ValueError):
    pass


def create_client(
    session: Session, tenant_id: str, name: str, scopes: str, actor: str
) -> tuple[OAuthClient, str]:
    """A new client and its secret (shown only this once)."""
    try:
        scope_list = list(parse_scopes(scopes))
    except ValueError as exc:
        raise ClientError(str(exc)) from None
    if not 0 < len(name) <= 100:
        raise ClientError("a name is 1 to 100 characters")
    if session.get(Tenant, tenant_id) is None:
        raise ClientError(f"no tenant {tenant_id}")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = OAuthClient(
        tenant_id=tenant_id, name=name, secret_hash=hash_secret(secret), scopes=scope_list
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="oauth_client.create",
        target="oauth_client",
        ids=[row.id],
        change={"name": name, "scopes": scope_list},
    )
    return row, secret


def revoke_client(session: Session, client_id: str, actor: str) -> OAuthClient:
    """Revoke a client: it gets no new token, and its tokens stop working."""
    row = session.get(OAuthClient, client_id)
    if row is None:
        raise ClientError(f"no OAuth client {client_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.append(
            session,
            tenant_id=row.tenant_id,
            actor=actor,
            action="oauth_client.revoke",
            target="oauth_client",
            ids=[row.id],
        )
    return row


def list_clients(session: Session, tenant_id: str | None) -> list[OAuthClient]:
    query = select(OAuthClient).order_by(OAuthClient.created_at)
    if tenant_id is not None:
        query = query.where(OAuthClient.tenant_id == tenant_id)
    return list(session.scalars(query))
