"""Standard Webhooks signing and verification, with several secrets active for rotation."""

from __future__ import annotations

import binascii
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError

from app.providers.base import SignatureError

__all__ = ["SignatureError", "generate_secret", "is_valid_secret", "sign_headers", "verify"]


def generate_secret() -> str:
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def is_valid_secret(secret: str) -> bool:
    try:
        Webhook(secret)
    except Exception:
        return False
    return secret.startswith("whsec_")


def sign_headers(secret: str, msg_id: str, body: str, at: datetime | None = None) -> dict[str, str]:
    # The library formats the wall-clock fields as if they were UTC: convert first.
    when = (at or datetime.now(UTC)).astimezone(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body),
        "content-type": "application/json",
    }


def verify(body: str, headers: Mapping[str, str], secrets_: Iterable[str]) -> None:
    """Raise SignatureError unless one active secret verifies the request (5-minute tolerance).

    The library compares in constant time and accepts space-separated
    signatures, which is how a sender rotating its secret signs twice.
    """
    wanted = {
        k: headers[k]
        for k in ("webhook-id", "webhook-timestamp", "webhook-signature")
        if k in headers
    }
    if len(wanted) < 3:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    last: str = "no active webhook secret for this account"
    for secret in secrets_:
        try:
            Webhook(secret).verify(body, wanted, json_parse=False)
            return
        except WebhookVerificationError as exc:
            last = str(exc)
        except (ValueError, binascii.Error):
            last = "malformed webhook-signature header"
        except EmptyWebhookSecretError:
            continue  # a blank stored secret must not stop the others being tried
    raise SignatureError(last)
