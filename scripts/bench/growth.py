"""Cost as data grows: intake and dispatch on an empty database, then with a million messages.

    python scripts/bench/growth.py [--seed 1000000] [--duration 10] [--messages 1000]

In one run, against one fresh Postgres database and Redis prefix:

1. empty: ``POST /v1/messages`` under gunicorn (config/gunicorn.py) for
   ``--duration`` seconds at 16 connections (req/s, p50/p99), then ``--messages``
   queued messages dispatched by a real worker to the fake Twilio (50 ms answers);
2. ``--seed`` messages of history for the same tenant, with their events,
   contacts and inbox rows (scripts/bench/lib/seed.py), then VACUUM ANALYZE;
3. the same two measurements again.

Prints each figure seeded beside empty, and the ratio. Target: within 10%.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys
from pathlib import Path

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import argparse
import asyncio
import contextlib
import os
import secrets
import tempfile
import time
from dataclasses import dataclass

from celery import Celery
from cryptography.fernet import Fernet

from app import create_app
from app.domain.queues import QueueNames
from app.infra.broker import TaskNames
from app.infra.db import Database
from config import load_settings
from scripts.bench.dispatch import count_accepted, seed, wait_until
from scripts.bench.lib.celery_worker import CeleryWorker
from scripts.bench.lib.common import REPO_ROOT, say
from scripts.bench.lib.fixtures import (
    UNLIMITED_API,
    create_database,
    database_url_for,
    delete_redis_keys,
    drop_database,
    run_cli,
)
from scripts.bench.lib.loadgen import PhaseStats, run_load
from scripts.bench.lib.seed import seed_history
from scripts.bench.lib.servers import Server
from scripts.bench.lib.targets import json_request
from scripts.fake_twilio import FakeTwilio

TOLERANCE = 0.10


@dataclass
class Phase:
    intake: PhaseStats
    dispatch_rate: float


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1_000_000, help="messages of history")
    parser.add_argument("--duration", type=float, default=10.0, help="intake seconds")
    parser.add_argument("--messages", type=int, default=1000, help="messages to dispatch")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the fake's answer time")
    parser.add_argument(
        "--pg-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args(argv)


def measure(
    env: dict[str, str],
    db: Database,
    celery: Celery,
    ids: tuple[str, str, str],
    args: argparse.Namespace,
    tag: str,
) -> Phase:
    tenant, account, key = ids
    log_dir = Path(env["SWITCHBOARD_VAR_DIR"]).parent
    server = Server(f"app-{tag}", "app:create_app()", "/healthz", env, log_dir)
    auth = {"Authorization": f"Bearer {key}"}
    try:
        server.start(45)
        say(f"  {tag}: POST /v1/messages for {args.duration:g} s")
        load = asyncio.run(
            run_load(
                server.base_url,
                lambda n: json_request(
                    "/v1/messages", {"to": "+12025550100", "body": f"growth #{n}"}, auth
                ),
                concurrency=16,
                warmup=2,
                duration=args.duration,
            )
        )
    finally:
        server.stop()
    say(f"  {tag}: dispatch of {args.messages} to the fake Twilio")
    queued = seed(db, tenant, account, args.messages, "bulk")
    worker = CeleryWorker(
        env, log_dir / f"worker-{tag}.log", "workers.main", [QueueNames.BULK], "threads", 32
    )
    try:
        start = time.monotonic()
        for message_id in queued:
            celery.send_task(TaskNames.DISPATCH, args=[message_id], queue=QueueNames.BULK)
        done = wait_until(lambda: count_accepted(db, queued) >= len(queued), 900)
    finally:
        worker.stop()
    return Phase(load.measured, len(queued) / (done - start))


def _row(name: str, empty: float, seeded: float, higher_is_better: bool, unit: str) -> str:
    ratio = seeded / empty if empty else float("nan")
    ok = ratio >= 1 - TOLERANCE if higher_is_better else ratio <= 1 + TOLERANCE
    return (
        f"{name:<34} empty {empty:9.1f} {unit:<5} seeded {seeded:9.1f} {unit:<5} "
        f"ratio {ratio:5.2f}x  {'HIT' if ok else 'MISS'}"
    )


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    run_id = secrets.token_hex(4)
    db_name, prefix = f"switchboard_bench_{run_id}", f"switchboard-bench-{run_id}:"
    log_dir = Path(tempfile.mkdtemp(prefix=f"switchboard-growth-{run_id}-"))
    fake = FakeTwilio(callback_delay=0, send_callbacks=False).start()
    fake.stall_all = args.latency_ms / 1000
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "BROKER_URL", "PORT"}}
    env.update(
        DATABASE_URL=database_url_for(args.pg_url, db_name), REDIS_URL=args.redis_url,
        BROKER_KEYPREFIX=prefix, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=Fernet.generate_key().decode(), SWITCHBOARD_VAR_DIR=str(log_dir / "var"),
        PYTHONPATH=REPO_ROOT.as_posix(), LOG_LEVEL="WARNING", WEB_CONCURRENCY="2",
    )  # fmt: skip
    create_database(args.pg_url, db_name)
    try:
        run_cli(env, "db", "upgrade")
        tenant = str(run_cli(env, "tenants", "create", "--name", "growth", *UNLIMITED_API)["id"])
        key = str(run_cli(env, "keys", "create", "--tenant", tenant)["key"])
        account = str(
            run_cli(
                env, "accounts", "create", "--tenant", tenant, "--provider", "twilio",
                "--sender", "+12025550199", "--account-sid", fake.account_sid,
                "--auth-token", fake.auth_token, "--base-url", fake.base_url,
            )["id"]
        )  # fmt: skip
        app = create_app({"settings": load_settings(env)})
        db: Database = app.extensions["switchboard.db"]
        celery = app.extensions["celery"]
        empty = measure(env, db, celery, (tenant, account, key), args, "empty")
        say(f"  seeding {args.seed:,} messages of history")
        took = seed_history(db.engine, tenant_id=tenant, account_id=account, messages=args.seed,
                            progress=say)  # fmt: skip
        seeded = measure(env, db, celery, (tenant, account, key), args, "seeded")
    finally:
        fake.stop()
        with contextlib.suppress(Exception):
            drop_database(args.pg_url, db_name)
        with contextlib.suppress(Exception):
            delete_redis_keys(args.redis_url, prefix)
    print(
        f"\nSwitchboard growth benchmark (run {run_id}): empty database, then {args.seed:,} "
        f"messages of history (seeded in {took:.0f} s); target within {TOLERANCE:.0%}"
    )
    print(_row("POST /v1/messages req/s", empty.intake.rps, seeded.intake.rps, True, "/s"))
    print(
        _row(
            "POST /v1/messages p99",
            empty.intake.percentile(99),
            seeded.intake.percentile(99),
            False,
            "ms",
        )
    )
    print(
        _row("dispatch (fake Twilio 50 ms)", empty.dispatch_rate, seeded.dispatch_rate, True, "/s")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
