"""How messages and their events look over the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.messaging.intake.statement import NewMessage
from app.models import Message, MessageEvent


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def event_view(event: MessageEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "kind": event.kind,
        "from": event.from_status,
        "to": event.to_status,
        "outcome": event.outcome,
        "reason": event.reason,
        "source": event.source,
        "data": event.data,
        "at": iso(event.created_at),
    }


def message_view(
    message: Message | NewMessage, phone: str, events: list[MessageEvent] | None = None
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": message.id,
        "direction": message.direction,
        "status": message.status,
        "status_reason": message.status_reason,
        "to" if message.direction == "outbound" else "from": phone,
        "channel": message.channel,
        "channels": message.channels,
        "account_id": message.account_id,
        "body": message.body,
        "media": json.loads(message.media) if message.media else [],
        "priority": message.priority,
        "segments": message.segments,
        "encoding": message.encoding,
        "attempts": message.attempts,
        "provider_message_id": message.provider_message_id,
        "send_at": iso(message.not_before),
        "next_attempt_at": iso(message.next_attempt_at),
        "expires_at": iso(message.expires_at),
        "quiet_hours": message.quiet_hours,
        "purpose": message.purpose,
        "journey_id": message.journey_id,
        "campaign_id": getattr(message, "campaign_id", None),
        "external_ref": message.external_ref,
        "metadata": message.metadata_,
        "template": None
        if getattr(message, "template_id", None) is None
        else {
            "id": getattr(message, "template_id", None),
            "version": getattr(message, "template_version", None),
            "locale": getattr(message, "template_locale", None),
        },
        "created_at": iso(message.created_at),
        "updated_at": iso(message.updated_at),
    }
    if events is not None:
        view["events"] = [event_view(e) for e in events]
    return view
