"""The HTTP session provider calls share: one per process, its connections kept alive.

A batch sends many messages to one provider at once. A new connection per call (what a
bare ``requests.post`` does) costs a TCP handshake (and a TLS one) each time; the pool
keeps up to ``POOL_SIZE`` connections per host alive and reuses them. No retries here:
the backoff lives in the database. A forked child builds its own session.
"""

from __future__ import annotations

import os
import threading

import requests
from requests.adapters import HTTPAdapter

POOL_SIZE = 128

_lock = threading.Lock()
_state: dict[str, object] = {}


def session() -> requests.Session:
    with _lock:
        if _state.get("pid") != os.getpid():
            pooled = requests.Session()
            adapter = HTTPAdapter(pool_connections=16, pool_maxsize=POOL_SIZE, max_retries=0)
            pooled.mount("http://", adapter)
            pooled.mount("https://", adapter)
            _state.update(pid=os.getpid(), session=pooled)
        found = _state["session"]
        assert isinstance(found, requests.Session)
        return found
