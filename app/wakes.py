"""Coalesced wake-ups for the drains: at most one wake waits in the broker per queue.

Receipts arrive faster than a task per receipt could carry them (a Celery task costs about
as much as applying twenty receipts in a batch). So a webhook's commit publishes a wake
only when none is waiting: ``should_publish`` sets a short-lived flag in Redis (``SET NX``),
and the drain clears it (``clear``) as it starts, before it claims anything.

Why nothing is missed: a row committed while the flag is set has a wake waiting that has
not started yet; that drain clears the flag first and claims afterwards, so it sees the
row. A row committed after the clear finds no flag and publishes. The flag expires after
``ttl`` seconds, so a wake lost with the broker costs at most that, and beat's sweep
re-wakes any drain whose work waits too long. Without Redis every wake is published.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

# Tasks whose wakes coalesce: each one drains every due row, not only its own.
COALESCED = frozenset({"process_inbox_item"})


class Wakes:
    def __init__(self, client: Any | None, prefix: str = "", ttl: float = 2.0) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = int(ttl * 1000)

    def _key(self, task_name: str, queue: str) -> str:
        return f"{self.prefix}switchboard:wake:{queue}:{task_name}"

    def should_publish(self, task_name: str, queue: str) -> bool:
        """True when this wake must be published: it coalesces with none waiting."""
        if self.client is None or task_name not in COALESCED:
            return True
        try:
            return bool(self.client.set(self._key(task_name, queue), 1, nx=True, px=self.ttl_ms))
        except Exception as exc:  # Redis away: publish, as without coalescing
            log.warning("wake flag unavailable", extra={"error": type(exc).__name__})
            return True

    def clear(self, task_name: str, queue: str) -> None:
        """A drain starts: the next commit must wake another."""
        if self.client is None:
            return
        try:
            self.client.delete(self._key(task_name, queue))
        except Exception as exc:  # the flag expires by itself
            log.warning("wake flag not cleared", extra={"error": type(exc).__name__})


def make_wakes(redis_url: str | None, prefix: str | None) -> Wakes:
    if not redis_url:
        return Wakes(None)
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    return Wakes(client, prefix or "")
