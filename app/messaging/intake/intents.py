"""The send intent (contract): what business systems POST to /v1/messages."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

from app.domain.channels import Channel
from app.domain.phones import InvalidPhoneNumber, to_e164


def _e164(value: str) -> str:
    try:
        return to_e164(value)
    except InvalidPhoneNumber as exc:
        raise ValueError(str(exc)) from None


# A phone number in any request body: validated and normalised to E.164.
E164 = Annotated[str, AfterValidator(_e164)]
Priority = Literal["urgent", "normal", "bulk"]
MAX_TTL_SECONDS = 30 * 24 * 3600


class Media(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    content_type: Annotated[str, Field(pattern=r"^[\w.+-]+/[\w.+-]+$", max_length=100)]


class SendIntent(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    to: E164
    body: Annotated[str, Field(max_length=1600)] | None = None
    media: Annotated[list[Media], Field(max_length=10)] = []
    channels: Annotated[list[Channel], Field(min_length=1, max_length=3)] = ["sms"]
    account_id: Annotated[str, Field(max_length=40)] | None = None
    priority: Priority = "normal"
    ttl_seconds: Annotated[int, Field(gt=0, le=MAX_TTL_SECONDS)] | None = None
    send_at: AwareDatetime | None = None
    quiet_hours: Literal["respect", "ignore"] = "respect"
    journey_id: Annotated[str, Field(max_length=200)] | None = None
    external_ref: Annotated[str, Field(max_length=200)] | None = None
    metadata: dict[str, Any] = {}
    # Or from a template (its id or name), with its variables and an optional locale (else
    # the contact's stored one, else the template's default).
    template: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    variables: dict[str, Any] | None = None
    locale: Annotated[str, Field(max_length=35)] | None = None

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("channels must not repeat")
        return value

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, default=str)) > 4096:
            raise ValueError("metadata must serialize to at most 4096 bytes")
        return value

    @model_validator(mode="after")
    def _content(self) -> SendIntent:
        if self.template is not None:
            if self.body is not None or self.media:
                raise ValueError("give a template or a body (and media), not both")
            return self
        if self.variables is not None or self.locale is not None:
            raise ValueError("variables and locale go with a template")
        if not self.body and not self.media:
            raise ValueError("a message needs a body, media, or both")
        if self.media and not set(self.channels) & {"mms", "rcs"}:
            raise ValueError("media needs an mms or rcs channel in channels")
        return self


def request_hash(payload: Any) -> str:
    """A stable digest of the request body, to tell a replay from a different request."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
