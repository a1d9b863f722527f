"""A generic webhook: the writes of a batch go in one envelope, signed per Standard Webhooks.

The envelope (documented in the README)::

    {"type": "crm.batch", "timestamp": "...", "data": {"events": [
        {"id": "<the sync's key>", "type": "crm.log_message", "data": {...}}, ...]}}

Each event's ``id`` is its sync's key: the same on every re-delivery, so a receiver dedupes
by it. The envelope's ``webhook-id`` is derived from the ids it carries, so re-sending the
same batch carries the same ``webhook-id`` too. A 2xx takes the whole envelope.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from app.crm.base import (
    Connector,
    CrmError,
    CrmThrottled,
    Outcome,
    SyncRequest,
    SyncResult,
    classify_http,
)

BATCH = 100


def event_of(request: SyncRequest) -> dict[str, Any]:
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
    return {"id": request.external_id, "type": f"crm.{request.action}", "data": data}


def envelope_id(events: Sequence[dict[str, Any]]) -> str:
    digest = hashlib.sha256("\n".join(e["id"] for e in events).encode()).hexdigest()
    return f"batch_{digest[:32]}"


class SignedWebhook(Connector):
    kind = "webhook"
    batch_size = BATCH

    def apply(self, request: SyncRequest) -> SyncResult:
        (outcome,) = self.apply_batch([request])
        if isinstance(outcome, CrmError):
            raise outcome
        return outcome

    def apply_batch(self, requests: Sequence[SyncRequest]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for start in range(0, len(requests), BATCH):
            chunk = requests[start : start + BATCH]
            try:
                self._deliver([event_of(r) for r in chunk])
            except CrmThrottled as exc:  # the rest wait with it
                return outcomes + [exc] * (len(requests) - start)
            except CrmError as exc:
                outcomes += [exc] * len(chunk)
                continue
            outcomes += [SyncResult({}) for _ in chunk]  # the receiver keys on the ids
        return outcomes

    def _deliver(self, events: list[dict[str, Any]]) -> None:
        now = datetime.now(UTC)
        webhook_id = envelope_id(events)
        payload = json.dumps(
            {"type": "crm.batch", "timestamp": now.isoformat(), "data": {"events": events}}
        )
        signature = Webhook(str(self.config["secret"])).sign(webhook_id, now, payload)
        response = self._call_http(
            "POST",
            str(self.config["url"]),
            data=payload,
            headers={
                "content-type": "application/json",
                "webhook-id": webhook_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signature,
            },
        )
        if response.status_code >= 300:
            raise classify_http(response, "POST webhook")
