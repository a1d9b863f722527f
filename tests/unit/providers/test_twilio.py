"""The Twilio adapter's pure parts: the form it sends, its tables, verification and parsing."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
import requests

from app.domain.reasons import StatusReason
from app.models import ChannelAccount
from app.providers import twilio_codes
from app.providers.base import (
    MalformedWebhook,
    PermanentError,
    RetryableError,
    SendRequest,
    SignatureError,
    ThrottledError,
    WebhookRequest,
)
from app.providers.twilio import EMPTY_TWIML, TwilioProvider, classify
from scripts.fake_twilio import sign

TOKEN = "tok-123"
SID = "AC" + "a" * 32
URL = "https://sb.example.com/webhooks/twilio/acc_01ARZ3NDEKTSV4RRFFQ69G5FAV"
twilio = TwilioProvider()


def account(sender: str = "+12025550199", **creds: str) -> ChannelAccount:
    return ChannelAccount(
        id="acc_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        tenant_id="ten_x",
        provider="twilio",
        channels=["sms", "mms", "rcs"],
        sender=sender,
        credentials=json.dumps({"account_sid": SID, "auth_token": TOKEN, **creds}),
    )


def request(params: dict[str, str], signature: str | None, url: str = URL) -> WebhookRequest:
    headers = {"x-twilio-signature": signature} if signature is not None else {}
    return WebhookRequest(
        url=url,
        body=urlencode(params).encode(),
        headers=headers,
        content_type="application/x-www-form-urlencoded",
    )


def status_params(status: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": "SM" + "b" * 32,
        "MessageStatus": status,
        "AccountSid": SID,
        "From": "+12025550199",
        "To": "+12025550100",
        **extra,
    }


def send_request(**overrides: object) -> SendRequest:
    values: dict[str, object] = {
        "message_id": "msg_1",
        "to": "+12025550100",
        "sender": "+12025550199",
        "channel": "mms",
        "body": "hi",
        "media": [
            {"url": "https://x.example/a.png", "content_type": "image/png"},
            {"url": "https://x.example/b.png", "content_type": "image/png"},
        ],
        "attempt": 1,
        "status_callback": "https://sb.example.com/webhooks/twilio/acc_1",
        **overrides,
    }
    return SendRequest(**values)  # type: ignore[arg-type]


def test_the_send_form_has_twilios_fields_with_media_repeated() -> None:
    form = twilio.form({"account_sid": SID}, send_request())
    assert form == [
        ("To", "+12025550100"),
        ("From", "+12025550199"),
        ("Body", "hi"),
        ("MediaUrl", "https://x.example/a.png"),
        ("MediaUrl", "https://x.example/b.png"),
        ("StatusCallback", "https://sb.example.com/webhooks/twilio/acc_1"),
    ]


def test_a_messaging_service_replaces_from_and_rcs_gets_its_prefix() -> None:
    form = dict(twilio.form({"messaging_service_sid": "MG1"}, send_request(media=[])))
    assert form["MessagingServiceSid"] == "MG1" and "From" not in form
    form = dict(twilio.form({}, send_request(channel="rcs", sender="brand_agent", media=[])))
    assert form["From"] == "rcs:brand_agent"


@pytest.mark.parametrize("status", sorted(twilio_codes.STATUSES))
def test_every_twilio_status_maps_and_parses(status: str) -> None:
    extra = {"ErrorCode": "30003"} if status in ("undelivered", "failed") else {}
    parsed = twilio.parse(account(), request(status_params(status, **extra), "unused"))
    event = parsed.event
    assert event.direction == "status" and event.status == twilio_codes.STATUSES[status]
    assert parsed.dedupe_key == f"{'SM' + 'b' * 32}:{status}"
    assert event.metadata["providerStatus"] == status


def test_all_documented_statuses_are_covered() -> None:
    documented = {
        "queued", "sending", "sent", "delivered", "undelivered", "failed", "read",
        "canceled", "accepted", "scheduled", "partially_delivered",
    }  # fmt: skip
    assert documented == set(twilio_codes.STATUSES)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("30003", StatusReason.LANDLINE_OR_UNREACHABLE),
        ("30004", StatusReason.BLOCKED),
        ("30005", StatusReason.INVALID_NUMBER),
        ("30006", StatusReason.LANDLINE_OR_UNREACHABLE),
        ("30007", StatusReason.CARRIER_FILTERED),
        ("30008", StatusReason.UNKNOWN),
        ("30034", StatusReason.SENDER_UNREGISTERED),
        ("99999", StatusReason.UNKNOWN),
        (None, StatusReason.UNKNOWN),
        ("canceled", StatusReason.PROVIDER_CANCELED),
    ],
)
def test_carrier_codes_become_reasons(code: str | None, reason: StatusReason) -> None:
    assert twilio.status_reason(code) is reason


def answer(status: int, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (21211, StatusReason.INVALID_NUMBER),
        (21610, StatusReason.RECIPIENT_OPTED_OUT),
        (21408, StatusReason.REGION_NOT_PERMITTED),
        (21612, StatusReason.LANDLINE_OR_UNREACHABLE),
        (21614, StatusReason.LANDLINE_OR_UNREACHABLE),
        (21999, StatusReason.UNKNOWN),
    ],
)
def test_send_errors_are_permanent_with_their_reason(code: int, reason: StatusReason) -> None:
    error = classify(answer(400, {"code": code, "message": "m", "status": 400}))
    assert isinstance(error, PermanentError)
    assert (error.reason, error.code) == (reason.value, str(code))
    assert error.channel_related == (code == 21612)


def test_429_and_20429_are_throttles_that_honour_retry_after() -> None:
    error = classify(answer(429, {"code": 20429}, {"Retry-After": "7"}))
    assert isinstance(error, ThrottledError) and error.retry_after == 7.0
    error = classify(answer(400, {"code": 20429}))
    assert isinstance(error, ThrottledError) and error.retry_after == 1.0


def test_5xx_is_retryable_even_without_a_body() -> None:
    response = requests.Response()
    response.status_code = 503
    response._content = b"<html>down</html>"
    assert isinstance(classify(response), RetryableError)


def test_a_signature_over_the_public_url_verifies() -> None:
    params = status_params("delivered")
    twilio.verify(account(), [], request(params, sign(TOKEN, URL, params)))
    with_query = URL + "?tenant=a&x=1"
    twilio.verify(account(), [], request(params, sign(TOKEN, with_query, params), url=with_query))


def test_a_previous_token_kept_as_a_secret_still_verifies_while_rotating() -> None:
    params = status_params("sent")
    twilio.verify(account(), ["old-token"], request(params, sign("old-token", URL, params)))


@pytest.mark.parametrize("bad", ["missing", "forged", "other_url", "tampered", "other_token"])
def test_forged_or_missing_signatures_are_refused(bad: str) -> None:
    params = status_params("delivered")
    signature = {
        "missing": None,
        "forged": "bm9wZQ==",
        "other_url": sign(TOKEN, "http://10.0.0.5:8000/webhooks/twilio/acc_1", params),
        "tampered": sign(TOKEN, URL, status_params("sent")),
        "other_token": sign("not-the-token", URL, params),
    }[bad]
    with pytest.raises(SignatureError):
        twilio.verify(account(), [], request(params, signature))


def test_inbound_mms_parses_from_to_body_and_media() -> None:
    params = {
        "MessageSid": "MM" + "c" * 32,
        "From": "+447700900123",
        "To": "+12025550199",
        "Body": "photo",
        "NumMedia": "2",
        "MediaUrl0": "https://api.twilio.com/media/0",
        "MediaContentType0": "image/jpeg",
        "MediaUrl1": "https://api.twilio.com/media/1",
        "MediaContentType1": "video/mp4",
        "SmsStatus": "received",
    }
    event = twilio.parse(account(), request(params, None)).event
    assert event.direction == "inbound" and event.channel == "mms"
    assert event.sender is not None and event.sender.phone == "+447700900123"
    assert event.message is not None and event.message.text == "photo"
    assert [(a.url, a.contentType) for a in event.message.attachments] == [
        ("https://api.twilio.com/media/0", "image/jpeg"),
        ("https://api.twilio.com/media/1", "video/mp4"),
    ]


def test_inbound_rcs_button_tap_parses_with_its_payload() -> None:
    params = {
        "MessageSid": "SM" + "d" * 32,
        "From": "rcs:+14155550123",
        "To": "rcs:brand_agent",
        "ButtonText": "Yes, confirm",
        "ButtonPayload": "confirm-42",
        "NumMedia": "0",
    }
    event = twilio.parse(account(), request(params, None)).event
    assert event.channel == "rcs" and event.direction == "inbound"
    assert event.sender is not None and event.sender.phone == "+14155550123"
    assert event.recipient is not None and event.recipient.phone == "+12025550199"
    assert event.message is not None and event.message.text == "Yes, confirm"
    assert event.metadata["buttonPayload"] == "confirm-42"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"MessageSid": "SM1\x00", "MessageStatus": "sent"},
        {"MessageSid": "SM" + "b" * 32, "MessageStatus": "exploded"},
        {"MessageSid": "SM" + "b" * 32, "From": "not-a-number", "Body": "x"},
    ],
)
def test_unreadable_callbacks_are_malformed(params: dict[str, str]) -> None:
    with pytest.raises(MalformedWebhook):
        twilio.parse(account(), request(params, None))


def test_the_acknowledgement_is_empty_twiml() -> None:
    parsed = twilio.parse(account(), request(status_params("sent"), None))
    for new in (True, False):
        ack = twilio.acknowledge(parsed, new)
        assert (ack.body, ack.status, ack.content_type) == (EMPTY_TWIML, 200, "text/xml")


def test_account_setup_checks_what_twilio_needs() -> None:
    from app.providers.base import AccountOptions

    with pytest.raises(ValueError, match="--account-sid"):
        twilio.setup_account(AccountOptions(sender="+12025550199"))
    with pytest.raises(ValueError, match="AC"):
        twilio.setup_account(AccountOptions(sender="+1", account_sid="XX1", auth_token="t"))
    setup = twilio.setup_account(AccountOptions(sender="+1", account_sid=SID, auth_token="t"))
    assert setup.credentials == {
        "account_sid": SID,
        "auth_token": "t",
        "base_url": "https://api.twilio.com",
    }
    assert setup.webhook_secret is None
