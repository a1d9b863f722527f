"""The fake Twilio speaks Twilio's dialect: checked once against the vendor's own client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from scripts.fake_twilio import FakeTwilio, Reply, Rule


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    """A fake Twilio on a free port."""
    server = FakeTwilio(callback_delay=0).start()
    yield server
    server.stop()


def client_for(fake: FakeTwilio, token: str | None = None) -> Client:
    client = Client(fake.account_sid, token or fake.auth_token)
    client.api.base_url = fake.base_url  # the SDK's own request and response handling
    return client


def test_twilios_client_sends_and_reads_the_fakes_answer(fake: FakeTwilio) -> None:
    message = client_for(fake).messages.create(
        to="+12025550100",
        from_="+12025550199",
        body="hello",
        media_url=["https://x.example/a.png", "https://x.example/b.png"],
    )
    assert message.sid is not None and message.sid.startswith("MM") and len(message.sid) == 34
    assert (message.status, message.to, message.body) == ("queued", "+12025550100", "hello")
    assert message.num_media == "2" and message.direction == "outbound-api"
    assert fake.sent[0].media == ["https://x.example/a.png", "https://x.example/b.png"]


@pytest.mark.parametrize(
    ("reply", "code", "status"),
    [(Reply(400, code=21211), 21211, 400), (Reply(429, retry_after=3), 20429, 429)],
)
def test_twilios_client_reads_the_fakes_errors(
    fake: FakeTwilio, reply: Reply, code: int, status: int
) -> None:
    fake.rule("+12025550100", Rule(replies=[reply]))
    with pytest.raises(TwilioRestException) as raised:
        client_for(fake).messages.create(to="+12025550100", from_="+12025550199", body="x")
    assert (raised.value.code, raised.value.status) == (code, status)


def test_bad_credentials_are_twilios_20003(fake: FakeTwilio) -> None:
    with pytest.raises(TwilioRestException) as raised:
        client_for(fake, token="wrong").messages.create(to="+12025550100", from_="+1", body="x")
    assert (raised.value.code, raised.value.status) == (20003, 401)


def test_its_callbacks_verify_with_twilios_request_validator(fake: FakeTwilio) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread
    from urllib.parse import parse_qsl

    seen: list[bool] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            url = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
            validator = RequestValidator(fake.auth_token)
            seen.append(
                validator.validate(url, dict(parse_qsl(body)), self.headers["X-Twilio-Signature"])
            )
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        callback = f"http://127.0.0.1:{server.server_address[1]}/cb?x=1"
        client_for(fake).messages.create(
            to="+12025550100", from_="+12025550199", body="x", status_callback=callback
        )
        fake.wait_callbacks()
        fake.post_inbound(callback, from_="+12025550100", to="+12025550199", body="hi")
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [True, True, True]  # sent, delivered, and the inbound message


def test_it_runs_on_its_own_and_takes_commands_over_http(fake: FakeTwilio) -> None:
    r = requests.post(
        f"{fake.base_url}/_fake/rules",
        json={"to": "+12025550100", "replies": [{"status": 503}], "callbacks": [["sent", None]]},
        timeout=5,
    )
    assert r.status_code == 200
    with pytest.raises(TwilioRestException):
        client_for(fake).messages.create(to="+12025550100", from_="+1", body="x")
    listed = requests.get(f"{fake.base_url}/_fake/messages", timeout=5).json()
    assert [m["answered"] for m in listed["messages"]] == [503]
