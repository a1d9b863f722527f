"""Provider webhooks: verify, persist into the inbox, owe processing, answer at once."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from pydantic import ValidationError
from sqlalchemy import select

from app.api.errors import Problem
from app.db import request_session
from app.messaging.inbox import store_callback
from app.models import ChannelAccount, WebhookSecret
from app.providers import PROVIDERS
from app.providers.canonical import CanonicalEvent
from app.providers.signing import SignatureError, verify

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.post("/standard/<account_id>")
def standard_webhook(account_id: str) -> Any:
    raw = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH
    session = request_session()
    account = session.get(ChannelAccount, account_id)
    provider = PROVIDERS.get(account.provider) if account is not None else None
    if account is None or provider is None or provider.webhook_kind != "standard":
        raise Problem(404, "not_found", "no standard-webhook account with this id")
    secrets_ = session.scalars(
        select(WebhookSecret.secret).where(
            WebhookSecret.account_id == account.id,
            WebhookSecret.tenant_id == account.tenant_id,
            WebhookSecret.active.is_(True),
        )
    ).all()
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "malformed_body", "the body is not UTF-8") from None
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        verify(body, headers, secrets_)
    except SignatureError as exc:
        raise Problem(401, "bad_signature", str(exc)) from None
    try:
        CanonicalEvent.model_validate_json(body)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"]) or "(body)",
                "code": e["type"],
                "message": e["msg"],
            }
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise Problem(
            400,
            "malformed_event",
            "the body is not a canonical event (schemaVersion 1)",
            errors=errors,
        ) from None
    webhook_id = headers["webhook-id"]
    if len(webhook_id) > 200:
        raise Problem(400, "malformed_body", "webhook-id is longer than 200 characters")
    new = store_callback(session, account, "standard", webhook_id, body)
    session.commit()
    return {"status": "accepted" if new else "duplicate"}, 202 if new else 200
