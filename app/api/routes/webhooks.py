"""Provider webhooks: one route for every provider. Verify, persist into the inbox, answer at once.

The account's provider module does the provider-specific part (signature,
parsing into a canonical event, the dedupe key, the answer it expects); this
view only finds the account, stores the raw callback once, and owes its
processing through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select

from app.api.errors import Problem
from app.api.session import get_db, request_session
from app.domain.ids import is_id
from app.infra.outbox import Outbox
from app.infra.ttl_cache import TTLCache
from app.infra.wakes import INBOX
from app.messaging.receipts.inbox import store_callback, store_callback_at_once
from app.models import ChannelAccount, WebhookSecret
from app.observability.metrics import WEBHOOKS
from app.providers import PROVIDERS, webhook_url
from app.providers.base import MalformedWebhook, Provider, SignatureError, WebhookRequest
from config import Settings

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.after_request
def _count(response: Response) -> Response:
    provider = (request.view_args or {}).get("provider_name", "")
    WEBHOOKS.labels(
        provider if provider in PROVIDERS else "unknown", f"{response.status_code // 100}xx"
    ).inc()
    return response


def _signed_url(provider: str, account_id: str) -> str:
    """What the provider signed: our public URL for this route, plus the query as sent."""
    settings: Settings = current_app.extensions["switchboard.settings"]
    url = webhook_url(settings.public_base_url, provider, account_id)
    query = request.query_string.decode("latin-1")
    return f"{url}?{query}" if query else url


@dataclass(frozen=True)
class Signer:
    """An account (detached, its credentials decrypted) and its active webhook secrets."""

    account: ChannelAccount
    secrets: tuple[str, ...]


def _load_signer(account_id: str) -> Signer | None:
    session = request_session()
    account = session.get(ChannelAccount, account_id)
    if account is None:
        return None
    secrets = session.scalars(
        select(WebhookSecret.secret).where(
            WebhookSecret.account_id == account.id,
            WebhookSecret.tenant_id == account.tenant_id,
            WebhookSecret.active.is_(True),
        )
    ).all()
    session.expunge(account)  # shared by later requests: never tied to this one's session
    session.close()  # the connection goes back to the pool before the store takes one
    return Signer(account, tuple(secrets))


def _signers() -> TTLCache[str, Signer]:
    cache: TTLCache[str, Signer] = current_app.extensions["switchboard.signer_cache"]
    return cache


def _signer(provider: Provider, account_id: str, fresh: bool = False) -> Signer:
    """The account and secrets, cached per process (ACCOUNT_CACHE_SECONDS); 404 if none."""
    if fresh:
        _signers().forget(account_id)
    signer = _signers().get(account_id, lambda: _load_signer(account_id))
    if signer is None or signer.account.provider != provider.name:
        raise Problem(404, "not_found", f"no {provider.name} account with this id")
    return signer


def _verified(provider: Provider, account_id: str, incoming: WebhookRequest) -> Signer:
    """The signer whose credentials verify the request; 401/403 or 400 (unreadable) if none.

    Cached credentials may predate a rotation, so a request that fails against them is
    verified once more against the database's before it is refused."""
    signer = _signer(provider, account_id)
    try:
        try:
            provider.verify(signer.account, signer.secrets, incoming)
        except SignatureError:
            if _signers().ttl <= 0:
                raise
            signer = _signer(provider, account_id, fresh=True)
            provider.verify(signer.account, signer.secrets, incoming)
    except SignatureError as exc:
        raise Problem(provider.signature_failure_status, "bad_signature", str(exc)) from None
    except MalformedWebhook as exc:  # unreadable before it could even be verified
        raise Problem(400, "malformed_body", exc.detail) from None
    return signer


@bp.post("/<provider_name>/<account_id>")
def provider_webhook(provider_name: str, account_id: str) -> Any:
    raw = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH
    provider = PROVIDERS.get(provider_name)
    if provider is None or not is_id(account_id, "acc"):
        raise Problem(404, "not_found", f"no {provider_name[:20]} account with this id")
    incoming = WebhookRequest(
        url=_signed_url(provider.name, account_id),
        body=raw,
        headers={k.lower(): v for k, v in request.headers.items()},
        content_type=request.mimetype,
    )
    signer = _verified(provider, account_id, incoming)
    account = signer.account
    try:
        parsed = provider.parse(account, incoming)
    except MalformedWebhook as exc:
        raise Problem(400, "malformed_event", exc.detail, errors=exc.errors) from None
    engine = get_db().engine
    if engine.dialect.name == "postgresql":
        row = store_callback_at_once(
            engine, account, provider.name, parsed.dedupe_key, incoming.text()
        )
        new = row is not None
        if row is not None:
            outbox: Outbox = current_app.extensions["switchboard.outbox"]
            outbox.publish_soon([(row, INBOX)])
    else:
        session = request_session()
        new = store_callback(session, account, provider.name, parsed.dedupe_key, incoming.text())
        session.commit()
    ack = provider.acknowledge(parsed, new)
    return Response(ack.body, status=ack.status, content_type=ack.content_type)
