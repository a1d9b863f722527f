"""After the load: did every accepted request leave what it should in Postgres and Redis?"""

from __future__ import annotations

import redis
from sqlalchemy import text

from scripts.bench.fixtures import Environment, engine_for
from scripts.bench.floor_app import REDIS_KEY as FLOOR_REDIS_KEY
from scripts.bench.floor_app import TABLE as FLOOR_TABLE
from scripts.bench.options import Options
from scripts.bench.targets import TargetResult


def accepted(results: dict[str, TargetResult], name: str) -> int | None:
    """2xx answers over warm-up and measurement; None when the target did not run.

    (Twilio's callbacks are answered 200 with TwiML; the others 201 or 202.)
    """
    result = results.get(name)
    if result is None or result.load is None:
        return None
    phases = (result.load.warmup, result.load.measured)
    return sum(phase.statuses.get(str(s), 0) for phase in phases for s in (200, 201, 202))


def check_storage(opts: Options, envir: Environment, results: dict[str, TargetResult]) -> list[str]:
    """Every 2xx answer must have left one row and one Redis entry; nothing stuck in the outbox."""
    floor, webhook, messages = (accepted(results, n) for n in ("floor", "webhook", "messages"))
    notes: list[str] = []
    client = redis.Redis.from_url(opts.redis_url)
    prefix = envir.redis_prefix
    try:
        with engine_for(envir.db_url) as engine, engine.connect() as conn:

            def count(table: str) -> int:
                return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608

            def queued(key: str) -> int:
                return int(client.llen(prefix + key))

            checks: list[tuple[int | None, int, str]] = [
                (floor, count(FLOOR_TABLE), f"rows in {FLOOR_TABLE}"),
                (floor, queued(FLOOR_REDIS_KEY), "entries in the floor's Redis list"),
                (
                    (webhook or 0) + (accepted(results, "receipts") or 0)
                    if webhook is not None
                    else None,
                    count("webhook_inbox"),
                    "rows in webhook_inbox",
                ),
                # The receipts target's worker drains the intake queue, so only without it.
                (
                    webhook if accepted(results, "receipts") is None else None,
                    queued("intake"),
                    "tasks on the intake queue",
                ),
                (
                    (messages or 0) + (opts.receipts if "receipts" in results else 0)
                    if messages is not None
                    else None,
                    count("messages"),
                    "rows in messages",
                ),
                (messages, queued("dispatch.normal"), "tasks on dispatch.normal"),
            ]
            for expected, actual, what in checks:
                if expected is not None and expected != actual:
                    notes.append(f"{what}: {actual}, but {expected} requests were answered 202")
            left = count("outbox")
            if left:
                notes.append(f"{left} outbox rows were left unpublished (broker publish failed?)")
    finally:
        client.close()
    return notes
