"""After the load: did every accepted request leave what it should in Postgres and Redis?"""

from __future__ import annotations

import redis
from sqlalchemy import text

from scripts.bench.apps.floor_app import REDIS_KEY as FLOOR_REDIS_KEY
from scripts.bench.apps.floor_app import TABLE as FLOOR_TABLE
from scripts.bench.lib.fixtures import Environment, engine_for
from scripts.bench.lib.options import Options
from scripts.bench.lib.targets import TargetResult


def accepted(runs: list[dict[str, TargetResult]], name: str) -> int | None:
    """2xx answers over warm-up and measurement, in every run; None when the target did not run.

    (Twilio's callbacks are answered 200 with TwiML; the others 201 or 202.)
    """
    results = [r[name] for r in runs if name in r and r[name].load is not None]
    if not results:
        return None
    phases = [p for r in results if r.load for p in (r.load.warmup, r.load.measured)]
    return sum(phase.statuses.get(str(s), 0) for phase in phases for s in (200, 201, 202))


def check_storage(
    opts: Options, envir: Environment, runs: list[dict[str, TargetResult]]
) -> list[str]:
    """Every 2xx answer must have left its row; the drains were woken; the outbox is empty.

    Wakes coalesce (app.infra.wakes): a queue holds at least one task once rows wait for it,
    not one per row, so only that much is checked of the queues."""
    floor, webhook, twilio, messages = (
        accepted(runs, n) for n in ("floor", "webhook", "twilio", "messages")
    )
    receipts = accepted(runs, "receipts")
    notes: list[str] = []
    client = redis.Redis.from_url(opts.redis_url)
    prefix = envir.redis_prefix
    try:
        with engine_for(envir.db_url) as engine, engine.connect() as conn:

            def count(table: str) -> int:
                return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608

            def queued(key: str) -> int:
                return int(client.llen(prefix + key))

            stored = (webhook or 0) + (twilio or 0) + (receipts or 0)
            checks: list[tuple[int | None, int, str]] = [
                (floor, count(FLOOR_TABLE), f"rows in {FLOOR_TABLE}"),
                (floor, queued(FLOOR_REDIS_KEY), "entries in the floor's Redis list"),
                (
                    stored if webhook is not None or twilio is not None else None,
                    count("webhook_inbox"),
                    "rows in webhook_inbox",
                ),
                (
                    (messages or 0) + (opts.receipts if receipts is not None else 0)
                    if messages is not None
                    else None,
                    count("messages"),
                    "rows in messages",
                ),
            ]
            for expected, actual, what in checks:
                if expected is not None and expected != actual:
                    notes.append(f"{what}: {actual}, but {expected} requests were answered 2xx")
            # The receipts target's worker drains the intake queue, so only without it.
            if (webhook or twilio) and receipts is None and not queued("intake"):
                notes.append("no task on the intake queue, but callbacks were stored")
            if messages and not queued("dispatch.normal"):
                notes.append("no task on dispatch.normal, but messages were queued")
            left = count("outbox")
            if left:
                notes.append(f"{left} outbox rows were left unpublished (broker publish failed?)")
    finally:
        client.close()
    return notes
