"""The sandbox provider: simulated in-process, outcomes chosen by the recipient's last four digits.

| last four | outcome                                             |
|-----------|-----------------------------------------------------|
| 0001      | permanent error (invalid number): failed           |
| 0002      | accepted, then undelivered (landline_or_unreachable) |
| 0003      | throttled once, then delivered                      |
| 0004      | a retryable error twice, then delivered             |
| 0005      | accepted, and no receipt ever arrives (stuck)       |
| otherwise | accepted, sent, delivered                           |

Receipts are real signed Standard Webhooks POSTed to this deployment's own
``/webhooks/sandbox/{account_id}``, so they take the same intake path as a
real provider's.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime

from app.domain.reasons import StatusReason
from app.infra.broker import TaskNames
from app.models import ChannelAccount
from app.providers import http
from app.providers.base import (
    AccountOptions,
    AccountSetup,
    PermanentError,
    ReceiptTarget,
    RetryableError,
    SendRequest,
    SendResult,
    ThrottledError,
)
from app.providers.signing import generate_secret, is_valid_secret, sign_headers
from app.providers.standard import StandardWebhooksIntake

# Each receipt is (status, errorCode); the sandbox's error codes are our reasons already.
Receipt = tuple[str, str | None]
RECEIPT_PLANS: dict[str, tuple[Receipt, ...]] = {
    "0002": (("sent", None), ("undelivered", StatusReason.LANDLINE_OR_UNREACHABLE.value)),
    "0005": (),
}
DEFAULT_PLAN: tuple[Receipt, ...] = (("sent", None), ("delivered", None))


def receipt_plan(to: str) -> tuple[Receipt, ...]:
    return RECEIPT_PLANS.get(to[-4:], DEFAULT_PLAN)


class SandboxProvider(StandardWebhooksIntake):
    name = "sandbox"
    receipt_task = TaskNames.SIMULATED_RECEIPTS

    def setup_account(self, options: AccountOptions) -> AccountSetup:
        secret = options.webhook_secret or generate_secret()
        if not is_valid_secret(secret):
            raise ValueError("--webhook-secret must be whsec_ followed by base64")
        return AccountSetup(credentials={}, webhook_secret=secret)

    def send(self, account: ChannelAccount, request: SendRequest) -> SendResult:
        suffix = request.to[-4:]
        if suffix == "0001":
            raise PermanentError(
                StatusReason.INVALID_NUMBER, "sandbox: the number does not exist", code="0001"
            )
        if suffix == "0003" and request.attempt == 1:
            raise ThrottledError("throttled", retry_after=1.0, detail="sandbox: slow down")
        if suffix == "0004" and request.attempt <= 2:
            raise RetryableError("provider_unavailable", "sandbox: 503 from upstream")
        return SendResult(provider_message_id="SBX" + secrets.token_hex(12))

    def simulate_receipts(self, target: ReceiptTarget) -> int:
        """Play the carrier: POST each planned status, signed; raise on non-2xx so it is retried."""
        plan = receipt_plan(target.to)
        for status, error_code in plan:
            _post_receipt(target, status, error_code)
        return len(plan)


def _post_receipt(target: ReceiptTarget, status: str, error_code: str | None) -> None:
    event_id = f"{target.provider_message_id}.{status}"  # stable: a retried POST is deduplicated
    event: dict[str, object] = {
        "eventId": event_id,
        "schemaVersion": 1,
        "channel": target.channel,
        "direction": "status",
        "recipient": {"phone": target.to},
        "status": status,
        "providerMessageId": target.provider_message_id,
        "timestamp": datetime.now(UTC).isoformat(),
        "metadata": {"sandbox": True},
    }
    if target.sender.startswith("+"):
        event["sender"] = {"phone": target.sender}
    if error_code is not None:
        event["errorCode"] = error_code
    body = json.dumps(event)
    response = http.post(
        target.url, data=body, headers=sign_headers(target.secret, event_id, body), timeout=10
    )
    if response.status_code >= 300:
        raise RetryableError("receipt_rejected", f"HTTP {response.status_code}")
