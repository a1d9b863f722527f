"""The sandbox provider: simulated in-process, outcomes chosen by the recipient's last four digits.

| last four | outcome                                             |
|-----------|-----------------------------------------------------|
| 0001      | permanent error (invalid number): failed           |
| 0002      | accepted, then undelivered                          |
| 0003      | throttled once, then delivered                      |
| 0004      | a retryable error twice, then delivered             |
| 0005      | accepted, and no receipt ever arrives (stuck)       |
| otherwise | accepted, sent, delivered                           |

Receipts are real signed Standard Webhooks POSTed to this deployment's own
``/webhooks/standard/{account_id}``, so they take the same intake path as a
real provider's.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime

import requests

from app.broker import TaskNames
from app.models import ChannelAccount
from app.providers.base import (
    PermanentError,
    RetryableError,
    SendRequest,
    SendResult,
    ThrottledError,
)
from app.providers.signing import sign_headers

log = logging.getLogger(__name__)

RECEIPT_PLANS: dict[str, tuple[str, ...]] = {
    "0002": ("sent", "undelivered"),
    "0005": (),
}
DEFAULT_PLAN = ("sent", "delivered")


def receipt_plan(to: str) -> tuple[str, ...]:
    return RECEIPT_PLANS.get(to[-4:], DEFAULT_PLAN)


class SandboxProvider:
    name = "sandbox"
    webhook_kind = "standard"
    receipt_task: str | None = TaskNames.SANDBOX_RECEIPTS

    def send(self, account: ChannelAccount, request: SendRequest) -> SendResult:
        suffix = request.to[-4:]
        if suffix == "0001":
            raise PermanentError("invalid_number", "sandbox: the number does not exist")
        if suffix == "0003" and request.attempt == 1:
            raise ThrottledError("throttled", retry_after=1.0, detail="sandbox: slow down")
        if suffix == "0004" and request.attempt <= 2:
            raise RetryableError("provider_unavailable", "sandbox: 503 from upstream")
        return SendResult(provider_message_id="SBX" + secrets.token_hex(12))


def post_receipt(
    url: str, secret: str, provider_message_id: str, status: str, channel: str, to: str, sender: str
) -> None:
    """POST one signed status event; raise on anything but 2xx so the caller retries."""
    event_id = f"{provider_message_id}.{status}"  # stable: a retried POST is deduplicated
    body = json.dumps(
        {
            "eventId": event_id,
            "schemaVersion": 1,
            "channel": channel,
            "direction": "status",
            "sender": {"phone": sender} if sender.startswith("+") else None,
            "recipient": {"phone": to},
            "status": status,
            "providerMessageId": provider_message_id,
            "timestamp": datetime.now(UTC).isoformat(),
            "metadata": {"sandbox": True},
        }
    )
    response = requests.post(
        url, data=body, headers=sign_headers(secret, event_id, body), timeout=10
    )
    if response.status_code >= 300:
        raise RetryableError("receipt_rejected", f"HTTP {response.status_code}")
