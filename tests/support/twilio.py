"""Twilio in-process: a tenant on the fake, webhooks signed as Twilio signs them, inbox applied."""

from __future__ import annotations

from urllib.parse import urlencode

from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.infra.db import Database
from app.messaging.receipts.drain import process_inbox_item
from app.models import InboxItem
from app.providers import webhook_url
from config import Settings, load_settings
from scripts.fake_twilio import FakeTwilio, sign
from tests.factories import TenantCtx, make_tenant_ctx

# Inbox processing reads only the default TTL (for auto-replies) from the settings.
SETTINGS = load_settings({})


def twilio_ctx(
    db: Database, fake: FakeTwilio, channels: tuple[str, ...] = ("sms", "mms")
) -> TenantCtx:
    return make_tenant_ctx(
        db,
        provider="twilio",
        channels=channels,
        credentials={
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "base_url": fake.base_url,
        },
    )


def post_callback(
    client: FlaskClient,
    settings: Settings,
    ctx: TenantCtx,
    params: dict[str, str],
    token: str,
    *,
    signature: str | None = None,
    query: str = "",
) -> TestResponse:
    url = webhook_url(settings.public_base_url, "twilio", ctx.account_id)
    signed_url = f"{url}?{query}" if query else url
    headers = {"X-Twilio-Signature": signature or sign(token, signed_url, params)}
    path = f"/webhooks/twilio/{ctx.account_id}" + (f"?{query}" if query else "")
    return client.post(
        path,
        data=urlencode(params),
        headers=headers,
        content_type="application/x-www-form-urlencoded",
    )


def apply_all(db: Database, account_id: str) -> list[str]:
    with db.session() as s:
        ids = s.scalars(
            select(InboxItem.id)
            .where(InboxItem.account_id == account_id, InboxItem.processed_at.is_(None))
            .order_by(InboxItem.received_at, InboxItem.id)
        ).all()
    results = []
    for item_id in ids:
        with db.session() as s:
            results.append(process_inbox_item(s, SETTINGS, item_id))
    return results
