"""Coalesced wake-ups for the drains: at most one wake per key waits in the broker.

Work arrives faster than a task per item could carry it (a Celery task costs about as
much as dispatching ten messages, or applying twenty receipts, in a batch). So a commit
owes its drain a wake through the outbox with a key (the inbox; a lane and a tenant),
and the wake is published only when none with that key is waiting: ``to_publish`` sets
a short-lived flag in Redis (``SET NX``, a batch's keys in one pipeline), and the woken
drain clears it (``clear``) before it claims anything.

Why nothing is missed: an item committed while the flag is set has a wake waiting that
has not started yet; that drain clears the flag first and claims afterwards, so it sees
the item (a drain runs until a batch comes back short, or hands on to another). An item
committed after the clear finds no flag and publishes. The flag expires after ``ttl``
seconds, so a wake lost with the broker costs at most that, and beat's sweep wakes any
drain whose work waits too long. Without Redis every wake is published. The flags share
the rate limiter's Redis client (``create_app``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

INBOX = "inbox"


class Wakes:
    def __init__(self, client: Any | None, prefix: str = "", ttl: float = 2.0) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = int(ttl * 1000)

    def _key(self, queue: str, key: str) -> str:
        return f"{self.prefix}switchboard:wake:{queue}:{key}"

    def should_publish(self, queue: str, key: str | None) -> bool:
        """True when this wake must be published: none with its key is waiting."""
        return key is None or (queue, key) in self.to_publish([(queue, key)])

    def to_publish(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (queue, key) pairs whose wake must be published, their flags set in one
        round trip (the outbox publishes a batch's wakes so)."""
        if self.client is None or not keys:
            return set(keys)
        try:
            pipe = self.client.pipeline(transaction=False)
            for queue, key in keys:
                pipe.set(self._key(queue, key), 1, nx=True, px=self.ttl_ms)
            answers = pipe.execute()
        except Exception as exc:  # Redis away: publish, as without coalescing
            log.warning("wake flags unavailable", extra={"error": type(exc).__name__})
            return set(keys)
        return {pair for pair, answer in zip(keys, answers, strict=True) if answer}

    def clear(self, queue: str, key: str) -> None:
        """A drain starts: the next commit with this key must wake another."""
        if self.client is None:
            return
        try:
            self.client.delete(self._key(queue, key))
        except Exception as exc:  # the flag expires by itself
            log.warning("wake flag not cleared", extra={"error": type(exc).__name__})
