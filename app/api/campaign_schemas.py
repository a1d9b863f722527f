"""What the /v1/campaigns operations answer, as the OpenAPI description publishes it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from app.domain.channels import Channel

CampaignStatus = Literal["draft", "running", "paused", "canceled", "completed"]


class CampaignTemplate(BaseModel):
    id: str
    version: int | None


class RecipientCounts(BaseModel):
    total: int
    pending: int
    made: int
    skipped: int
    skipped_by_reason: dict[str, int]
    invalid_rows: int
    duplicate_rows: int


class MessageCounts(BaseModel):
    total: int
    by_status: dict[str, int]
    by_reason: dict[str, int]


class RowProblem(BaseModel):
    row: int | None
    field: str | None
    code: str
    message: str


class Upload(BaseModel):
    """What one request's rows came to."""

    rows: int
    accepted: int
    skipped: dict[str, int]
    duplicates: int
    invalid: int
    errors: list[RowProblem]
    duplicate_rows: list[int]


class Changed(BaseModel):
    messages: int
    changed: bool


class CampaignOut(BaseModel):
    """A campaign; with its progress when read alone."""

    model_config = ConfigDict(title="Campaign")

    id: str
    name: str | None
    status: CampaignStatus
    template: CampaignTemplate | None
    body: str | None
    channels: list[Channel]
    account_id: str | None
    priority: Literal["urgent", "normal", "bulk"]
    ttl_seconds: int | None
    send_at: str | None
    quiet_hours: str
    rate_per_second: float | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    recipients: RecipientCounts | None = None
    messages: MessageCounts | None = None
    sent_per_second: float | None = None
    left: int | None = None
    estimated_finish: str | None = None
    held_by: dict[str, int] | None = None
    upload: Upload | None = None
    changed: Changed | None = None


class CampaignPage(BaseModel):
    data: list[CampaignOut]
    next_cursor: str | None


class RecipientOut(BaseModel):
    to: str
    reference: str | None
    state: Literal["pending", "made", "skipped"]
    reason: str | None
    message_id: str | None


class RecipientPage(BaseModel):
    data: list[RecipientOut]
    next_cursor: str | None


class RecipientsIn(BaseModel):
    """Rows to add to an open campaign (or a CSV body, as for the campaign itself)."""

    model_config = ConfigDict(extra="forbid")

    recipients: list[dict[str, Any]]
