"""A small closed-loop HTTP load generator (asyncio + aiohttp).

A fixed number of workers each send one request, wait for the whole answer,
and send the next, until a deadline or a total request count is reached.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


# Builds the n-th request of a run (n counts from 0 across warm-up and measurement).
RequestFactory = Callable[[int], HttpRequest]

MAX_ERROR_SAMPLES = 5


@dataclass
class PhaseStats:
    """What one load phase measured; latencies are in milliseconds."""

    elapsed: float = 0.0
    cpu_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.ok + self.errors

    @property
    def rps(self) -> float:
        """Successful (2xx) requests per second."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.total if self.total else 1.0

    @property
    def loadgen_cpu_percent(self) -> float:
        """CPU the load generator itself used, as a percentage of one core."""
        return 100.0 * self.cpu_seconds / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, pct: float) -> float:
        return percentile(sorted(self.latencies_ms), pct)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "requests": self.total,
            "ok": self.ok,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 5),
            "elapsed_s": round(self.elapsed, 3),
            "rps": round(self.rps, 1),
            "latency_ms": {
                "p50": round(percentile(ordered, 50), 2),
                "p95": round(percentile(ordered, 95), 2),
                "p99": round(percentile(ordered, 99), 2),
                "max": round(ordered[-1], 2) if ordered else math.nan,
            },
            "statuses": dict(sorted(self.statuses.items())),
            "error_samples": self.error_samples,
            "loadgen_cpu_percent": round(self.loadgen_cpu_percent, 1),
        }


def percentile(ordered: list[float], pct: float) -> float:
    """Linear-interpolated percentile of an already sorted list (NaN when empty)."""
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def _run_phase(
    session: aiohttp.ClientSession,
    base_url: str,
    factory: RequestFactory,
    sequence: itertools.count[int],
    concurrency: int,
    duration: float | None,
    max_requests: int | None,
) -> PhaseStats:
    stats = PhaseStats()
    issued = itertools.count()
    start = time.perf_counter()
    deadline = start + duration if duration is not None else math.inf

    async def worker() -> None:
        while time.perf_counter() < deadline:
            if max_requests is not None and next(issued) >= max_requests:
                return
            req = factory(next(sequence))
            sent = time.perf_counter()
            try:
                async with session.request(
                    req.method, base_url + req.path, data=req.body, headers=req.headers
                ) as resp:
                    text = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                stats.latencies_ms.append((time.perf_counter() - sent) * 1000.0)
                stats.errors += 1
                stats.statuses[type(exc).__name__] += 1
                if len(stats.error_samples) < MAX_ERROR_SAMPLES:
                    stats.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            stats.latencies_ms.append((time.perf_counter() - sent) * 1000.0)
            stats.statuses[str(status)] += 1
            if 200 <= status < 300:
                stats.ok += 1
            else:
                stats.errors += 1
                if len(stats.error_samples) < MAX_ERROR_SAMPLES:
                    sample = text[:300].decode("utf-8", "replace")
                    stats.error_samples.append(f"HTTP {status}: {sample}")

    cpu_start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    stats.elapsed = time.perf_counter() - start
    stats.cpu_seconds = time.process_time() - cpu_start
    return stats


@dataclass(frozen=True)
class LoadResult:
    warmup: PhaseStats
    measured: PhaseStats


async def run_load(
    base_url: str,
    factory: RequestFactory,
    *,
    concurrency: int,
    warmup: float,
    duration: float | None,
    max_requests: int | None = None,
    timeout: float = 30.0,
) -> LoadResult:
    """Warm up for ``warmup`` seconds (reported apart), then measure one phase.

    The measured phase ends at ``duration`` seconds or after ``max_requests``
    requests, whichever comes first; requests in flight at the deadline finish
    and count. Keep-alive connections from the warm-up are reused.
    """
    if duration is None and max_requests is None:
        raise ValueError("give a duration or a request count")
    connector = aiohttp.TCPConnector(limit=concurrency)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    sequence = itertools.count()
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        warm = PhaseStats()
        if warmup > 0:
            warm = await _run_phase(session, base_url, factory, sequence, concurrency, warmup, None)
        measured = await _run_phase(
            session, base_url, factory, sequence, concurrency, duration, max_requests
        )
    return LoadResult(warm, measured)
