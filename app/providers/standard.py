"""The ``standard`` provider: any provider that speaks the canonical event over Standard Webhooks.

Sending POSTs a canonical ``outbound`` event, signed with the account's
current secret, to ``{base_url}/messages``; the provider answers with
``{"providerMessageId": ...}`` and later posts status events back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import requests

from app.models import ChannelAccount
from app.providers.base import (
    PermanentError,
    RetryableError,
    SendRequest,
    SendResult,
    ThrottledError,
    is_retryable_status,
)
from app.providers.signing import sign_headers


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    try:
        return max(0.0, float(value)) if value else default
    except ValueError:
        return default


class StandardProvider:
    name = "standard"
    webhook_kind = "standard"
    receipt_task: str | None = None

    def send(self, account: ChannelAccount, request: SendRequest) -> SendResult:
        creds = json.loads(account.credentials or "{}")
        base_url = creds.get("base_url")
        secret = creds.get("signing_secret")
        if not base_url or not secret:
            raise PermanentError(
                "account_misconfigured", "standard account needs base_url and a secret"
            )
        event_id = f"{request.message_id}.{request.attempt}"
        body = json.dumps(
            {
                "eventId": event_id,
                "schemaVersion": 1,
                "channel": request.channel,
                "direction": "outbound",
                "conversationId": request.message_id,
                "sender": {"phone": request.sender},
                "recipient": {"phone": request.to},
                "message": {
                    "text": request.body,
                    "attachments": [
                        {"url": m["url"], "contentType": m["content_type"]} for m in request.media
                    ],
                    "contentType": "text/plain",
                },
                "timestamp": datetime.now(UTC).isoformat(),
                "metadata": {"statusCallback": request.status_callback},
            }
        )
        try:
            response = requests.post(
                base_url.rstrip("/") + "/messages",
                data=body,
                headers=sign_headers(secret, event_id, body),
                timeout=10,
            )
        except requests.RequestException as exc:
            raise RetryableError("transport_error", type(exc).__name__) from None
        if response.status_code == 429:
            raise ThrottledError(
                "throttled", retry_after_seconds(response.headers.get("Retry-After"))
            )
        if is_retryable_status(response.status_code):
            raise RetryableError("provider_unavailable", f"HTTP {response.status_code}")
        if response.status_code >= 400:
            code = _error_code(response)
            raise PermanentError(
                code, f"HTTP {response.status_code}", channel_related=code == "channel_unsupported"
            )
        try:
            provider_id = str(response.json()["providerMessageId"])
        except (ValueError, KeyError, TypeError):
            raise RetryableError("bad_provider_response", "no providerMessageId") from None
        return SendResult(provider_message_id=provider_id)


def _error_code(response: requests.Response) -> str:
    try:
        return str(response.json().get("errorCode") or "rejected")[:40]
    except ValueError:
        return "rejected"
