"""The status-reason taxonomy (contract): why a message ended failed, undelivered, expired,
or canceled.

One list, machine-readable, documented in the README. A provider's raw code
(Twilio's 30006, say) goes in the event's data, never instead of a reason.
"""

from __future__ import annotations

from enum import StrEnum


class StatusReason(StrEnum):
    INVALID_NUMBER = "invalid_number"
    LANDLINE_OR_UNREACHABLE = "landline_or_unreachable"
    CARRIER_FILTERED = "carrier_filtered"
    BLOCKED = "blocked"
    RECIPIENT_OPTED_OUT = "recipient_opted_out"
    NO_CONSENT = "no_consent"
    RATE_LIMITED = "rate_limited"
    EXPIRED = "expired"
    RETRIES_EXHAUSTED = "retries_exhausted"
    CHANNEL_UNSUPPORTED = "channel_unsupported"
    REGION_NOT_PERMITTED = "region_not_permitted"
    SENDER_UNREGISTERED = "sender_unregistered"
    CONTENT_REJECTED = "content_rejected"
    ACCOUNT_MISCONFIGURED = "account_misconfigured"
    PROVIDER_CANCELED = "provider_canceled"
    REPLIED = "replied"
    CANCELED_BY_API = "canceled_by_api"
    CAMPAIGN_CANCELED = "campaign_canceled"
    RECIPIENT_ERASED = "recipient_erased"
    UNKNOWN = "unknown"


DESCRIPTIONS: dict[StatusReason, str] = {
    StatusReason.INVALID_NUMBER: "the number does not exist or is not a valid phone number",
    StatusReason.LANDLINE_OR_UNREACHABLE: (
        "a landline, or a handset the carrier cannot reach (off, out of coverage)"
    ),
    StatusReason.CARRIER_FILTERED: "the carrier filtered the message as spam or a policy breach",
    StatusReason.BLOCKED: "the carrier or the recipient blocked messages from this sender",
    StatusReason.RECIPIENT_OPTED_OUT: "the recipient opted out (STOP), here or at the provider",
    StatusReason.NO_CONSENT: "the tenant requires opt-in and there is none on record",
    StatusReason.RATE_LIMITED: "the provider or carrier queue overflowed and dropped it",
    StatusReason.EXPIRED: "its TTL passed before it could be dispatched",
    StatusReason.RETRIES_EXHAUSTED: "retryable errors until the attempt limit",
    StatusReason.CHANNEL_UNSUPPORTED: (
        "no channel left in its fallback order that the recipient takes"
    ),
    StatusReason.REGION_NOT_PERMITTED: "the account may not send to the recipient's country",
    StatusReason.SENDER_UNREGISTERED: "the sender is not registered for this traffic (A2P 10DLC)",
    StatusReason.CONTENT_REJECTED: "the body or media was rejected (too long, bad media URL)",
    StatusReason.ACCOUNT_MISCONFIGURED: "the provider rejected the account's credentials or sender",
    StatusReason.PROVIDER_CANCELED: "the provider canceled it before sending",
    StatusReason.REPLIED: "a reply in its journey canceled it",
    StatusReason.CANCELED_BY_API: "canceled through the API",
    StatusReason.CAMPAIGN_CANCELED: "its campaign was canceled before it was dispatched",
    StatusReason.RECIPIENT_ERASED: "the recipient's data was erased (a data-subject request)",
    StatusReason.UNKNOWN: "the provider gave no reason we recognise (its raw code is in the event)",
}


def as_reason(value: str | None) -> StatusReason:
    """``value`` if it is in the taxonomy, else ``unknown``."""
    try:
        return StatusReason(value or "unknown")
    except ValueError:
        return StatusReason.UNKNOWN
