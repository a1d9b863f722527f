"""A local stand-in for Twilio's Messages API, speaking its documented shapes.

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form, HTTP basic
  auth) answers ``201`` with Twilio's message JSON (``sid`` ``SM…``,
  ``status: queued``), or Twilio's error JSON (``code``, ``message``,
  ``more_info``, ``status``).
- Status callbacks are form POSTs to the message's ``StatusCallback``, signed
  with ``X-Twilio-Signature`` (the twilio package's own signing code).
- On command: answer 429 with ``Retry-After``, 5xx or any Twilio error code;
  stall; send callbacks out of order or twice; post signed inbound messages.

Run it on its own with ``python -m scripts.fake_twilio`` (see ``--help``); drive
it over HTTP under ``/_fake/`` (rules, sent messages, inbound), or in-process
from tests through :class:`FakeTwilio`.

Without rules, the recipient's last four digits choose the outcome:
``0001`` error 21211 (invalid number), ``0002`` sent then undelivered (30003),
``0005`` accepted with no callback ever; anything else sent then delivered.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from twilio.request_validator import RequestValidator

API_PREFIX = "/2010-04-01/Accounts/"
MESSAGES = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    21211: "The 'To' number is not a valid phone number.",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To'",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable via SMS or MMS",
    21614: "'To' number is not a valid mobile number",
}


@dataclass
class Reply:
    """One scripted answer to a send: an HTTP status and, for errors, a Twilio code."""

    status: int = 201
    code: int | None = None
    retry_after: float | None = None
    stall: float = 0.0  # seconds to wait before answering

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reply:
        return cls(
            status=int(data.get("status", 201)),
            code=data.get("code"),
            retry_after=data.get("retry_after"),
            stall=float(data.get("stall", 0.0)),
        )


Callback = tuple[str, str | None]  # (MessageStatus, ErrorCode)


@dataclass
class Rule:
    """How sends to one number go: scripted replies first, then these callbacks."""

    replies: list[Reply] = field(default_factory=list)
    callbacks: list[Callback] | None = None
    duplicate: bool = False  # post every callback twice
    reverse: bool = False  # post the callbacks in reverse order
    poll_status: str | None = None  # what GET of the message says, whatever was posted

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rule:
        callbacks = data.get("callbacks")
        return cls(
            replies=[Reply.from_json(r) for r in data.get("replies", [])],
            callbacks=[(c[0], c[1]) for c in callbacks] if callbacks is not None else None,
            duplicate=bool(data.get("duplicate", False)),
            reverse=bool(data.get("reverse", False)),
            poll_status=data.get("poll_status"),
        )


@dataclass
class Sent:
    """A send request as the fake received it (accepted or not)."""

    at: float
    to: str
    sender: str | None
    messaging_service_sid: str | None
    body: str | None
    media: list[str]
    status_callback: str | None
    answered: int
    sid: str | None
    status: str = "queued"  # as GET of the message reports it
    error_code: str | None = None


def default_callbacks(to: str) -> list[Callback]:
    return {
        "0002": [("sent", None), ("undelivered", "30003")],
        "0005": [],
    }.get(to[-4:], [("sent", None), ("delivered", None)])


def sign(auth_token: str, url: str, params: dict[str, str]) -> str:
    return str(RequestValidator(auth_token).compute_signature(url, params))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Batches send many messages at once; the default backlog of 5 resets connections.
    request_queue_size = 256


class FakeTwilio:
    """The fake, runnable in a thread (tests) or as a process (``main``)."""

    def __init__(
        self,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "fake-auth-token",
        host: str = "127.0.0.1",
        port: int = 0,
        callback_delay: float = 0.05,
        send_callbacks: bool = True,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.callback_delay = callback_delay
        self.send_callbacks = send_callbacks
        self.rules: dict[str, Rule] = {}
        self.sent: list[Sent] = []
        self.callback_log: list[tuple[str, str, int]] = []  # (sid, status, our answer)
        self.stall_all = 0.0
        self.fetches: list[str] = []
        self.arrivals: list[tuple[float, str]] = []  # every send request, as it arrives
        self._lock = threading.Lock()
        self._server = _Server((host, port), _handler(self))
        self._thread: threading.Thread | None = None
        self._callback_threads: list[threading.Thread] = []

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeTwilio:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- commands
    def rule(self, to: str, rule: Rule) -> None:
        with self._lock:
            self.rules[to] = rule

    def sends_to(self, to: str) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.to == to]

    def wait_callbacks(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self._callback_threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def post_inbound(
        self,
        url: str,
        from_: str,
        to: str,
        body: str = "",
        media: list[tuple[str, str]] | None = None,
        extra: dict[str, str] | None = None,
        sid: str | None = None,
        signature: str | None = None,
    ) -> requests.Response:
        """POST a signed inbound message, as Twilio does to a number's messaging webhook."""
        media = media or []
        params = {
            "MessageSid": sid or new_sid("SM" if not media else "MM"),
            "AccountSid": self.account_sid,
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": str(len(media)),
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        params["SmsMessageSid"] = params["SmsSid"] = params["MessageSid"]
        for i, (media_url, content_type) in enumerate(media):
            params[f"MediaUrl{i}"] = media_url
            params[f"MediaContentType{i}"] = content_type
        params.update(extra or {})
        return self._post_signed(url, params, signature)

    def _post_signed(
        self, url: str, params: dict[str, str], signature: str | None = None
    ) -> requests.Response:
        headers = {"X-Twilio-Signature": signature or sign(self.auth_token, url, params)}
        return requests.post(url, data=params, headers=headers, timeout=10)

    # -- the Messages API
    def handle_send(
        self, sid_in_path: str, auth: str | None, form: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        def one(key: str) -> str | None:
            values = form.get(key)
            return values[0] if values else None

        to = one("To") or ""
        with self._lock:
            self.arrivals.append((time.time(), to))
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        with self._lock:
            rule = self.rules.get(to) or Rule()
            reply = rule.replies.pop(0) if rule.replies else None
            stall = max(self.stall_all, reply.stall if reply else 0.0)
        if stall:
            time.sleep(stall)
        record = Sent(
            at=time.time(),
            to=to,
            sender=one("From"),
            messaging_service_sid=one("MessagingServiceSid"),
            body=one("Body"),
            media=form.get("MediaUrl", []),
            status_callback=one("StatusCallback"),
            answered=0,
            sid=None,
        )
        status, body, headers = self._answer(sid_in_path, auth, expected, to, reply, record)
        record.answered = status
        if rule.poll_status is not None:
            record.status = rule.poll_status
        with self._lock:
            self.sent.append(record)
        if status == 201 and record.status_callback and self.send_callbacks:
            plan = rule.callbacks if rule.callbacks is not None else default_callbacks(to)
            if rule.reverse:
                plan = list(reversed(plan))
            if rule.duplicate:
                plan = [c for c in plan for _ in (0, 1)]
            thread = threading.Thread(target=self._callbacks, args=(record, plan), daemon=True)
            self._callback_threads.append(thread)
            thread.start()
        return status, body, headers

    def handle_fetch(
        self, sid_in_path: str, auth: str | None, message_sid: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """GET a message by SID, as the Messages API answers it."""
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        if sid_in_path != self.account_sid or auth != expected:
            return error(401, 20003)
        with self._lock:
            found = next((s for s in self.sent if s.sid == message_sid), None)
            self.fetches.append(message_sid)
        if found is None:
            return error(404, 20404)
        return 200, message_json(self.account_sid, found), {}

    def _answer(
        self,
        sid_in_path: str,
        auth: str | None,
        expected: str,
        to: str,
        reply: Reply | None,
        record: Sent,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if sid_in_path != self.account_sid or auth != expected:
            return error(401, 20003)
        if reply is not None and reply.status >= 300:
            headers: dict[str, str] = {}
            if reply.retry_after is not None:
                headers["Retry-After"] = str(int(reply.retry_after))
            code = reply.code or (20429 if reply.status == 429 else 20500)
            status, body, _ = error(reply.status, code)
            return status, body, headers
        if reply is None and to[-4:] == "0001":
            return error(400, 21211)
        if not to:
            return error(400, 21604)
        record.sid = new_sid("SM" if not record.media else "MM")
        return 201, message_json(self.account_sid, record), {}

    def _callbacks(self, record: Sent, plan: list[Callback]) -> None:
        assert record.status_callback and record.sid
        for status, error_code in plan:
            time.sleep(self.callback_delay)
            params = {
                "MessageSid": record.sid,
                "SmsSid": record.sid,
                "AccountSid": self.account_sid,
                "From": record.sender or "",
                "To": record.to,
                "MessageStatus": status,
                "SmsStatus": status,
                "ApiVersion": "2010-04-01",
            }
            if error_code:
                params["ErrorCode"] = error_code
            with self._lock:
                record.status, record.error_code = status, error_code
            try:
                answered = self._post_signed(record.status_callback, params).status_code
            except requests.RequestException:
                answered = 0
            with self._lock:
                self.callback_log.append((record.sid, status, answered))


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def error(status: int, code: int) -> tuple[int, dict[str, Any], dict[str, str]]:
    return (
        status,
        {
            "code": code,
            "message": MESSAGES.get(code, "Error"),
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        {},
    )


def message_json(account_sid: str, record: Sent) -> dict[str, Any]:
    now = formatdate(usegmt=True)
    return {
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": record.body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": int(record.error_code) if record.error_code else None,
        "error_message": None,
        "from": record.sender,
        "messaging_service_sid": record.messaging_service_sid,
        "num_media": str(len(record.media)),
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": record.sid,
        "status": record.status,
        "subresource_uris": {
            "media": f"/2010-04-01/Accounts/{account_sid}/Messages/{record.sid}/Media.json"
        },
        "to": record.to,
        "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{record.sid}.json",
    }


def _handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (about 40 ms) on a kept-alive connection.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests read the fake's records instead

        def _read(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            raw = self._read()
            if path.startswith(API_PREFIX) and path.endswith("/Messages.json"):
                sid = path[len(API_PREFIX) : -len("/Messages.json")]
                form: dict[str, list[str]] = {}
                for key, value in parse_qsl(raw.decode(), keep_blank_values=True):
                    form.setdefault(key, []).append(value)
                self._send(*fake.handle_send(sid, self.headers.get("Authorization"), form))
            elif path == "/_fake/rules":
                data = json.loads(raw or b"{}")
                fake.rule(data["to"], Rule.from_json(data))
                self._send(200, {"ok": True})
            elif path == "/_fake/stall":
                fake.stall_all = float(json.loads(raw or b"{}").get("seconds", 0))
                self._send(200, {"ok": True})
            elif path == "/_fake/inbound":
                data = json.loads(raw or b"{}")
                response = fake.post_inbound(
                    data["url"],
                    data["from"],
                    data["to"],
                    data.get("body", ""),
                    [(m[0], m[1]) for m in data.get("media", [])],
                    data.get("extra"),
                )
                self._send(200, {"answered": response.status_code, "body": response.text})
            else:
                self._send(404, error(404, 20404)[1])

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path.startswith(API_PREFIX) and "/Messages/" in path and path.endswith(".json"):
                account, _, rest = path[len(API_PREFIX) :].partition("/Messages/")
                auth = self.headers.get("Authorization")
                self._send(*fake.handle_fetch(account, auth, rest[: -len(".json")]))
            elif path == "/_fake/messages":
                with fake._lock:
                    sent = [s.__dict__ for s in fake.sent]
                self._send(200, {"messages": sent, "callbacks": fake.callback_log})
            else:
                self._send(404, error(404, 20404)[1])

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=4010)
    parser.add_argument("--account-sid", default="AC" + "0" * 32)
    parser.add_argument("--auth-token", default="fake-auth-token")
    parser.add_argument("--callback-delay", type=float, default=0.5)
    args = parser.parse_args()
    fake = FakeTwilio(
        args.account_sid, args.auth_token, port=args.port, callback_delay=args.callback_delay
    )
    print(f"fake Twilio on {fake.base_url} (account {args.account_sid}); Ctrl-C stops it")
    with contextlib.suppress(KeyboardInterrupt):
        fake._server.serve_forever()


if __name__ == "__main__":
    main()
