"""A small thread-safe cache whose entries live a fixed number of seconds.

Used on the request path for lookups that change rarely and may be seen late
by a few seconds (an API key and its tenant): a revoked key stops working
within the TTL, in every process, without any signal between them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """``get(key, load)``: the cached value while fresh, else ``load()`` (cached when not None).

    A ``None`` from ``load`` is not cached, so a key created a moment ago works at once.
    ``ttl`` 0 turns the cache off. At most ``maxsize`` entries; the oldest go first.
    """

    def __init__(
        self, ttl: float, maxsize: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.maxsize = maxsize
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, load: Callable[[], V | None]) -> V | None:
        if self.ttl <= 0:
            return load()
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        if value is not None:
            with self._lock:
                self._entries.pop(key, None)
                self._entries[key] = (now + self.ttl, value)
                while len(self._entries) > self.maxsize:
                    del self._entries[next(iter(self._entries))]
        return value

    def forget(self, key: K) -> None:
        """Drop one entry: the next ``get`` loads it afresh."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
