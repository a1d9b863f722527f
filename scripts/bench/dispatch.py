"""The batch benchmark: dispatch and receipts in batches, fairness and the urgent lane.

    python scripts/bench/dispatch.py [--messages 5000] [--receipts 10000] [--flood 10000]

In one run, against a fresh database and Redis prefix, with the fake Twilio answering
every send in ``--latency-ms`` (50 by default), each figure beside its baseline:

1. dispatch, one worker process (the Procfile's ``worker``, its pool and concurrency):
   ``--messages`` queued messages drained to the fake, beside the Celery no-op task rate
   of the same pool on the same broker (``noop_app.py``). Target: >= 2x the no-op rate.
2. receipts applied, one worker process: ``--receipts`` signed Twilio ``delivered``
   callbacks stored in the inbox as the webhook stores them, then applied by the worker.
   Target: >= 1,000/s.
3. fairness: tenant A queues ``--flood`` bulk messages, then tenant B sends one bulk
   message, 20 times; B's message's enqueue-to-``dispatched`` p95, with the fair claim
   and, beside it, with a FIFO claim (``DISPATCH_CLAIM_ORDER=fifo``). Target: p95 < 2 s.
4. the urgent lane while ``--flood`` bulk messages drain (both Procfile workers): an
   urgent message every 0.25 s, enqueue to ``dispatched``. Target: p95 < 1 s.

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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import psutil
import redis
from cryptography.fernet import Fernet
from sqlalchemy import func, insert, select

from app import create_app
from app.domain.ids import new_id
from app.domain.queues import QueueNames
from app.infra.broker import TaskNames
from app.infra.db import Database
from app.messaging.contacts import get_or_create_contact
from app.messaging.receipts.inbox import store_callback
from app.models import ChannelAccount, Message, MessageEvent
from config import load_settings
from scripts.bench.lib.celery_worker import CeleryWorker
from scripts.bench.lib.common import REPO_ROOT, say
from scripts.bench.lib.fixtures import (
    create_database,
    database_url_for,
    delete_redis_keys,
    drop_database,
    run_cli,
)
from scripts.bench.lib.loadgen import percentile
from scripts.fake_twilio import FakeTwilio

WORKER_QUEUES = [QueueNames.URGENT, QueueNames.INTAKE, QueueNames.NORMAL, QueueNames.CRM]
BULK_QUEUES = [QueueNames.BULK, QueueNames.MAINTENANCE]


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="messages to dispatch")
    parser.add_argument("--receipts", type=int, default=10000, help="receipts to apply")
    parser.add_argument("--flood", type=int, default=10000, help="tenant A's bulk backlog")
    parser.add_argument("--rounds", type=int, default=20, help="tenant B's messages")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the fake's answer time")
    parser.add_argument(
        "--phases", default="dispatch,receipts,fairness,urgent", help="which to run, in order"
    )
    parser.add_argument(
        "--pg-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args(argv)


def seed(
    db: Database,
    tenant_id: str,
    account_id: str,
    n: int,
    priority: str,
    provider_ids: list[str] | None = None,
) -> list[str]:
    """``n`` queued messages, as intake leaves them, in batched INSERTs; with
    ``provider_ids``, ``sent`` ones that the provider knows by those ids."""
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
        for row, provider_id in zip(rows, provider_ids or [], strict=False):
            row.update(status="sent", provider_message_id=provider_id)
        for start in range(0, n, 2000):
            s.execute(insert(Message), rows[start : start + 2000])
    return [str(r["id"]) for r in rows]


def reached_at(db: Database, ids: list[str], status: str) -> dict[str, float]:
    """When each message's ``status`` event was written (epoch seconds)."""
    found: dict[str, float] = {}
    with db.session() as s:
        for start in range(0, len(ids), 5000):
            rows = s.execute(
                select(MessageEvent.message_id, MessageEvent.created_at).where(
                    MessageEvent.message_id.in_(ids[start : start + 5000]),
                    MessageEvent.to_status == status,
                )
            ).all()
            found.update({message_id: at.timestamp() for message_id, at in rows})
    return found


def count_in(db: Database, ids: list[str], statuses: tuple[str, ...]) -> int:
    total = 0
    with db.session() as s:
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            query = select(func.count()).where(Message.id.in_(chunk), Message.status.in_(statuses))
            total += int(s.scalar(query) or 0)
    return total


def count_accepted(db: Database, ids: list[str]) -> int:
    return count_in(db, ids, ("accepted",))


def wait_until(check: Callable[[], bool], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.2)  # figures come from event times, not from this poll
    raise RuntimeError("timed out")


def pcts(values: list[float]) -> str:
    ordered = sorted(values)
    return "/".join(f"{percentile(ordered, p) * 1000:.0f}" for p in (50, 95, 99))


def verdict(hit: bool) -> str:
    return "HIT" if hit else "MISS"


class Bench:
    def __init__(self, args: argparse.Namespace, env: dict[str, str], log_dir: Path) -> None:
        self.args = args
        self.env = env
        self.log_dir = log_dir
        self.fake = FakeTwilio(callback_delay=0, send_callbacks=False).start()
        self.fake.stall_all = args.latency_ms / 1000
        run_cli(env, "db", "upgrade")
        self.tenant_a = self.tenant("a")
        self.tenant_b = self.tenant("b")
        settings = load_settings(env)
        self.app = create_app({"settings": settings})
        self.db: Database = self.app.extensions["switchboard.db"]
        self.celery = self.app.extensions["celery"]
        self.lines: list[str] = []

    def report(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)

    def tenant(self, name: str) -> tuple[str, str]:
        tenant = str(run_cli(self.env, "tenants", "create", "--name", name)["id"])
        account = str(
            run_cli(
                self.env, "accounts", "create", "--tenant", tenant, "--provider", "twilio",
                "--sender", "+12025550199", "--account-sid", self.fake.account_sid,
                "--auth-token", self.fake.auth_token, "--base-url", self.fake.base_url,
            )["id"]
        )  # fmt: skip
        return tenant, account

    def worker(self, name: str, queues: list[str], **extra: str) -> CeleryWorker:
        return CeleryWorker(
            {**self.env, **extra}, self.log_dir / f"{name}.log", "workers.main", queues
        )

    def wake(self, lane: str) -> None:
        self.celery.send_task(
            TaskNames.DISPATCH_LANE, args=[lane], queue=QueueNames.for_priority(lane)
        )

    @staticmethod
    def cpu_seconds(worker: CeleryWorker) -> float:
        """The worker process's CPU time so far (user + system; threads pool: one process)."""
        times = psutil.Process(worker.proc.pid).cpu_times()
        return float(times.user + times.system)

    def noop_rate(self) -> tuple[float, float]:
        n = self.args.messages
        counter = redis.Redis.from_url(self.args.redis_url)
        key = f"{self.env['BROKER_KEYPREFIX']}bench:noop:done"
        counter.delete(key)
        worker = CeleryWorker(
            self.env, self.log_dir / "noop.log", "scripts.bench.apps.noop_app", ["bench.noop"]
        )
        try:
            cpu = self.cpu_seconds(worker)
            start = time.monotonic()
            for _ in range(n):
                self.celery.send_task("bench_noop", queue="bench.noop")
            done = wait_until(lambda: int(counter.get(key) or 0) >= n, 600)
            cpu = self.cpu_seconds(worker) - cpu
        finally:
            worker.stop()
        return float(n / (done - start)), cpu / n

    def dispatch(self) -> None:
        say(f"1. the Celery no-op baseline, then {self.args.messages} messages dispatched")
        noop, noop_cpu = self.noop_rate()
        tenant, account = self.tenant_a
        ids = seed(self.db, tenant, account, self.args.messages, "normal")
        worker = self.worker("dispatch", WORKER_QUEUES)
        try:
            cpu = self.cpu_seconds(worker)
            start, wall = time.monotonic(), time.time()
            self.wake("normal")
            done = wait_until(lambda: count_accepted(self.db, ids) >= len(ids), 900)
            cpu = (self.cpu_seconds(worker) - cpu) / len(ids)
        finally:
            worker.stop()
        rate = len(ids) / (done - start)
        accepted = reached_at(self.db, ids, "accepted")
        latency = [accepted[i] - wall for i in ids if i in accepted]
        sends = len(self.fake.sent)
        self.report(
            f"dispatch, one worker    {rate:8.1f} msg/s  beside the no-op task {noop:7.1f}/s: "
            f"{rate / noop:5.2f}x  {verdict(rate >= 2 * noop)} (target >= 2x)\n"
            f"    wake->accepted p50/p95/p99 {pcts(latency)} ms; {sends} sends for "
            f"{len(ids)} messages; worker CPU {cpu * 1000:.2f} ms a message, beside "
            f"{noop_cpu * 1000:.2f} ms a no-op task"
        )

    def receipts(self) -> None:
        n = self.args.receipts
        say(f"2. {n} receipts stored as the webhook stores them, applied by one worker")
        tenant, account_id = self.tenant_b
        provider_ids = ["SM" + secrets.token_hex(16) for _ in range(n)]
        ids = seed(self.db, tenant, account_id, n, "normal", provider_ids)
        sids = dict(zip(ids, provider_ids, strict=True))
        worker = self.worker("receipts", [QueueNames.INTAKE])
        try:
            with self.db.session() as s:
                account = s.get(ChannelAccount, account_id)
                assert account is not None
                for message_id in ids:
                    params = {
                        "MessageSid": sids[message_id], "MessageStatus": "delivered",
                        "AccountSid": self.fake.account_sid, "To": "+12025559000",
                        "From": "+12025550199",
                    }  # fmt: skip
                    key = f"{sids[message_id]}:delivered"
                    store_callback(s, account, "twilio", key, urlencode(params))
                cpu = self.cpu_seconds(worker)
            start = time.monotonic()  # the commit published the wake
            done = wait_until(lambda: count_in(self.db, ids, ("delivered",)) >= n, 900)
            cpu = (self.cpu_seconds(worker) - cpu) / n
        finally:
            worker.stop()
        rate = n / (done - start)
        self.report(
            f"receipts, one worker    {rate:8.1f}/s applied (stored {n}, then applied)  "
            f"{verdict(rate >= 1000)} (target >= 1,000/s); worker CPU {cpu * 1000:.2f} ms each"
        )

    def fairness(self, order: str) -> list[float]:
        say(
            f"3. fairness ({order}): A floods {self.args.flood} bulk, "
            f"B sends one, x{self.args.rounds}"
        )
        extra = {"DISPATCH_CLAIM_ORDER": order}
        workers = [
            self.worker(f"fair-{order}-worker", WORKER_QUEUES, **extra),
            self.worker(f"fair-{order}-bulk", BULK_QUEUES, **extra),
        ]
        try:
            flood = seed(self.db, *self.tenant_a, self.args.flood, "bulk")
            self.wake("bulk")
            time.sleep(1.0)  # the flood is being dispatched
            sent: dict[str, float] = {}
            for _ in range(self.args.rounds):  # one of B's every 0.5 s, while A's flood waits
                if not count_in(self.db, flood, ("queued",)):
                    break
                (mine,) = seed(self.db, *self.tenant_b, 1, "bulk")
                sent[mine] = time.time()
                self.celery.send_task(TaskNames.DISPATCH, args=[mine], queue=QueueNames.BULK)
                time.sleep(0.5)
            mine_ids = list(sent)
            with contextlib.suppress(RuntimeError):
                wait_until(lambda: count_in(self.db, mine_ids, ("queued",)) == 0, 300)
            left = count_in(self.db, flood, ("queued",))
        finally:
            for w in workers:
                w.stop()
            self.settle("bulk")
        at = reached_at(self.db, mine_ids, "dispatched")
        say(f"   {len(mine_ids)} of B's sent; A's flood had {left} queued at the end")
        return [at.get(m, time.time()) - sent[m] for m in mine_ids]

    def urgent(self) -> None:
        say(f"4. an urgent message every 0.25 s while {self.args.flood} bulk drain")
        workers = [
            self.worker("lanes-worker", WORKER_QUEUES),
            self.worker("lanes-bulk", BULK_QUEUES),
        ]
        try:
            tenant, account = self.tenant_a
            flood = seed(self.db, tenant, account, self.args.flood, "bulk")
            self.wake("bulk")
            began, urgent, sent = time.monotonic(), [], {}
            while count_in(self.db, flood, ("queued",)) and time.monotonic() - began < 120:
                (message_id,) = seed(self.db, *self.tenant_b, 1, "urgent")
                sent[message_id] = time.time()
                self.celery.send_task(
                    TaskNames.DISPATCH, args=[message_id], queue=QueueNames.URGENT
                )
                urgent.append(message_id)
                time.sleep(0.25)
            drained = len(flood) - count_in(self.db, flood, ("queued",))
            took = time.monotonic() - began
            wait_until(lambda: count_in(self.db, urgent, ("queued",)) == 0, 60)
            got = reached_at(self.db, urgent, "dispatched")
            lat = sorted(got[i] - sent[i] for i in urgent if i in got)
        finally:
            for w in workers:
                w.stop()
        hit = bool(lat) and percentile(lat, 95) < 1.0
        self.report(
            f"urgent during the flood {len(urgent)} urgent while {drained}/{len(flood)} bulk "
            f"went in {took:.0f} s ({drained / took:.0f}/s): enqueue->dispatched p50/p95/p99 "
            f"{pcts(lat)} ms  {verdict(hit)} (target p95 < 1 s)"
        )

    def settle(self, lane: str) -> None:
        """Cancel what a phase left queued, so the next starts from an empty lane."""
        from sqlalchemy import update

        with self.db.session() as s:
            s.execute(
                update(Message)
                .where(Message.status == "queued", Message.priority == lane)
                .values(status="canceled", status_reason="canceled_by_api")
            )

    def run(self) -> None:
        phases = self.args.phases.split(",")
        if "dispatch" in phases:
            self.dispatch()
        if "receipts" in phases:
            self.receipts()
        if "fairness" in phases:
            fifo = sorted(self.fairness("fifo"))
            fair = sorted(self.fairness("fair"))
            hit = percentile(fair, 95) < 2.0
            self.report(
                f"fairness, B beside A's flood: fair p50/p95/p99 {pcts(fair)} ms  "
                f"{verdict(hit)} (target p95 < 2 s)\n"
                f"    the same with a FIFO claim: p50/p95/p99 {pcts(fifo)} ms"
            )
        if "urgent" in phases:
            self.urgent()

    def stop(self) -> None:
        self.fake.stop()


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    run_id = secrets.token_hex(4)
    db_name, prefix = f"switchboard_bench_{run_id}", f"switchboard-bench-{run_id}:"
    log_dir = Path(tempfile.mkdtemp(prefix=f"switchboard-dispatch-{run_id}-"))
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "BROKER_URL", "PORT"}}
    env.update(
        DATABASE_URL=database_url_for(args.pg_url, db_name), REDIS_URL=args.redis_url,
        BROKER_KEYPREFIX=prefix, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=Fernet.generate_key().decode(), SWITCHBOARD_VAR_DIR=str(log_dir / "var"),
        PYTHONPATH=REPO_ROOT.as_posix(), LOG_LEVEL="WARNING",
    )  # fmt: skip
    create_database(args.pg_url, db_name)
    bench: Bench | None = None
    try:
        bench = Bench(args, env, log_dir)
        bench.run()
    finally:
        if bench is not None:
            bench.stop()
        with contextlib.suppress(Exception):
            drop_database(args.pg_url, db_name)
        with contextlib.suppress(Exception):
            delete_redis_keys(args.redis_url, prefix)
    settings: Any = load_settings(env)
    print(
        f"\nSwitchboard batch benchmark (run {run_id}; the fake Twilio answers in "
        f"{args.latency_ms:g} ms; worker pool {settings.worker_pool} x "
        f"{settings.worker_concurrency}; batches of {settings.dispatch_batch_size} sends and "
        f"{settings.receipt_batch_size} receipts; {os.cpu_count()} CPUs shared with "
        f"Postgres, Redis, the fake and this script)"
    )
    print("\n".join(bench.lines if bench else []))
    print(f"logs: {log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
