"""Twilio's statuses and error codes, and what each means to us: one readable table each.

Seeded from Twilio's error catalogue. A code that is not listed is permanent
with reason ``unknown`` when Twilio answered 4xx, and retryable on 5xx; its
raw value always goes in the event's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.domain.reasons import StatusReason as R
from app.providers.canonical import ProviderStatus

Kind = Literal["permanent", "throttled", "retryable"]


@dataclass(frozen=True)
class TwilioCode:
    kind: Kind
    reason: R
    channel_related: bool = False  # the next channel in the message's order may still work


def _p(reason: R, channel_related: bool = False) -> TwilioCode:
    return TwilioCode("permanent", reason, channel_related)


ERRORS: dict[int, TwilioCode] = {
    # -- answered by the Messages API when we send
    20003: _p(R.ACCOUNT_MISCONFIGURED),  # authentication failed (SID or token wrong)
    20404: _p(R.ACCOUNT_MISCONFIGURED),  # the account or messaging service does not exist
    20429: TwilioCode("throttled", R.RATE_LIMITED),  # too many requests
    20500: TwilioCode("retryable", R.UNKNOWN),  # internal server error
    20503: TwilioCode("retryable", R.UNKNOWN),  # service unavailable
    21211: _p(R.INVALID_NUMBER),  # invalid 'To' phone number
    21214: _p(R.INVALID_NUMBER),  # 'To' phone number cannot be reached
    21217: _p(R.INVALID_NUMBER),  # phone number does not appear to be valid
    21408: _p(R.REGION_NOT_PERMITTED),  # permission to send to this region is not enabled
    21606: _p(R.ACCOUNT_MISCONFIGURED),  # 'From' is not a valid, message-capable number
    21610: _p(R.RECIPIENT_OPTED_OUT),  # the recipient replied STOP to this sender
    # 'To' is not reachable via SMS or MMS: the next channel may still reach it.
    21612: _p(R.LANDLINE_OR_UNREACHABLE, channel_related=True),
    21614: _p(R.LANDLINE_OR_UNREACHABLE),  # 'To' is not a mobile number
    21617: _p(R.CONTENT_REJECTED),  # the body exceeds 1600 characters
    21620: _p(R.CONTENT_REJECTED),  # invalid media URL
    21623: _p(R.CONTENT_REJECTED),  # too many media files
    # -- carried on an undelivered or failed status callback (ErrorCode)
    30001: _p(R.RATE_LIMITED),  # queue overflow: sent too fast, dropped
    30002: _p(R.ACCOUNT_MISCONFIGURED),  # account suspended
    30003: _p(R.LANDLINE_OR_UNREACHABLE),  # unreachable destination handset
    30004: _p(R.BLOCKED),  # message blocked (by the recipient or the carrier)
    30005: _p(R.INVALID_NUMBER),  # unknown destination handset
    30006: _p(R.LANDLINE_OR_UNREACHABLE),  # landline or unreachable carrier
    30007: _p(R.CARRIER_FILTERED),  # message filtered (carrier violation)
    30008: _p(R.UNKNOWN),  # unknown error
    30009: _p(R.UNKNOWN),  # missing segment
    30019: _p(R.CONTENT_REJECTED, channel_related=True),  # content size exceeds carrier limit
    30032: _p(R.SENDER_UNREGISTERED),  # toll-free number not verified
    30034: _p(R.SENDER_UNREGISTERED),  # US A2P 10DLC: message from an unregistered number
}

# Every Twilio message status, as a canonical status. ``sending`` and ``scheduled``
# are still Twilio's to deliver; ``partially_delivered`` is not proof of delivery;
# ``canceled`` (a scheduled send withdrawn) never reached the carrier.
STATUSES: dict[str, ProviderStatus] = {
    "accepted": "accepted",
    "scheduled": "accepted",
    "queued": "queued",
    "sending": "accepted",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "partially_delivered": "sent",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
CANCELED_CODE = "canceled"  # stands in for the missing ErrorCode of a canceled message


def lookup(code: str | int | None) -> TwilioCode | None:
    try:
        return ERRORS.get(int(code)) if code is not None else None
    except ValueError:
        return None


def reason_for(code: str | None) -> R:
    """The reason for a failed or undelivered callback carrying ``ErrorCode`` ``code``."""
    if code == CANCELED_CODE:
        return R.PROVIDER_CANCELED
    entry = lookup(code)
    return entry.reason if entry is not None else R.UNKNOWN
