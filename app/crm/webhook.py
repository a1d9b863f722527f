"""A generic webhook: each write is a canonical event, signed per Standard Webhooks.

``webhook-id`` is the sync's key, so a receiver dedupes a re-drive by it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from app.crm.base import Connector, SyncRequest, SyncResult, call, classify_http


class SignedWebhook(Connector):
    kind = "webhook"

    def apply(self, request: SyncRequest) -> SyncResult:
        data: dict[str, Any] = {"phone": request.phone, **request.details}
        if request.message is not None:
            m = request.message
            data["message"] = {
                "id": m.id,
                "direction": m.direction,
                "channel": m.channel,
                "text": m.body,
                "status": m.status,
                "statusReason": m.status_reason,
                "timestamp": m.at.isoformat(),
            }
        now = datetime.now(UTC)
        payload = json.dumps(
            {"type": f"crm.{request.action}", "timestamp": now.isoformat(), "data": data}
        )
        signature = Webhook(str(self.config["secret"])).sign(request.external_id, now, payload)
        response = call(
            "POST",
            str(self.config["url"]),
            data=payload,
            headers={
                "content-type": "application/json",
                "webhook-id": request.external_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signature,
            },
        )
        if response.status_code >= 300:
            raise classify_http(response, "POST webhook")
        return SyncResult({})  # nothing to remember: the receiver keys on webhook-id
