"""Test data: tenants with keys and accounts, made through the models (the CLI uses the same)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from app.infra.db import Database
from app.models import ApiKey, ChannelAccount, Tenant, WebhookSecret
from app.providers.signing import generate_secret
from app.security.api_keys import generate_api_key, hash_api_key


@dataclass(frozen=True)
class TenantCtx:
    tenant_id: str
    key: str
    account_id: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def make_tenant_ctx(
    db: Database,
    *,
    provider: str = "sandbox",
    channels: tuple[str, ...] = ("sms", "mms"),
    scopes: tuple[str, ...] = ("messages:write", "messages:read"),
    with_account: bool = True,
    allow_quiet_hours_override: bool = False,
    quiet_hours: str | None = None,
    timezone: str = "UTC",
    credentials: dict[str, str] | None = None,
) -> TenantCtx:
    key = generate_api_key()
    secret = generate_secret()
    with db.session() as session:
        tenant = Tenant(
            name="Test tenant",
            allow_quiet_hours_override=allow_quiet_hours_override,
            quiet_hours=quiet_hours,
            timezone=timezone,
        )
        session.add(tenant)
        session.flush()
        session.add(ApiKey(tenant_id=tenant.id, key_hash=hash_api_key(key), scopes=list(scopes)))
        account_id = ""
        if with_account:
            account = ChannelAccount(
                tenant_id=tenant.id,
                provider=provider,
                channels=list(channels),
                sender="+12025550199",
                credentials=json.dumps(credentials) if credentials else None,
            )
            session.add(account)
            session.flush()
            session.add(WebhookSecret(tenant_id=tenant.id, account_id=account.id, secret=secret))
            account_id = account.id
        tenant_id = tenant.id
    return TenantCtx(tenant_id, key, account_id, secret)


def add_api_key(db: Database, tenant_id: str, scopes: tuple[str, ...]) -> str:
    key = generate_api_key()
    with db.session() as session:
        session.add(ApiKey(tenant_id=tenant_id, key_hash=hash_api_key(key), scopes=list(scopes)))
    return key
