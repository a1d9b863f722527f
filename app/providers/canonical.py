"""The canonical event (contract, schemaVersion 1) and its published JSON Schema.

``schemas/canonical-event.v1.json`` is generated from this model
(``switchboard schema``), and a test keeps the two identical.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from app.domain.channels import Channel

# Ids and codes become keys and columns: no control characters (a NUL cannot be stored).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
ProviderStatus = Literal["queued", "accepted", "sent", "delivered", "read", "failed", "undelivered"]


class Party(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: Annotated[str, Field(pattern=r"^\+[1-9]\d{6,14}$")]


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(max_length=2048)]
    contentType: Annotated[str, Field(max_length=100)]


class EventMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, Field(max_length=10_000)] | None = None
    attachments: list[Attachment] = []
    contentType: str = "text/plain"


class CanonicalEvent(BaseModel):
    """A provider event: an inbound message, or a status of an outbound one."""

    model_config = ConfigDict(extra="forbid", title="SwitchboardCanonicalEvent")

    eventId: Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)]
    schemaVersion: Literal[1]
    channel: Channel
    direction: Literal["inbound", "outbound", "status"]
    conversationId: Annotated[str, Field(max_length=200, pattern=PRINTABLE)] | None = None
    sender: Party | None = None
    recipient: Party | None = None
    message: EventMessage | None = None
    status: ProviderStatus | None = None
    providerMessageId: Annotated[str, Field(max_length=100, pattern=PRINTABLE)] | None = None
    errorCode: Annotated[str, Field(max_length=40, pattern=PRINTABLE)] | None = None
    timestamp: AwareDatetime
    metadata: dict[str, Any] = {}

    @model_validator(mode="after")
    def _shape(self) -> CanonicalEvent:
        if self.direction == "status" and not (self.status and self.providerMessageId):
            raise ValueError("a status event needs status and providerMessageId")
        if self.direction == "inbound" and not (self.sender and self.recipient and self.message):
            raise ValueError("an inbound event needs sender, recipient and message")
        return self


def canonical_event_schema() -> str:
    schema = CanonicalEvent.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://switchboard.example/schemas/canonical-event.v1.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
