"""The send intent contract: what business systems may POST to /v1/messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from app.messaging.intake.intents import SendIntent, request_hash

TO = "+14155552671"
IMAGE = {"url": "https://cdn.example.com/a.png", "content_type": "image/png"}


def errors_of(payload: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        SendIntent.model_validate(payload)
    return info.value.errors()


def test_minimal_intent_gets_defaults() -> None:
    intent = SendIntent.model_validate({"to": TO, "body": "hi"})

    assert intent.to == TO
    assert intent.body == "hi"
    assert intent.channels == ["sms"]
    assert intent.priority == "normal"
    assert intent.quiet_hours == "respect"
    assert intent.media == []
    assert intent.send_at is None


def test_phone_is_normalized_to_e164() -> None:
    assert SendIntent.model_validate({"to": " +1 415 555 2671 ", "body": "hi"}).to == TO


@pytest.mark.parametrize("to", ["4155552671", "+1415", "+999123456789", "hello", "", "+1 415 555"])
def test_invalid_e164_is_rejected(to: str) -> None:
    [error] = errors_of({"to": to, "body": "hi"})

    assert error["loc"] == ("to",)


def test_unknown_field_is_rejected() -> None:
    [error] = errors_of({"to": TO, "body": "hi", "bcc": "+14155552672"})

    assert error["type"] == "extra_forbidden"
    assert error["loc"] == ("bcc",)


def test_media_without_mms_or_rcs_is_rejected() -> None:
    [error] = errors_of({"to": TO, "media": [IMAGE], "channels": ["sms"]})

    assert "mms or rcs" in error["msg"]


@pytest.mark.parametrize("channels", [["mms"], ["rcs", "sms"], ["sms", "mms"]])
def test_media_with_mms_or_rcs_is_accepted(channels: list[str]) -> None:
    intent = SendIntent.model_validate({"to": TO, "media": [IMAGE], "channels": channels})

    assert [str(m.url) for m in intent.media] == [IMAGE["url"]]


@pytest.mark.parametrize("body", [None, "", "   "])
def test_no_body_and_no_media_is_rejected(body: str | None) -> None:
    [error] = errors_of({"to": TO, "body": body})

    assert "body, media" in error["msg"]


def test_duplicate_channels_are_rejected() -> None:
    [error] = errors_of({"to": TO, "body": "hi", "channels": ["sms", "rcs", "sms"]})

    assert error["loc"] == ("channels",)
    assert "repeat" in error["msg"]


@pytest.mark.parametrize("channels", [[], ["fax"]])
def test_channels_must_be_known_and_present(channels: list[str]) -> None:
    errors = errors_of({"to": TO, "body": "hi", "channels": channels})

    assert all(e["loc"][0] == "channels" for e in errors)


def test_naive_send_at_is_rejected() -> None:
    [error] = errors_of({"to": TO, "body": "hi", "send_at": "2030-01-01T09:00:00"})

    assert error["loc"] == ("send_at",)
    assert error["type"] == "timezone_aware"


def test_aware_send_at_is_accepted() -> None:
    intent = SendIntent.model_validate({"to": TO, "body": "hi", "send_at": "2030-01-01T09:00:00Z"})

    assert intent.send_at == datetime(2030, 1, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("body", "x" * 1601),
        ("ttl_seconds", 0),
        ("ttl_seconds", 31 * 24 * 3600),
        ("priority", "asap"),
        ("quiet_hours", "sometimes"),
        ("metadata", {"blob": "x" * 5000}),
    ],
)
def test_out_of_range_fields_are_rejected(field: str, value: Any) -> None:
    payload = {"to": TO, "body": "hi", field: value}

    assert any(e["loc"][:1] == (field,) for e in errors_of(payload))


def test_media_content_type_must_be_a_mime_type() -> None:
    errors = errors_of({"to": TO, "channels": ["mms"], "media": [{**IMAGE, "content_type": "png"}]})

    assert errors[0]["loc"] == ("media", 0, "content_type")


def test_request_hash_is_stable_under_key_order() -> None:
    one = {"to": TO, "body": "hi", "metadata": {"a": 1, "b": [1, 2]}}
    two = {"metadata": {"b": [1, 2], "a": 1}, "body": "hi", "to": TO}

    assert request_hash(one) == request_hash(two)
    assert len(request_hash(one)) == 64


def test_request_hash_differs_for_different_requests() -> None:
    assert request_hash({"to": TO, "body": "hi"}) != request_hash({"to": TO, "body": "hi!"})
    assert request_hash({"metadata": {"b": [1, 2]}}) != request_hash({"metadata": {"b": [2, 1]}})
