"""The Twilio provider: the Messages REST API out, signed form callbacks in.

Sending is a form POST to ``{base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json``
with HTTP basic auth (Account SID, Auth Token), and ``StatusCallback`` pointing
at our webhook. Callbacks (statuses and inbound messages) are verified with
the ``twilio`` package's ``RequestValidator`` against the URL Twilio signed,
which is ``PUBLIC_BASE_URL`` plus path and query, never the proxied request URL.
Codes and statuses are classified in ``twilio_codes``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from twilio.request_validator import RequestValidator

from app.domain.channels import Channel
from app.domain.reasons import StatusReason
from app.domain.retries import retry_after_seconds
from app.models import ChannelAccount
from app.providers import http, twilio_codes
from app.providers.base import (
    AccountOptions,
    AccountSetup,
    Acknowledgement,
    MalformedWebhook,
    ParsedWebhook,
    PermanentError,
    Provider,
    ProviderError,
    RetryableError,
    SendRequest,
    SendResult,
    SignatureError,
    ThrottledError,
    WebhookRequest,
    is_retryable_status,
)
from app.providers.canonical import CanonicalEvent
from app.providers.standard import event_errors

DEFAULT_BASE_URL = "https://api.twilio.com"
SEND_TIMEOUT = (3.05, 10)  # connect, read: seconds
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_MEDIA = 10
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")
_CHANNEL_PREFIX = re.compile(r"^(rcs|whatsapp|messenger):", re.IGNORECASE)


class FormParams(dict[str, list[str]]):
    """Form fields with repeats kept, in the shape ``RequestValidator`` reads (``getlist``)."""

    @classmethod
    def parse(cls, text: str) -> FormParams:
        params = cls()
        for key, value in parse_qsl(text, keep_blank_values=True):
            params.setdefault(key, []).append(value)
        return params

    def getlist(self, key: str) -> list[str]:
        return self.get(key, [])

    def first(self, key: str) -> str | None:
        values = self.get(key)
        return values[0] if values else None


class TwilioProvider(Provider):
    name = "twilio"
    signature_failure_status = 403

    # -- accounts
    def setup_account(self, options: AccountOptions) -> AccountSetup:
        if not options.account_sid or not options.auth_token:
            raise ValueError("--provider twilio needs --account-sid and --auth-token")
        if not _SID.match(options.account_sid) or not options.account_sid.startswith("AC"):
            raise ValueError("--account-sid must look like AC followed by 32 hex digits")
        base_url = options.base_url or DEFAULT_BASE_URL
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("--base-url must start with http:// or https://")
        credentials = {
            "account_sid": options.account_sid,
            "auth_token": options.auth_token,
            "base_url": base_url.rstrip("/"),
        }
        if options.messaging_service_sid:
            if not options.messaging_service_sid.startswith("MG"):
                raise ValueError("--messaging-service-sid must start with MG")
            credentials["messaging_service_sid"] = options.messaging_service_sid
        # Twilio signs callbacks with the Auth Token itself: no separate webhook secret.
        return AccountSetup(credentials=credentials, webhook_secret=None)

    # -- sending
    def send(self, account: ChannelAccount, request: SendRequest) -> SendResult:
        creds = self.credentials(account)
        sid, token = creds.get("account_sid"), creds.get("auth_token")
        if not sid or not token:
            raise PermanentError(
                StatusReason.ACCOUNT_MISCONFIGURED, "twilio account needs account_sid, auth_token"
            )
        base_url = str(creds.get("base_url") or DEFAULT_BASE_URL)
        url = f"{base_url}/2010-04-01/Accounts/{sid}/Messages.json"
        try:
            response = http.post(
                url,
                data=self.form(creds, request),
                auth=(sid, token),
                timeout=SEND_TIMEOUT,
            )
        except http.TransportError as exc:
            raise RetryableError("transport_error", type(exc).__name__) from None
        if response.status_code < 300:
            body = _json(response)
            provider_id = body.get("sid")
            if not isinstance(provider_id, str) or not provider_id:
                raise RetryableError("bad_provider_response", "no sid in Twilio's answer")
            return SendResult(provider_message_id=provider_id)
        raise classify(response)

    @staticmethod
    def form(creds: dict[str, Any], request: SendRequest) -> list[tuple[str, str]]:
        """The Messages API fields, in order; ``MediaUrl`` repeats."""
        fields: list[tuple[str, str]] = [("To", request.to)]
        if creds.get("messaging_service_sid"):
            fields.append(("MessagingServiceSid", str(creds["messaging_service_sid"])))
        elif request.channel == "rcs" and not _CHANNEL_PREFIX.match(request.sender):
            fields.append(("From", f"rcs:{request.sender}"))
        else:
            fields.append(("From", request.sender))
        if request.body:
            fields.append(("Body", request.body))
        fields.extend(("MediaUrl", m["url"]) for m in request.media)
        fields.append(("StatusCallback", request.status_callback))
        return fields

    # -- webhooks
    def verify(
        self, account: ChannelAccount, secrets: Sequence[str], request: WebhookRequest
    ) -> None:
        signature = request.headers.get("x-twilio-signature")
        if not signature:
            raise SignatureError("missing X-Twilio-Signature")
        params = FormParams.parse(request.text())
        # The Auth Token signs; an active webhook secret holds the previous token while it rotates.
        tokens = [t for t in (self.credentials(account).get("auth_token"), *secrets) if t]
        for token in tokens:
            if RequestValidator(token).validate(request.url, params, signature):
                return
        raise SignatureError("X-Twilio-Signature does not match")

    def parse(self, account: ChannelAccount, request: WebhookRequest) -> ParsedWebhook:
        event = self._event(account, request.text())
        return ParsedWebhook(event, event.eventId)

    def parse_stored(self, account: ChannelAccount, payload: str) -> CanonicalEvent:
        return self._event(account, payload)

    def acknowledge(self, parsed: ParsedWebhook, new: bool) -> Acknowledgement:
        # An empty TwiML response: Twilio sends no reply of its own, duplicate or not.
        return Acknowledgement(EMPTY_TWIML, 200, "text/xml")

    def status_reason(self, error_code: str | None) -> StatusReason:
        return twilio_codes.reason_for(error_code)

    def fetch_status(
        self, account: ChannelAccount, provider_message_id: str
    ) -> CanonicalEvent | None:
        """GET the message by SID: its status now, as a status callback would have said it."""
        creds = self.credentials(account)
        sid, token = creds.get("account_sid"), creds.get("auth_token")
        if not sid or not token or not _SID.match(provider_message_id):
            return None
        base_url = str(creds.get("base_url") or DEFAULT_BASE_URL)
        url = f"{base_url}/2010-04-01/Accounts/{sid}/Messages/{provider_message_id}.json"
        try:
            response = http.get(url, auth=(sid, token), timeout=SEND_TIMEOUT)
        except http.TransportError as exc:
            raise RetryableError("transport_error", type(exc).__name__) from None
        if response.status_code >= 300:
            raise classify(response)
        body = _json(response)
        status = body.get("status")
        if not isinstance(status, str) or status not in twilio_codes.STATUSES:
            return None
        params = FormParams({"To": [str(body.get("to") or "")]})
        if body.get("error_code") is not None:
            params["ErrorCode"] = [str(body["error_code"])]
        return _status_event(params, provider_message_id, status)

    def _event(self, account: ChannelAccount, text: str) -> CanonicalEvent:
        params = FormParams.parse(text)
        sid = params.first("MessageSid") or params.first("SmsSid")
        if not sid or not _SID.match(sid):
            raise MalformedWebhook(
                "not a Twilio message callback",
                [
                    {
                        "field": "MessageSid",
                        "code": "invalid",
                        "message": "a message SID is required",
                    }
                ],
            )
        status = params.first("MessageStatus") or params.first("SmsStatus")
        try:
            if status and status not in ("received", "receiving"):
                return _status_event(params, sid, status)
            return _inbound_event(params, sid, account.sender)
        except ValidationError as exc:
            raise MalformedWebhook(
                "the callback does not make a canonical event", event_errors(exc)
            ) from None


def classify(response: http.Answer) -> ProviderError:
    """Turn a Twilio error answer into a typed error: throttled, retryable or permanent."""
    body = _json(response)
    raw = body.get("code")
    code = str(raw) if raw is not None else None
    detail = f"HTTP {response.status_code}" + (f" code {code}" if code else "")
    entry = twilio_codes.lookup(code)
    if response.status_code == 429 or (entry is not None and entry.kind == "throttled"):
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        return ThrottledError("throttled", wait, detail, code=code)
    if is_retryable_status(response.status_code) or (
        entry is not None and entry.kind == "retryable"
    ):
        return RetryableError("provider_unavailable", detail, code=code)
    if entry is None:
        return PermanentError(StatusReason.UNKNOWN, detail, code=code)
    return PermanentError(entry.reason, detail, channel_related=entry.channel_related, code=code)


def _json(response: http.Answer) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _address(value: str | None) -> tuple[str | None, str | None]:
    """(channel prefix, E.164 number) of a Twilio address such as ``rcs:+15551234567``."""
    if not value:
        return None, None
    prefix = None
    match = _CHANNEL_PREFIX.match(value)
    if match:
        prefix = match.group(1).lower()
        value = value[match.end() :]
    return prefix, value if _E164.match(value) else None


def _party(value: str | None) -> dict[str, str] | None:
    phone = _address(value)[1]
    return {"phone": phone} if phone else None


def _status_event(params: FormParams, sid: str, status: str) -> CanonicalEvent:
    canonical = twilio_codes.STATUSES.get(status)
    if canonical is None:
        raise MalformedWebhook(
            f"unknown Twilio status {status[:40]!r}",
            [{"field": "MessageStatus", "code": "unknown", "message": "not a Twilio status"}],
        )
    error_code = params.first("ErrorCode") or (
        twilio_codes.CANCELED_CODE if status == "canceled" else None
    )
    prefix = _address(params.first("To"))[0]
    return CanonicalEvent.model_validate(
        {
            "eventId": f"{sid}:{status}",
            "schemaVersion": 1,
            "channel": "rcs" if prefix == "rcs" else "sms",
            "direction": "status",
            "sender": _party(params.first("From")),
            "recipient": _party(params.first("To")),
            "status": canonical,
            "providerMessageId": sid,
            "errorCode": error_code[:40] if error_code else None,
            "timestamp": datetime.now(UTC),
            "metadata": {"providerStatus": status},
        }
    )


def _inbound_event(params: FormParams, sid: str, our_sender: str) -> CanonicalEvent:
    prefix, _ = _address(params.first("From"))
    try:
        count = min(int(params.first("NumMedia") or 0), MAX_MEDIA)
    except ValueError:
        count = 0
    attachments = [
        {
            "url": url,
            "contentType": params.first(f"MediaContentType{i}") or "application/octet-stream",
        }
        for i in range(count)
        if (url := params.first(f"MediaUrl{i}"))
    ]
    channel: Channel = "rcs" if prefix == "rcs" else ("mms" if attachments else "sms")
    metadata: dict[str, str] = {
        key: value
        for key, field in (
            ("buttonText", "ButtonText"),
            ("buttonPayload", "ButtonPayload"),
            ("buttonType", "ButtonType"),
            ("messagingServiceSid", "MessagingServiceSid"),
            ("numSegments", "NumSegments"),
        )
        if (value := params.first(field))
    }
    text = params.first("Body")
    if not text and "buttonText" in metadata:
        text = metadata["buttonText"]  # an RCS button tap carries its label as the reply
    return CanonicalEvent.model_validate(
        {
            "eventId": f"{sid}:received",
            "schemaVersion": 1,
            "channel": channel,
            "direction": "inbound",
            "sender": _party(params.first("From")),
            # An RCS reply is addressed to our agent id, not a number: it reached our sender.
            "recipient": _party(params.first("To")) or _party(our_sender),
            "message": {"text": text, "attachments": attachments},
            "providerMessageId": sid,
            "timestamp": datetime.now(UTC),
            "metadata": metadata,
        }
    )
