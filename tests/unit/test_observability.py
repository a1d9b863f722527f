"""Sentry scrubbing: phone numbers and message content never leave the process."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.observability.sentry import REDACTED, before_send, scrub

PHONE = "+12025550100"
BODY = "Your code is meet-me-at-the-dock"


@pytest.fixture
def event() -> dict[str, Any]:
    """A Sentry event shaped like one from a failing webhook request."""
    return {
        "message": f"send to {PHONE} failed",
        "request": {
            "url": "https://sb.example.com/webhooks/standard/acc_1",
            "headers": {"Authorization": "Bearer sk_live_x", "webhook-signature": "v1,abc"},
            "data": {"to": PHONE, "body": BODY},
            "query_string": "To=%2B12025550100",
        },
        "extra": {"message_id": "msg_1", "phone": PHONE, "Body": BODY},
        "breadcrumbs": {
            "values": [
                {"message": f"calling provider for {PHONE}", "data": {"text": BODY}},
                {"message": "ok", "data": {"numbers": [PHONE, "+44 7911 123456"]}},
            ]
        },
        "exception": {
            "values": [
                {
                    "stacktrace": {
                        "frames": [
                            {"vars": {"to": PHONE, "media": ["https://x/y.png"], "n": 3}},
                            {"vars": {"intent": ("ok", f"tel: {PHONE}"), "credentials": "c"}},
                        ]
                    }
                }
            ]
        },
    }


def test_before_send_removes_phones_and_bodies(event: dict[str, Any]) -> None:
    scrubbed = before_send(event, {})

    dumped = json.dumps(scrubbed)
    assert "12025550100" not in dumped
    assert "7911 123456" not in dumped
    assert BODY not in dumped
    assert "sk_live_x" not in dumped
    assert "v1,abc" not in dumped
    assert scrubbed["request"]["data"] == REDACTED
    assert scrubbed["extra"]["Body"] == REDACTED


def test_before_send_keeps_what_is_not_personal(event: dict[str, Any]) -> None:
    scrubbed = before_send(event, {})

    assert scrubbed["extra"]["message_id"] == "msg_1"
    assert scrubbed["request"]["url"] == "https://sb.example.com/webhooks/standard/acc_1"
    assert scrubbed["breadcrumbs"]["values"][1]["message"] == "ok"
    assert scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]["n"] == 3
    assert scrubbed["message"] == f"send to {REDACTED} failed"


def test_request_body_as_a_string_is_redacted() -> None:
    scrubbed = before_send({"request": {"data": f"Body=hi&To={PHONE}"}}, {})

    assert scrubbed["request"]["data"] == REDACTED


@pytest.mark.parametrize(
    "text", [PHONE, "+1 (202) 555-0100", "202.555.0100", "+44 20 7946 0958", "12025550100"]
)
def test_phone_numbers_in_any_format_are_replaced(text: str) -> None:
    assert scrub(f"call {text} now") == f"call {REDACTED} now"


def test_sensitive_keys_match_in_any_case() -> None:
    scrubbed = scrub({"TO": "a", "From": "b", "Text": "c", "AUTH_TOKEN": "d", "id": "e"})

    assert scrubbed == {
        "TO": REDACTED,
        "From": REDACTED,
        "Text": REDACTED,
        "AUTH_TOKEN": REDACTED,
        "id": "e",
    }


def test_scrub_leaves_other_values_alone() -> None:
    assert scrub(None) is None
    assert scrub(42) == 42
    assert scrub("msg_01HZY attempt 3") == "msg_01HZY attempt 3"


def test_phone_numbers_used_as_keys_are_scrubbed() -> None:
    scrubbed = scrub({"vars": {PHONE: "accepted, sent, delivered"}})

    assert "12025550100" not in json.dumps(scrubbed)


def test_sqlalchemy_bound_parameters_are_redacted() -> None:
    message = (
        "(psycopg2.errors.UndefinedColumn) column does not exist\n"
        "[SQL: SELECT x FROM messages WHERE body = %(b)s]\n"
        "[parameters: {'b': 'meet me at [the] usual place'}]\n"
        "(Background on this error at: https://sqlalche.me/e/21/f405)"
    )
    scrubbed = scrub(message)
    assert "usual place" not in scrubbed
    assert "[SQL: SELECT x FROM messages WHERE body = %(b)s]" in scrubbed
    assert "Background on this error" in scrubbed
