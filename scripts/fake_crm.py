"""What the fake CRMs share: a threaded JSON HTTP server with switchable failure modes.

``mode`` is one of:
- ``ok``;
- ``throttle``: HubSpot answers 429 with its rate-limit headers, Salesforce 403
  ``REQUEST_LIMIT_EXCEEDED`` (both honour ``retry_after``);
- ``error``: 503;
- ``down``: the connection is closed without an answer, as a CRM that is gone.

``latency`` delays every answer (the benchmark's 100 ms CRM). Each fake also enforces
its CRM's published limits (``admit``) and states them on every answer
(``limit_headers``). A mode is switched in-process or over HTTP: ``POST /_fake/mode``
with ``{"mode": ..., "latency": ...}``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

MODES = ("ok", "throttle", "error", "down")
Answer = tuple[int, Any, dict[str, str]]


class FakeCrm:
    """Subclasses route requests in ``handle`` and say how they throttle in ``throttled``."""

    token = "fake-crm-token"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.mode = "ok"
        self.latency = 0.0
        self.retry_after = 1.0
        self.requests: list[tuple[str, str]] = []  # (method, path) of every call that came in
        self.refused = 0  # calls refused by the limits (429, REQUEST_LIMIT_EXCEEDED)
        self.lock = threading.Lock()
        self._server = _Server((host, port), _handler(self))

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def set_mode(self, mode: str, retry_after: float | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        with self.lock:
            self.mode = mode
            if retry_after is not None:
                self.retry_after = retry_after

    def handle(self, method: str, path: str, body: Any) -> Answer:
        raise NotImplementedError

    def admit(self, method: str, path: str, body: Any) -> Answer | None:
        """The CRM's limits: None lets the call in (and counts it); else the refusal."""
        return None

    def limit_headers(self, path: str) -> dict[str, str]:
        """What every answer says of the limits."""
        return {}

    def throttled(self) -> Answer:
        raise NotImplementedError

    def unauthorized_body(self) -> Any:
        return {"message": "Unauthorized"}

    def state(self) -> dict[str, Any]:
        """Everything the fake holds (``GET /_fake/state``)."""
        raise NotImplementedError

    def authorized(self, header: str) -> bool:
        return header == f"Bearer {self.token}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A CRM takes many connections at once; the default backlog of 5 refuses them.
    request_queue_size = 256


def _handler(fake: FakeCrm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path.startswith("/_fake/"):
                self._control(method, raw)
                return
            with fake.lock:
                mode = fake.mode
                fake.requests.append((method, self.path))
            if fake.latency:
                time.sleep(fake.latency)
            if mode == "down":
                self.close_connection = True
                self.connection.close()
                return
            if mode == "error":
                self._answer((503, {"message": "Service Unavailable"}, {}))
                return
            if mode == "throttle":
                self._answer(fake.throttled())
                return
            if not fake.authorized(self.headers.get("Authorization", "")):
                self._answer((401, fake.unauthorized_body(), {}))
                return
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._answer((400, {"message": "malformed JSON"}, {}))
                return
            refused = fake.admit(method, self.path, body)
            if refused is not None:
                with fake.lock:
                    fake.refused += 1
                self._answer(refused)
                return
            status, answer, headers = fake.handle(method, self.path, body)
            self._answer((status, answer, {**fake.limit_headers(self.path), **headers}))

        def _control(self, method: str, raw: bytes) -> None:
            if method == "POST" and self.path == "/_fake/mode":
                data = json.loads(raw or b"{}")
                fake.set_mode(str(data.get("mode", "ok")), data.get("retry_after"))
                fake.latency = float(data.get("latency", fake.latency))
                self._answer((200, {"mode": fake.mode, "latency": fake.latency}, {}))
                return
            if method == "GET" and self.path == "/_fake/state":
                self._answer((200, fake.state(), {}))
                return
            self._answer((404, {"message": "unknown control"}, {}))

        def _answer(self, answer: Answer) -> None:
            status, body, headers = answer
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

    return Handler


def serve(fake: FakeCrm, what: str) -> None:
    """Run ``fake`` in the foreground (``python -m scripts.fake_hubspot``, say)."""
    fake.start()
    print(f"fake {what} on {fake.base_url} (token {fake.token}); POST /_fake/mode to switch")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
