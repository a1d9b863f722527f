"""The provider interface: ``send`` gives a typed result or a typed, classified error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from app.models import ChannelAccount


@dataclass(frozen=True)
class SendRequest:
    message_id: str
    to: str
    sender: str
    channel: str
    body: str | None
    media: list[dict[str, str]]
    attempt: int  # 1 for the first try, counting throttled tries
    status_callback: str


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    status: str = "accepted"
    raw: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """Base of the three classes every provider failure falls into."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class RetryableError(ProviderError):
    """Transport failure or 5xx: try again later with backoff."""


class ThrottledError(ProviderError):
    """429 or equivalent: not a failure; wait ``retry_after`` seconds and try again."""

    def __init__(self, reason: str, retry_after: float, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.retry_after = retry_after


class PermanentError(ProviderError):
    """Will never succeed as sent. ``channel_related`` allows falling back to the next channel."""

    def __init__(self, reason: str, detail: str = "", *, channel_related: bool = False) -> None:
        super().__init__(reason, detail)
        self.channel_related = channel_related


def is_retryable_status(status: int) -> bool:
    """Retry only on 5xx; 429 is a throttle, and other 4xx are permanent."""
    return status >= 500


class Provider(Protocol):
    name: str
    webhook_kind: str  # which /webhooks/{kind}/ endpoint its callbacks arrive at
    # A task owed (through the outbox) once a send is accepted, for providers that
    # simulate their own receipts; None for real providers, whose receipts arrive by webhook.
    receipt_task: str | None

    def send(self, account: ChannelAccount, request: SendRequest) -> SendResult: ...
