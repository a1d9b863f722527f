"""Token buckets: per channel account (in SMS segments) and per tenant (API requests).

The algorithm is GCRA, the token bucket kept as one number: the bucket's
theoretical arrival time (TAT). A request costing ``cost`` conforms when
``TAT + cost/rate - burst/rate <= now``. With ``reserve`` a request that does
not conform still takes its place in line and learns how long to wait, so a
backlog drains at exactly the rate with no herd of retries; without it, the
bucket is left alone and the caller is told when to come back.

Where Redis is configured the bucket lives there, updated by one atomic Lua
script on Redis's own clock. Without Redis (the embedded default) it is a row
in ``rate_buckets``, locked in the caller's transaction. A limiter that cannot
reach its store lets the request through and logs it: a provider's own 429 is
still handled as a throttle.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.infra.db import insert_ignore
from app.models import RateBucket

log = logging.getLogger(__name__)


EPSILON = 1e-6


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: float

    @classmethod
    def of(cls, per_second: float | None, burst: float | None) -> Rate | None:
        if not per_second or per_second <= 0:
            return None
        return cls(per_second, max(1.0, burst if burst and burst > 0 else per_second))


def gcra(
    tat: float | None, now: float, rate: Rate, cost: float, reserve: bool
) -> tuple[float, float]:
    """(the bucket's new TAT, seconds to wait). Pure: both stores run exactly this."""
    interval = 1.0 / rate.per_second
    start = max(tat if tat is not None else now, now)
    new_tat = start + cost * interval
    wait = new_tat - rate.burst * interval - now
    if wait <= EPSILON:  # a microsecond early is on time: float sums drift
        wait = 0.0
    if wait > 0 and not reserve:
        return start, wait
    return new_tat, wait


class RateLimiter(Protocol):
    def acquire(
        self, session: Session, key: str, rate: Rate, cost: float, *, reserve: bool
    ) -> float:
        """Take ``cost`` from bucket ``key``; the seconds to wait first (0: go now)."""
        ...

    def acquire_many(
        self, session: Session, key: str, rate: Rate, costs: Sequence[float]
    ) -> list[float]:
        """Reserve one slot per cost, in order, in one round trip; each one's wait."""
        ...

    def peek(self, session: Session, key: str, rate: Rate) -> float:
        """How many units bucket ``key`` would give now, taking none (for reports)."""
        ...


def available(tat: float | None, now: float, rate: Rate) -> float:
    """Units a GCRA bucket gives at ``now``: its burst, less what is still owed."""
    owed = max(0.0, (tat or now) - now) * rate.per_second
    return max(0.0, rate.burst - owed)


def database_now(session: Session) -> float:
    """The database's clock in epoch seconds: one clock for every process, as Redis's TIME is."""
    if session.get_bind().dialect.name == "postgresql":
        query = "SELECT extract(epoch FROM clock_timestamp())"
    else:
        query = "SELECT (julianday('now') - 2440587.5) * 86400.0"
    return float(session.execute(text(query)).scalar_one())


class DatabaseLimiter:
    """Buckets as rows, locked in the caller's transaction (SQLite serializes it anyway)."""

    def acquire(
        self, session: Session, key: str, rate: Rate, cost: float, *, reserve: bool
    ) -> float:
        now = database_now(session)
        insert_ignore(session, RateBucket.__table__, {"key": key, "tat": now}, ["key"])
        bucket = session.scalar(select(RateBucket).where(RateBucket.key == key).with_for_update())
        assert bucket is not None
        bucket.tat, wait = gcra(bucket.tat, now, rate, cost, reserve)
        return wait

    def acquire_many(
        self, session: Session, key: str, rate: Rate, costs: Sequence[float]
    ) -> list[float]:
        now = database_now(session)
        insert_ignore(session, RateBucket.__table__, {"key": key, "tat": now}, ["key"])
        bucket = session.scalar(select(RateBucket).where(RateBucket.key == key).with_for_update())
        assert bucket is not None
        waits = []
        tat = bucket.tat
        for cost in costs:
            tat, wait = gcra(tat, now, rate, cost, True)
            waits.append(wait)
        bucket.tat = tat
        return waits

    def peek(self, session: Session, key: str, rate: Rate) -> float:
        now = database_now(session)
        tat = session.scalar(select(RateBucket.tat).where(RateBucket.key == key))
        return available(tat, now, rate)


# KEYS[1] the bucket; ARGV: interval (s), burst, cost, reserve (1/0). Returns the wait as text
# (Lua numbers come back from Redis as integers otherwise).
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + cost * interval
local wait = new_tat - burst * interval - now
if wait <= 0.000001 then wait = 0 end
if wait > 0 and ARGV[4] ~= '1' then return tostring(wait) end
redis.call('SET', KEYS[1], tostring(new_tat), 'EX', math.ceil(new_tat - now) + 60)
return tostring(wait)
"""


# The same, reserving one slot per ARGV[3..] cost in order; returns each wait as text.
_GCRA_MANY_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local waits = {}
for i = 3, #ARGV do
  tat = tat + tonumber(ARGV[i]) * interval
  local wait = tat - burst * interval - now
  if wait <= 0.000001 then wait = 0 end
  waits[#waits + 1] = tostring(wait)
end
redis.call('SET', KEYS[1], tostring(tat), 'EX', math.ceil(tat - now) + 60)
return waits
"""


class RedisLimiter:
    """Buckets in Redis, one atomic script per request, on Redis's clock (shared by all hosts)."""

    def __init__(self, client: Any, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self.script = client.register_script(_GCRA_LUA)
        self.many = client.register_script(_GCRA_MANY_LUA)

    def acquire(
        self, session: Session, key: str, rate: Rate, cost: float, *, reserve: bool
    ) -> float:
        args = [1.0 / rate.per_second, rate.burst, cost, 1 if reserve else 0]
        try:
            return float(self.script(keys=[f"{self.prefix}switchboard:rate:{key}"], args=args))
        except Exception as exc:  # Redis down: do not turn a limiter outage into an API outage
            log.warning(
                "rate limiter unavailable; letting through", extra={"error": type(exc).__name__}
            )
            return 0.0

    def acquire_many(
        self, session: Session, key: str, rate: Rate, costs: Sequence[float]
    ) -> list[float]:
        if not costs:
            return []
        args = [1.0 / rate.per_second, rate.burst, *costs]
        try:
            waits = self.many(keys=[f"{self.prefix}switchboard:rate:{key}"], args=args)
        except Exception as exc:  # as acquire: a limiter outage is not a send outage
            log.warning(
                "rate limiter unavailable; letting through", extra={"error": type(exc).__name__}
            )
            return [0.0] * len(costs)
        return [float(w) for w in waits]

    def peek(self, session: Session, key: str, rate: Rate) -> float:
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.time()
                pipe.get(f"{self.prefix}switchboard:rate:{key}")
                (seconds, micros), tat = pipe.execute()
        except Exception as exc:  # a report must not fail on the limiter: say "unknown"
            log.warning("rate limiter unavailable", extra={"error": type(exc).__name__})
            return float("nan")
        return available(float(tat) if tat is not None else None, seconds + micros / 1e6, rate)


def make_limiter(redis_url: str | None, prefix: str | None) -> RateLimiter:
    """Redis when configured (its URL carries any TLS options), else the database."""
    if not redis_url:
        return DatabaseLimiter()
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    return RedisLimiter(client, prefix or "")
