"""Dispatch benchmark: real workers sending to the fake Twilio (50 ms answers), beside a no-op.

    python scripts/bench/dispatch.py [--messages 1000] [--bulk 3000] [--pools prefork,threads]

For each worker pool, in the same run, on the same broker and settings:
- the Celery no-op task rate (the baseline: ``scripts/bench/noop_app.py``);
- dispatch: ``--messages`` queued messages sent through a worker to the fake
  Twilio, which answers each in 50 ms; messages a second, the ratio to the
  no-op rate, and p50/p95/p99 from enqueue to ``accepted``;
then, with the best pool, the Procfile's two workers while ``--bulk`` bulk
messages drain: the urgent lane's p50/p95/p99 for a message sent every 0.25 s.
Everything it makes (database, Redis keys) is removed at the end.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys
from pathlib import Path

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import argparse
import contextlib
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

import redis
from cryptography.fernet import Fernet
from sqlalchemy import func, insert, select

from app import create_app
from app.broker import QueueNames, TaskNames
from app.db import Database
from app.messaging.contacts import get_or_create_contact
from app.models import Message, MessageEvent
from app.models.types import new_id
from config import load_settings
from scripts.bench.celery_worker import CeleryWorker
from scripts.bench.common import REPO_ROOT, say
from scripts.bench.fixtures import (
    create_database,
    database_url_for,
    delete_redis_keys,
    drop_database,
    run_cli,
)
from scripts.bench.loadgen import percentile
from scripts.fake_twilio import FakeTwilio

CONCURRENCY = {"prefork": os.cpu_count() or 2, "threads": 32}


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--bulk", type=int, default=3000, help="bulk backlog for the lane test")
    parser.add_argument("--pools", default="prefork,threads", help="worker pools to compare")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the fake's answer time")
    parser.add_argument(
        "--pg-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args(argv)


def seed(db: Database, tenant_id: str, account_id: str, n: int, priority: str) -> list[str]:
    now = datetime.now(UTC)
    with db.session() as s:
        contact = get_or_create_contact(s, tenant_id, "+12025559000")
        rows = [
            {
                "id": new_id("msg"), "tenant_id": tenant_id, "direction": "outbound",
                "channel": "sms", "channels": ["sms"], "account_id": account_id,
                "contact_id": contact.id, "priority": priority, "status": "queued",
                "attempts": 0, "throttles": 0, "segments": 1, "encoding": "GSM-7",
                "quiet_hours": "respect", "metadata": {}, "created_at": now, "updated_at": now,
            }
            for _ in range(n)
        ]  # fmt: skip
        for start in range(0, n, 2000):
            s.execute(insert(Message), rows[start : start + 2000])
    return [str(r["id"]) for r in rows]


def accepted_at(db: Database, ids: list[str]) -> dict[str, float]:
    with db.session() as s:
        rows = s.execute(
            select(MessageEvent.message_id, MessageEvent.created_at).where(
                MessageEvent.message_id.in_(ids), MessageEvent.to_status == "accepted"
            )
        ).all()
    return {message_id: at.timestamp() for message_id, at in rows}


def count_accepted(db: Database, ids: list[str]) -> int:
    with db.session() as s:
        query = select(func.count()).where(Message.id.in_(ids), Message.status == "accepted")
        return int(s.scalar(query) or 0)


def wait_until(check: Any, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.1)
    raise RuntimeError("timed out")


def pcts(values: list[float]) -> str:
    ordered = sorted(values)
    return "/".join(f"{percentile(ordered, p) * 1000:.0f}" for p in (50, 95, 99))


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    run_id = secrets.token_hex(4)
    db_name, prefix = f"switchboard_bench_{run_id}", f"switchboard-bench-{run_id}:"
    log_dir = Path(tempfile.mkdtemp(prefix=f"switchboard-dispatch-{run_id}-"))
    fake = FakeTwilio(callback_delay=0, send_callbacks=False).start()
    fake.stall_all = args.latency_ms / 1000
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "BROKER_URL", "PORT"}}
    env.update(
        DATABASE_URL=database_url_for(args.pg_url, db_name), REDIS_URL=args.redis_url,
        BROKER_KEYPREFIX=prefix, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=Fernet.generate_key().decode(), SWITCHBOARD_VAR_DIR=str(log_dir / "var"),
        PYTHONPATH=REPO_ROOT.as_posix(), LOG_LEVEL="WARNING",
    )  # fmt: skip
    results: list[str] = []
    create_database(args.pg_url, db_name)
    try:
        run_cli(env, "db", "upgrade")
        tenant = str(run_cli(env, "tenants", "create", "--name", "bench")["id"])
        account = str(
            run_cli(
                env, "accounts", "create", "--tenant", tenant, "--provider", "twilio",
                "--sender", "+12025550199", "--account-sid", fake.account_sid,
                "--auth-token", fake.auth_token, "--base-url", fake.base_url,
            )["id"]
        )  # fmt: skip
        settings = load_settings(env)
        app = create_app({"settings": settings})
        db: Database = app.extensions["switchboard.db"]
        celery = app.extensions["celery"]
        counter = redis.Redis.from_url(args.redis_url)
        noop_key = f"{prefix}bench:noop:done"
        best: tuple[float, str] = (0.0, "prefork")
        for pool in [p.strip() for p in args.pools.split(",") if p.strip()]:
            say(f"pool {pool} (concurrency {CONCURRENCY[pool]}): no-op baseline")
            counter.delete(noop_key)
            worker = CeleryWorker(
                env, log_dir / f"noop-{pool}.log", "scripts.bench.noop_app", ["bench.noop"],
                pool, CONCURRENCY[pool],
            )  # fmt: skip
            try:
                start = time.monotonic()
                for _ in range(args.messages):
                    celery.send_task("bench_noop", queue="bench.noop")
                done = wait_until(lambda: int(counter.get(noop_key) or 0) >= args.messages, 300)
                noop_rate = args.messages / (done - start)
            finally:
                worker.stop()
            say(f"pool {pool}: dispatch of {args.messages} to the fake Twilio")
            ids = seed(db, tenant, account, args.messages, "normal")
            worker = CeleryWorker(
                env, log_dir / f"dispatch-{pool}.log", "workers.main", [QueueNames.NORMAL],
                pool, CONCURRENCY[pool],
            )  # fmt: skip
            try:
                published: dict[str, float] = {}
                start = time.monotonic()
                for message_id in ids:
                    published[message_id] = time.time()
                    celery.send_task(TaskNames.DISPATCH, args=[message_id], queue=QueueNames.NORMAL)
                done = wait_until(lambda ids=ids: count_accepted(db, ids) >= len(ids), 900)
            finally:
                worker.stop()
            rate = len(ids) / (done - start)
            accepted = accepted_at(db, ids)
            latency = [accepted[i] - published[i] for i in ids if i in accepted]
            results.append(
                f"{pool:<8} c={CONCURRENCY[pool]:<3} no-op {noop_rate:8.1f}/s   dispatch "
                f"{rate:7.1f}/s   ratio {rate / noop_rate:5.2f}x "
                f"({'HIT' if rate >= noop_rate else 'MISS'})   enqueue->accepted "
                f"p50/p95/p99 {pcts(latency)} ms"
            )
            best = max(best, (rate, pool))
        pool = best[1]
        say(f"lanes with {pool}: {args.bulk} bulk messages draining, an urgent one every 0.25 s")
        workers = [
            CeleryWorker(env, log_dir / "lane-worker.log", "workers.main",
                         [QueueNames.URGENT, QueueNames.INTAKE, QueueNames.NORMAL,
                          QueueNames.CRM], pool, CONCURRENCY[pool]),
            CeleryWorker(env, log_dir / "lane-bulk.log", "workers.main",
                         [QueueNames.BULK, QueueNames.MAINTENANCE], pool, CONCURRENCY[pool]),
        ]  # fmt: skip
        try:
            bulk = seed(db, tenant, account, args.bulk, "bulk")
            for message_id in bulk:
                celery.send_task(TaskNames.DISPATCH, args=[message_id], queue=QueueNames.BULK)
            bulk_start, urgent, sent = time.monotonic(), [], {}
            while count_accepted(db, bulk) < len(bulk) and time.monotonic() - bulk_start < 120:
                (message_id,) = seed(db, tenant, account, 1, "urgent")
                sent[message_id] = time.time()
                celery.send_task(TaskNames.DISPATCH, args=[message_id], queue=QueueNames.URGENT)
                urgent.append(message_id)
                time.sleep(0.25)
            drained = count_accepted(db, bulk)
            wait_until(lambda: count_accepted(db, urgent) >= len(urgent), 60)
            got = accepted_at(db, urgent)
            lat = [got[i] - sent[i] for i in urgent if i in got]
            results.append(
                f"lanes ({pool}): {len(urgent)} urgent messages while bulk drained "
                f"({drained}/{len(bulk)} bulk accepted in {time.monotonic() - bulk_start:.0f} s): "
                f"urgent enqueue->accepted p50/p95/p99 {pcts(lat)} ms (target p95 < 1000)"
            )
        finally:
            for w in workers:
                w.stop()
    finally:
        fake.stop()
        with contextlib.suppress(Exception):
            drop_database(args.pg_url, db_name)
        with contextlib.suppress(Exception):
            delete_redis_keys(args.redis_url, prefix)
    print(
        f"\nSwitchboard dispatch benchmark (run {run_id}; the fake answers in "
        f"{args.latency_ms:g} ms; {os.cpu_count()} CPUs shared with Postgres, Redis and the fake)"
    )
    print("\n".join(results))
    print("target: dispatch >= 1.0x the no-op rate; urgent p95 < 1 s during the flood")
    return 0


if __name__ == "__main__":
    sys.exit(main())
