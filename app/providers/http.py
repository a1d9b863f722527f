"""The HTTP client provider calls share: one pool per process, its connections kept alive.

A batch sends many messages to one provider at once. A new connection per call (what a
bare ``requests.post`` does) costs a TCP handshake (and a TLS one) each time, and the
``requests`` layer itself cost more CPU per call than the rest of a dispatch (measured by
``scripts/bench/dispatch.py`` with py-spy). So calls go straight through ``urllib3``
(which ``requests`` is built on), with up to ``POOL_SIZE`` kept-alive connections per host.
No retries here: the backoff lives in the database. A forked child builds its own pool.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import urllib3
from urllib3.exceptions import HTTPError

POOL_SIZE = 128
Timeout = float | tuple[float, float]  # seconds, or (connect, read)


class TransportError(Exception):
    """The call did not get an answer: refused, reset, timed out, or unreadable."""


class Answer(Protocol):
    """What the providers read of an HTTP answer (``requests.Response`` has it too)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def json(self) -> Any: ...


@dataclass(frozen=True)
class Response:
    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


_lock = threading.Lock()
_pools: dict[int, urllib3.PoolManager] = {}


def _pool() -> urllib3.PoolManager:
    pid = os.getpid()
    pool = _pools.get(pid)
    if pool is None:
        with _lock:
            _pools.clear()  # a forked child: the parent's sockets are not ours
            pool = _pools[pid] = urllib3.PoolManager(
                num_pools=32, maxsize=POOL_SIZE, block=False, retries=False
            )
    return pool


def request(
    method: str,
    url: str,
    *,
    timeout: Timeout,
    data: str | bytes | Sequence[tuple[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> Response:
    """One call; a TransportError when no answer came back."""
    sent = dict(headers or {})
    body: bytes | None
    if data is None:
        body = None
    elif isinstance(data, bytes):
        body = data
    elif isinstance(data, str):
        body = data.encode()
    else:
        body = urlencode(list(data)).encode()
        sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        sent["Authorization"] = f"Basic {token}"
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    try:
        answer = _pool().request(
            method,
            url,
            body=body,
            headers=sent,
            timeout=urllib3.Timeout(connect=connect, read=read),
            redirect=False,
        )
    except HTTPError as exc:
        raise TransportError(type(exc).__name__) from None
    return Response(answer.status, answer.headers, answer.data)


def post(url: str, *, timeout: Timeout, **kwargs: Any) -> Response:
    return request("POST", url, timeout=timeout, **kwargs)


def get(url: str, *, timeout: Timeout, **kwargs: Any) -> Response:
    return request("GET", url, timeout=timeout, **kwargs)
