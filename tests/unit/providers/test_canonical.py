"""The canonical event: the published schema matches the model, and the model's rules hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.providers.canonical import CanonicalEvent, canonical_event_schema

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "schemas" / "canonical-event.v1.json"


@pytest.fixture
def status_event() -> dict[str, Any]:
    """A valid delivery receipt."""
    return {
        "eventId": "evt_1",
        "schemaVersion": 1,
        "channel": "sms",
        "direction": "status",
        "status": "delivered",
        "providerMessageId": "pm_1",
        "timestamp": "2025-03-01T12:00:00Z",
    }


@pytest.fixture
def inbound_event() -> dict[str, Any]:
    """A valid inbound message."""
    return {
        "eventId": "evt_2",
        "schemaVersion": 1,
        "channel": "sms",
        "direction": "inbound",
        "sender": {"phone": "+14155552671"},
        "recipient": {"phone": "+12025550199"},
        "message": {"text": "STOP"},
        "timestamp": "2025-03-01T12:00:00+01:00",
    }


def test_published_schema_matches_the_model() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == canonical_event_schema()


def test_schema_is_draft_2020_12_and_closed() -> None:
    schema = json.loads(canonical_event_schema())

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("canonical-event.v1.json")
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {
        "eventId",
        "schemaVersion",
        "channel",
        "direction",
        "timestamp",
    }


def test_valid_events_parse(status_event: dict[str, Any], inbound_event: dict[str, Any]) -> None:
    assert CanonicalEvent.model_validate(status_event).status == "delivered"
    assert CanonicalEvent.model_validate(inbound_event).sender is not None


@pytest.mark.parametrize("missing", ["providerMessageId", "status"])
def test_status_event_needs_status_and_provider_id(
    status_event: dict[str, Any], missing: str
) -> None:
    del status_event[missing]

    with pytest.raises(ValidationError, match="providerMessageId"):
        CanonicalEvent.model_validate(status_event)


@pytest.mark.parametrize("missing", ["sender", "recipient", "message"])
def test_inbound_event_needs_sender_recipient_and_message(
    inbound_event: dict[str, Any], missing: str
) -> None:
    del inbound_event[missing]

    with pytest.raises(ValidationError, match="inbound event needs"):
        CanonicalEvent.model_validate(inbound_event)


@pytest.mark.parametrize("version", [2, 0, "1.1"])
def test_other_schema_versions_are_rejected(status_event: dict[str, Any], version: Any) -> None:
    with pytest.raises(ValidationError) as info:
        CanonicalEvent.model_validate({**status_event, "schemaVersion": version})

    assert info.value.errors()[0]["loc"] == ("schemaVersion",)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timestamp", "2025-03-01T12:00:00"),
        ("status", "bounced"),
        ("channel", "fax"),
        ("surprise", True),
    ],
)
def test_bad_fields_are_rejected(status_event: dict[str, Any], field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        CanonicalEvent.model_validate({**status_event, field: value})

    assert info.value.errors()[0]["loc"][0] == field


def test_party_phone_must_be_e164(inbound_event: dict[str, Any]) -> None:
    inbound_event["sender"] = {"phone": "4155552671"}

    with pytest.raises(ValidationError) as info:
        CanonicalEvent.model_validate(inbound_event)

    assert info.value.errors()[0]["loc"] == ("sender", "phone")
