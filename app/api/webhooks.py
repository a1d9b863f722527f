"""Provider webhooks: one route for every provider. Verify, persist into the inbox, answer at once.

The account's provider module does the provider-specific part (signature,
parsing into a canonical event, the dedupe key, the answer it expects); this
view only finds the account, stores the raw callback once, and owes its
processing through the outbox.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select

from app.api.errors import Problem
from app.api.session import request_session
from app.messaging.inbox import store_callback
from app.models import ChannelAccount, WebhookSecret
from app.models.types import is_id
from app.providers import PROVIDERS, webhook_url
from app.providers.base import MalformedWebhook, SignatureError, WebhookRequest
from config import Settings

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


def _signed_url(provider: str, account_id: str) -> str:
    """What the provider signed: our public URL for this route, plus the query as sent."""
    settings: Settings = current_app.extensions["switchboard.settings"]
    url = webhook_url(settings.public_base_url, provider, account_id)
    query = request.query_string.decode("latin-1")
    return f"{url}?{query}" if query else url


@bp.post("/<provider_name>/<account_id>")
def provider_webhook(provider_name: str, account_id: str) -> Any:
    raw = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH
    provider = PROVIDERS.get(provider_name)
    if provider is None or not is_id(account_id, "acc"):
        raise Problem(404, "not_found", f"no {provider_name[:20]} account with this id")
    session = request_session()
    account = session.get(ChannelAccount, account_id)
    if account is None or account.provider != provider.name:
        raise Problem(404, "not_found", f"no {provider.name} account with this id")
    secrets = session.scalars(
        select(WebhookSecret.secret).where(
            WebhookSecret.account_id == account.id,
            WebhookSecret.tenant_id == account.tenant_id,
            WebhookSecret.active.is_(True),
        )
    ).all()
    incoming = WebhookRequest(
        url=_signed_url(provider.name, account.id),
        body=raw,
        headers={k.lower(): v for k, v in request.headers.items()},
        content_type=request.mimetype,
    )
    try:
        provider.verify(account, secrets, incoming)
    except SignatureError as exc:
        raise Problem(provider.signature_failure_status, "bad_signature", str(exc)) from None
    except MalformedWebhook as exc:  # unreadable before it could even be verified
        raise Problem(400, "malformed_body", exc.detail) from None
    try:
        parsed = provider.parse(account, incoming)
    except MalformedWebhook as exc:
        raise Problem(400, "malformed_event", exc.detail, errors=exc.errors) from None
    new = store_callback(session, account, provider.name, parsed.dedupe_key, incoming.text())
    session.commit()
    ack = provider.acknowledge(parsed, new)
    return Response(ack.body, status=ack.status, content_type=ack.content_type)
