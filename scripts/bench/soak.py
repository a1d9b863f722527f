"""Soak: many messages through web, workers and beat; memory per process and queue depths.

    python scripts/bench/soak.py [--messages 100000] [--concurrency 8] [--every 15]
                                 [--campaign 1000]

Starts the Procfile's processes with ``scripts/run`` (web, worker, worker_bulk,
beat) on a fresh Postgres database and Redis prefix, with a sandbox account:
each message is sent, its signed receipts come back through the webhook, and
the worker applies them. ``--messages`` intents are POSTed at ``--concurrency``
connections, holding back while more than ``--max-backlog`` wait in the
queues. Every ``--every`` seconds it prints the queue depths, how many messages
were delivered, and the RSS of every process. At the end: each process's RSS
after the warm-up (the first 2% of the messages) and at the end, and the ratio.
Target: flat, within 10%.

With ``--campaign N`` the same messages go as campaigns of N recipients each (a CSV a
request), one at a time, the next posted while fewer than ``--max-backlog`` messages and
recipients are still on their way: the soak through campaigns, to read beside the one above.
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
import threading
import time
from collections.abc import Callable

import psutil
import redis
import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from app.domain.queues import QueueNames
from scripts.bench.lib.common import SetupError, say
from scripts.bench.lib.fixtures import (
    SENDER,
    UNLIMITED_API,
    create_database,
    database_url_for,
    delete_redis_keys,
    drop_database,
    run_cli,
)
from scripts.bench.lib.servers import free_port, pipeline

TOLERANCE = 0.10
RECIPIENT_BASE = 12025560000  # sandbox: any last four but 0001-0005 is delivered


# Messages a second, intent to delivered with both receipts, every process on this machine.
RATE_TARGET = 150


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--max-backlog", type=int, default=2000, help="queued tasks, at most")
    parser.add_argument("--timeout", type=float, default=3 * 3600)
    parser.add_argument(
        "--campaign", type=int, default=0, help="recipients per campaign (0: single POSTs)"
    )
    parser.add_argument(
        "--pg-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args(argv)


def processes(root: int) -> dict[str, psutil.Process]:
    """The pipeline's Python processes by role (gunicorn workers numbered)."""
    found: dict[str, psutil.Process] = {}
    web = 0
    for proc in psutil.Process(root).children(recursive=True):
        try:
            if proc.name() in ("sh", "bash", "dash", "honcho"):
                continue  # the shells honcho starts each command in
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "python" not in cmd and "celery" not in cmd and "gunicorn" not in cmd:
            continue
        if "gunicorn" in cmd:
            is_master = bool(proc.children())  # the arbiter; its workers have none
            name = "web master" if is_master else f"web worker {(web := web + 1)}"
        elif " beat" in cmd:
            name = "beat"
        elif "bulk@" in cmd:
            name = "worker_bulk"
        elif "intake@" in cmd:
            name = "worker_intake"
        elif "crm@" in cmd:
            name = "worker_crm"
        elif "worker@" in cmd:
            name = "worker"
        else:
            continue
        found[name] = proc
    return found


def rss_mb(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for name, proc in procs.items():
        with contextlib.suppress(psutil.Error):
            out[name] = proc.memory_info().rss / 2**20
    return out


def depths(client: redis.Redis, prefix: str) -> dict[str, int]:
    return {q: int(client.llen(f"{prefix}{q}")) for q in QueueNames.all()}


class Sender(threading.Thread):
    """POSTs intents on a few threads, holding back while the queues are full."""

    def __init__(
        self, base: str, key: str, total: int, threads: int, backlog: Callable[[], bool]
    ) -> None:
        super().__init__(daemon=True)
        self.base, self.key, self.total, self.threads = base, key, total, threads
        self.backlog = backlog
        self.sent = 0
        self.errors = 0
        self._lock = threading.Lock()
        self._next = 0

    def _claim(self) -> int | None:
        with self._lock:
            if self._next >= self.total:
                return None
            self._next += 1
            return self._next

    def _loop(self) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {self.key}"}
        while (n := self._claim()) is not None:
            while self.backlog():
                time.sleep(0.2)
            to = f"+{RECIPIENT_BASE + 100 + n % 9000}"
            try:
                r = session.post(
                    f"{self.base}/v1/messages",
                    json={"to": to, "body": f"soak #{n}"},
                    headers=headers,
                    timeout=30,
                )
                ok = r.status_code == 202
            except requests.RequestException:
                ok = False
            with self._lock:
                self.sent += ok
                self.errors += not ok

    def run(self) -> None:
        workers = [threading.Thread(target=self._loop, daemon=True) for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()


class CampaignSender(threading.Thread):
    """POSTs campaigns of ``size`` recipients, one at a time, holding back on the backlog."""

    def __init__(self, base: str, key: str, total: int, size: int, backlog: Callable[[], bool]):
        super().__init__(daemon=True)
        self.base, self.key, self.total, self.size = base, key, total, size
        self.backlog = backlog
        self.sent = 0
        self.errors = 0

    def run(self) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "text/csv"}
        n = 0
        while n < self.total:
            while self.backlog():
                time.sleep(0.5)
            count = min(self.size, self.total - n)
            # A campaign takes a number once: each campaign's numbers are distinct.
            rows = "".join(f"+{RECIPIENT_BASE + 100 + i % 9000}\n" for i in range(n, n + count))
            try:
                r = session.post(
                    f"{self.base}/v1/campaigns?body=soak&name=soak-{n}",
                    data=("phone\n" + rows).encode(),
                    headers=headers,
                    timeout=120,
                )
                ok = r.status_code == 202
            except requests.RequestException:
                ok = False
            if ok:
                self.sent += count
            else:
                self.errors += 1
            n += count


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    run_id = secrets.token_hex(4)
    db_name, prefix = f"switchboard_bench_{run_id}", f"switchboard-bench-{run_id}:"
    log_dir = Path(tempfile.mkdtemp(prefix=f"switchboard-soak-{run_id}-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "BROKER_URL"}}
    env.update(
        DATABASE_URL=database_url_for(args.pg_url, db_name), REDIS_URL=args.redis_url,
        BROKER_KEYPREFIX=prefix, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=Fernet.generate_key().decode(), SWITCHBOARD_VAR_DIR=str(log_dir / "var"),
        LOG_LEVEL="WARNING", PORT=str(port),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )  # fmt: skip
    env.pop("FLOWER_BASIC_AUTH", None)
    base = f"http://127.0.0.1:{port}"
    create_database(args.pg_url, db_name)
    client = redis.Redis.from_url(args.redis_url)
    engine = create_engine(env["DATABASE_URL"])
    lines: list[str] = []
    stack = contextlib.ExitStack()  # the pipeline, stopped before the database is dropped
    try:
        run_cli(env, "db", "upgrade")
        tenant = str(run_cli(env, "tenants", "create", "--name", "soak", *UNLIMITED_API)["id"])
        key = str(run_cli(env, "keys", "create", "--tenant", tenant)["key"])
        run_cli(env, "accounts", "create", "--tenant", tenant, "--provider", "sandbox",
                "--sender", SENDER)  # fmt: skip
        root = stack.enter_context(pipeline(env, log_dir / "run.log"))

        def delivered() -> int:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        text("SELECT count(*) FROM messages WHERE status = 'delivered'")
                    ).scalar_one()
                )

        def backlog() -> bool:
            return sum(depths(client, prefix).values()) > int(args.max_backlog)

        def on_their_way() -> bool:
            """Messages not yet delivered, and recipients not yet messages, past the backlog."""
            with engine.connect() as conn:
                left = conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM messages WHERE status NOT IN "
                        "('delivered', 'read', 'failed', 'undelivered', 'expired', 'canceled'))"
                        " + (SELECT count(*) FROM campaign_recipients WHERE state = 'pending')"
                    )
                ).scalar_one()
            return int(left) > int(args.max_backlog)

        sender: Sender | CampaignSender = (
            CampaignSender(base, key, args.messages, args.campaign, on_their_way)
            if args.campaign
            else Sender(base, key, args.messages, args.concurrency, backlog)
        )
        started = time.monotonic()
        sender.start()
        warm_at = max(1, args.messages // 50)
        start_rss: dict[str, float] = {}
        last_rss: dict[str, float] = {}
        header = "   t s    sent  delivered  " + "  ".join(
            f"{q.split('.')[-1]:>8}" for q in QueueNames.all()
        )
        say(header)
        lines.append(header)
        next_sample = 0.0
        while True:
            now = time.monotonic() - started
            done = delivered()
            if not start_rss and done >= warm_at:
                start_rss = rss_mb(processes(root))
            if now >= next_sample or done >= args.messages:
                next_sample = now + args.every
                d = depths(client, prefix)
                last_rss = rss_mb(processes(root))
                rss = " ".join(f"{n}={v:.0f}MB" for n, v in sorted(last_rss.items()))
                line = (
                    f"{now:6.0f} {sender.sent:7d} {done:10d}  "
                    + "  ".join(f"{d[q]:>8}" for q in QueueNames.all())
                    + f"   rss {rss}"
                )
                say(line)
                lines.append(line)
            if done >= args.messages or now > args.timeout:
                break
            if not sender.is_alive() and sender.sent + done == 0:
                raise SetupError("nothing was accepted")
            time.sleep(1)
        elapsed = time.monotonic() - started
        end_rss = rss_mb(processes(root))
    finally:
        stack.close()
        engine.dispose()
        with contextlib.suppress(Exception):
            drop_database(args.pg_url, db_name)
        with contextlib.suppress(Exception):
            delete_redis_keys(args.redis_url, prefix)
    how = f"as campaigns of {args.campaign:,}" if args.campaign else "as single POSTs"
    print(
        f"\nSwitchboard soak (run {run_id}): {args.messages:,} messages {how} through web, "
        f"workers and beat in {elapsed:.0f} s ({args.messages / elapsed:.1f}/s end to end, "
        f"{sender.errors} errors)"
    )
    print("\n".join(lines))
    print(f"\n{'process':<14} {'RSS after warm-up':>18} {'RSS at the end':>15} {'ratio':>7}")
    worst = 0.0
    for name in sorted(end_rss):
        first = start_rss.get(name)
        if not first:
            continue
        ratio = end_rss[name] / first
        worst = max(worst, ratio)
        print(f"{name:<14} {first:15.1f} MB {end_rss[name]:12.1f} MB {ratio:6.2f}x")
    verdict = "HIT" if worst <= 1 + TOLERANCE else "MISS"
    print(f"worker memory: largest growth {worst:.2f}x; target within {TOLERANCE:.0%}: {verdict}")
    rate = args.messages / elapsed
    print(
        f"throughput: {rate:.1f} messages/s from intent to delivered with both receipts; "
        f"target >= {RATE_TARGET}/s: {'HIT' if rate >= RATE_TARGET else 'MISS'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
