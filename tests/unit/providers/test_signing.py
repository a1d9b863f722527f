"""Standard Webhooks signing and verification, including secret rotation and bad headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from app.providers.signing import (
    SignatureError,
    generate_secret,
    is_valid_secret,
    sign_headers,
    verify,
)

BODY = '{"eventId":"evt_1","schemaVersion":1}'
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def secret() -> str:
    """An active webhook secret."""
    return generate_secret()


@pytest.fixture
def other_secret() -> str:
    """A second secret, as during rotation."""
    return generate_secret()


def test_generated_secret_is_valid(secret: str) -> None:
    assert secret.startswith("whsec_")
    assert is_valid_secret(secret)
    assert not is_valid_secret("no-prefix")


def test_round_trip(secret: str) -> None:
    headers = sign_headers(secret, "evt_1", BODY)

    assert set(headers) >= {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    verify(BODY, headers, [secret])


def test_wrong_secret_is_refused(secret: str, other_secret: str) -> None:
    headers = sign_headers(secret, "evt_1", BODY)

    with pytest.raises(SignatureError):
        verify(BODY, headers, [other_secret])


def test_no_active_secret_is_refused(secret: str) -> None:
    headers = sign_headers(secret, "evt_1", BODY)

    with pytest.raises(SignatureError):
        verify(BODY, headers, [])


def test_tampered_body_is_refused(secret: str) -> None:
    headers = sign_headers(secret, "evt_1", BODY)

    with pytest.raises(SignatureError):
        verify(BODY.replace("evt_1", "evt_2"), headers, [secret])


def test_tampered_id_is_refused(secret: str) -> None:
    headers = {**sign_headers(secret, "evt_1", BODY), "webhook-id": "evt_2"}

    with pytest.raises(SignatureError):
        verify(BODY, headers, [secret])


def test_timestamp_older_than_five_minutes_is_refused(secret: str) -> None:
    headers = sign_headers(secret, "evt_1", BODY, at=NOW)

    with freeze_time(NOW + timedelta(minutes=5, seconds=1)), pytest.raises(SignatureError):
        verify(BODY, headers, [secret])


def test_timestamp_within_five_minutes_is_accepted(secret: str) -> None:
    headers = sign_headers(secret, "evt_1", BODY, at=NOW)

    with freeze_time(NOW + timedelta(minutes=4, seconds=59)):
        verify(BODY, headers, [secret])


def test_timestamp_from_the_future_is_refused(secret: str) -> None:
    headers = sign_headers(secret, "evt_1", BODY, at=NOW + timedelta(minutes=6))

    with freeze_time(NOW), pytest.raises(SignatureError):
        verify(BODY, headers, [secret])


def test_stale_signature_at_real_time_is_refused(secret: str) -> None:
    at = datetime.now(UTC) - timedelta(minutes=6)
    headers = sign_headers(secret, "evt_1", BODY, at=at)

    with pytest.raises(SignatureError):
        verify(BODY, headers, [secret])


@pytest.mark.parametrize("which", [0, 1])
def test_either_active_secret_verifies(secret: str, other_secret: str, which: int) -> None:
    signer = (secret, other_secret)[which]
    headers = sign_headers(signer, "evt_1", BODY)

    verify(BODY, headers, [secret, other_secret])


def test_space_separated_signatures_match_any(secret: str, other_secret: str) -> None:
    old = sign_headers(other_secret, "evt_1", BODY, at=NOW)
    new = sign_headers(secret, "evt_1", BODY, at=NOW)
    headers = {**new, "webhook-signature": f"{old['webhook-signature']} {new['webhook-signature']}"}

    with freeze_time(NOW):
        verify(BODY, headers, [secret])
        verify(BODY, headers, [other_secret])
        with pytest.raises(SignatureError):
            verify(BODY, headers, [generate_secret()])


@pytest.mark.parametrize(
    "signature",
    ["nonsense", "v1,abc", "v1,!!!", "v1,a,b", "v2,AAAA", "", " ", "v1,é"],
)
def test_garbage_signature_is_a_signature_error(secret: str, signature: str) -> None:
    headers = {**sign_headers(secret, "evt_1", BODY), "webhook-signature": signature}

    with pytest.raises(SignatureError):
        verify(BODY, headers, [secret])


@pytest.mark.parametrize("timestamp", ["abc", "", "1e400", "-1"])
def test_garbage_timestamp_is_a_signature_error(secret: str, timestamp: str) -> None:
    headers = {**sign_headers(secret, "evt_1", BODY), "webhook-timestamp": timestamp}

    with pytest.raises(SignatureError):
        verify(BODY, headers, [secret])


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_a_signature_error(secret: str, missing: str) -> None:
    headers = sign_headers(secret, "evt_1", BODY)
    del headers[missing]

    with pytest.raises(SignatureError, match="missing"):
        verify(BODY, headers, [secret])


def test_malformed_stored_secret_does_not_hide_a_good_one(secret: str) -> None:
    headers = sign_headers(secret, "evt_1", BODY)

    verify(BODY, headers, ["whsec_***not base64***", secret])


def test_empty_stored_secret_does_not_hide_a_good_one(secret: str) -> None:
    headers = sign_headers(secret, "evt_1", BODY)

    verify(BODY, headers, ["whsec_", secret])


def test_signing_time_in_another_zone_verifies(secret: str) -> None:
    at = NOW.astimezone(ZoneInfo("America/New_York"))
    headers = sign_headers(secret, "evt_1", BODY, at=at)

    assert headers["webhook-timestamp"] == str(int(NOW.timestamp()))
    with freeze_time(NOW):
        verify(BODY, headers, [secret])
