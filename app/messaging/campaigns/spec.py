"""What a campaign is asked to be (contract): ``POST /v1/campaigns``'s body, less its recipients."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from app.domain.channels import Channel
from app.messaging.intake.intents import MAX_TTL_SECONDS, Priority


class CampaignSpec(BaseModel):
    """Every recipient's message shares these. From a template (pinned to its current version
    when the campaign is created) or one body; ``start: false`` makes a draft."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, title="CampaignIn")

    name: Annotated[str, Field(max_length=200)] | None = None
    template: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    body: Annotated[str, Field(min_length=1, max_length=1600)] | None = None
    channels: Annotated[list[Channel], Field(min_length=1, max_length=3)] = ["sms"]
    account_id: Annotated[str, Field(max_length=40)] | None = None
    priority: Priority = "bulk"
    ttl_seconds: Annotated[int, Field(gt=0, le=MAX_TTL_SECONDS)] | None = None
    send_at: AwareDatetime | None = None
    quiet_hours: Literal["respect", "ignore"] = "respect"
    # Messages a second of its own, beneath the account's rate limit.
    rate_per_second: Annotated[float, Field(gt=0, le=10_000)] | None = None
    start: bool = True
    # [{"to": "+1...", "variables": {...}, "reference": "..."}]; or the body is a CSV.
    recipients: list[Any] | None = None

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("channels must not repeat")
        return value

    @model_validator(mode="after")
    def _content(self) -> CampaignSpec:
        if (self.template is None) == (self.body is None):
            raise ValueError("give a template or a body, one of them")
        return self

    def digest(self) -> str:
        """What tells a retry of this campaign (same key) from another: all but recipients."""
        fields = self.model_dump(mode="json", exclude={"recipients", "start"})
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def spec_from_query(args: dict[str, str]) -> dict[str, Any]:
    """A CSV upload's campaign fields, from its query string (``channels`` comma-separated)."""
    found: dict[str, Any] = dict(args)
    if "channels" in found:
        found["channels"] = [c.strip() for c in found["channels"].split(",") if c.strip()]
    if "start" in found:
        value = found["start"].lower()
        found["start"] = (
            value in ("1", "true", "yes")
            if value in ("1", "0", "true", "false", "yes", "no")
            else found["start"]
        )
    return found
