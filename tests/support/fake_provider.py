"""A stand-in for a ``standard`` provider: checks our signed requests, answers from a script."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app.providers.signing import SignatureError, verify


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeProvider:
    secret: str
    url: str = ""
    script: list[Answer] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    envelopes: list[str] = field(default_factory=list)  # the webhook-id of each CRM batch
    bad_signatures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> Answer:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        return Answer(202, {"providerMessageId": f"STD{len(self.received)}"})


@contextmanager
def fake_provider(secret: str) -> Iterator[FakeProvider]:
    fake = FakeProvider(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                verify(raw, headers, [fake.secret])
            except SignatureError:
                fake.bad_signatures += 1
                self._reply(Answer(401, {"errorCode": "bad_signature"}))
                return
            body = json.loads(raw)
            if body.get("type") == "crm.batch":  # a CRM webhook's envelope: each event in it
                fake.envelopes.append(headers.get("webhook-id", ""))
                fake.received.extend(body["data"]["events"])
            else:
                fake.received.append(body)
            self._reply(fake.next_answer())

        def _reply(self, answer: Answer) -> None:
            data = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data.encode())

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
