"""The ``standard`` provider: any provider that speaks the canonical event over Standard Webhooks.

Sending POSTs a canonical ``outbound`` event, signed with the account's
signing secret, to ``{base_url}/messages``; the provider answers with
``{"providerMessageId": ...}`` and later posts status and inbound events back,
signed with any of the account's active webhook secrets (so they rotate).
An ``errorCode`` from the provider is taken as our reason when it is one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from app.domain.reasons import StatusReason, as_reason
from app.domain.retries import retry_after_seconds
from app.models import ChannelAccount
from app.providers import http
from app.providers.base import (
    AccountOptions,
    AccountSetup,
    MalformedWebhook,
    ParsedWebhook,
    PermanentError,
    Provider,
    RetryableError,
    SendRequest,
    SendResult,
    ThrottledError,
    WebhookRequest,
    is_retryable_status,
)
from app.providers.canonical import CanonicalEvent
from app.providers.signing import is_valid_secret, sign_headers, verify

SEND_TIMEOUT = (3.05, 10)  # connect, read: seconds
MAX_WEBHOOK_ID = 200


def event_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {
            "field": ".".join(str(p) for p in e["loc"]) or "(body)",
            "code": e["type"],
            "message": e["msg"],
        }
        for e in exc.errors(include_url=False, include_input=False)
    ]


def parse_canonical(text: str) -> CanonicalEvent:
    try:
        return CanonicalEvent.model_validate_json(text)
    except ValidationError as exc:
        raise MalformedWebhook(
            "the body is not a canonical event (schemaVersion 1)", event_errors(exc)
        ) from None


class StandardWebhooksIntake(Provider):
    """Receiving canonical events over Standard Webhooks; shared by ``standard`` and the sandbox."""

    def verify(
        self, account: ChannelAccount, secrets: Sequence[str], request: WebhookRequest
    ) -> None:
        verify(request.text(), request.headers, secrets)

    def parse(self, account: ChannelAccount, request: WebhookRequest) -> ParsedWebhook:
        webhook_id = request.headers["webhook-id"]  # verify() proved it is there
        if len(webhook_id) > MAX_WEBHOOK_ID or not webhook_id.isprintable():
            raise MalformedWebhook(
                f"webhook-id must be at most {MAX_WEBHOOK_ID} printable characters"
            )
        return ParsedWebhook(parse_canonical(request.text()), webhook_id)

    def parse_stored(self, account: ChannelAccount, payload: str) -> CanonicalEvent:
        return parse_canonical(payload)


class StandardProvider(StandardWebhooksIntake):
    name = "standard"

    def setup_account(self, options: AccountOptions) -> AccountSetup:
        if not options.base_url or not options.webhook_secret:
            raise ValueError("--provider standard needs --base-url and --webhook-secret")
        if not options.base_url.startswith(("http://", "https://")):
            raise ValueError("--base-url must start with http:// or https://")
        if not is_valid_secret(options.webhook_secret):
            raise ValueError("--webhook-secret must be whsec_ followed by base64")
        return AccountSetup(
            credentials={
                "base_url": options.base_url,
                "signing_secret": options.webhook_secret,
            },
            webhook_secret=options.webhook_secret,
        )

    def send(self, account: ChannelAccount, request: SendRequest) -> SendResult:
        creds = self.credentials(account)
        base_url = creds.get("base_url")
        secret = creds.get("signing_secret")
        if not base_url or not secret:
            raise PermanentError(
                StatusReason.ACCOUNT_MISCONFIGURED, "standard account needs base_url and a secret"
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
            response = http.post(
                base_url.rstrip("/") + "/messages",
                data=body,
                headers=sign_headers(secret, event_id, body),
                timeout=SEND_TIMEOUT,
            )
        except http.TransportError as exc:
            raise RetryableError("transport_error", type(exc).__name__) from None
        if response.status_code == 429:
            raise ThrottledError(
                "throttled", retry_after_seconds(response.headers.get("Retry-After"))
            )
        if is_retryable_status(response.status_code):
            raise RetryableError("provider_unavailable", f"HTTP {response.status_code}")
        if response.status_code >= 400:
            code = _error_code(response)
            reason = as_reason(code)
            raise PermanentError(
                reason,
                f"HTTP {response.status_code}",
                channel_related=reason is StatusReason.CHANNEL_UNSUPPORTED,
                code=code,
            )
        try:
            provider_id = str(response.json()["providerMessageId"])
        except (ValueError, KeyError, TypeError):
            raise RetryableError("bad_provider_response", "no providerMessageId") from None
        return SendResult(provider_message_id=provider_id)


def _error_code(response: http.Answer) -> str | None:
    try:
        code = response.json().get("errorCode")
    except (ValueError, AttributeError):
        return None
    return str(code)[:40] if code else None
