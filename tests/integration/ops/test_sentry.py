"""Sentry against a local stand-in for its ingest endpoint: events arrive, PII does not."""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.backends import ROOT, Backend

PHONE = "+12025550187"
BODY = "the secret body text"

SCRIPT = f"""
from flask import request
from sqlalchemy import text
from app import create_app
from app.api.session import get_db
import logging, sentry_sdk

app = create_app()

@app.post("/boom")
def boom():
    payload = request.get_json()
    to, body = payload["to"], payload["body"]
    logging.getLogger("switchboard.test").error("send failed", extra={{"to": to, "body": body}})
    raise RuntimeError(f"provider refused {{to}}")

@app.post("/db-boom")
def db_boom():
    payload = request.get_json()
    with get_db().engine.connect() as conn:
        # A NOT NULL violation on Postgres and SQLite alike; its message quotes the parameters.
        query = text("INSERT INTO tenants (id, name) VALUES (:b, NULL)")
        conn.execute(query, {{"b": payload["body"]}})

client = app.test_client()
for path in ("/boom", "/db-boom"):
    response = client.post(path, json={{"to": {PHONE!r}, "body": {BODY!r}}})
    assert response.status_code == 500, response.status_code
sentry_sdk.flush(timeout=10)
"""


class Ingest(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        elif encoding == "br":
            pytest.fail("brotli envelope: install brotli or disable compression in the test")
        Ingest.received.append(raw)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def ingest() -> Iterator[str]:
    """A local HTTP server that accepts Sentry envelopes; yields a DSN pointing at it."""
    Ingest.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://publickey@127.0.0.1:{server.server_address[1]}/1"
    finally:
        server.shutdown()


def test_errors_reach_sentry_without_phone_numbers_or_bodies(backend: Backend, ingest: str) -> None:
    env = {**backend.process_env(), "SENTRY_DSN": ingest, "SENTRY_ENVIRONMENT": "test"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    payload = b"\n".join(Ingest.received).decode(errors="replace")
    assert "RuntimeError" in payload, "the unhandled error must be reported"
    assert "send failed" in payload, "error logs must be reported"
    assert "IntegrityError" in payload, "database errors must be reported"
    assert PHONE not in payload and PHONE[1:] not in payload
    assert BODY not in payload
