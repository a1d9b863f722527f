"""Campaigns against single POSTs, on one machine in one run: the four targets of issue 27.

    python scripts/bench/campaigns.py [--recipients 10000] [--accept 100000] [--connections 12]
    python scripts/bench/campaigns.py --only-accept --recipients 3000   # target 1 alone

Starts the Procfile's processes with ``scripts/run`` (web, workers, beat) on a fresh Postgres
database and Redis prefix, with sandbox accounts (each message's signed receipts come back
through the webhook). In order:

1. the probes alone: another tenant's single messages, and the campaign tenant's urgent ones,
   POST to ``dispatched`` (the baselines of targets 3 and 4);
2. ``--recipients`` single POSTs from ``--connections`` connections, first POST to all
   ``delivered`` (the baseline of target 2, and the posting rate target 1 compares with);
3. the same number of recipients as one campaign (a CSV), first request to all ``delivered``,
   with the probes running throughout (targets 2, 3 and 4);
4. ``--accept`` recipients as one CSV campaign sent tomorrow: the 202, then every message row
   written, and the web workers' memory (target 1).

Each figure is printed beside its baseline, with HIT or MISS. Everything made is removed.
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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

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
from scripts.bench.lib.loadgen import percentile
from scripts.bench.lib.servers import free_port, pipeline
from scripts.bench.soak import processes, rss_mb


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--accept", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=12)
    parser.add_argument("--probe-every", type=float, default=0.25, help="seconds between probes")
    parser.add_argument(
        "--only-accept",
        action="store_true",
        help="target 1 alone: step 2 (its baseline, with --recipients) and step 4",
    )
    parser.add_argument(
        "--pg-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args(argv)


@dataclass(eq=False)
class Probe(threading.Thread):
    """Sends one message every ``every`` seconds, noting when each POST began; how long each
    took to ``dispatched`` is read afterwards from its events (no polling load meanwhile)."""

    base: str
    key: str
    first: int
    every: float
    priority: str = "normal"
    posted: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, daemon=True)

    def _one(self, n: int) -> None:
        started = time.time()
        r = requests.post(
            f"{self.base}/v1/messages",
            json={"to": f"+1{self.first + n}", "body": "probe", "priority": self.priority},
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
        )
        if r.status_code == 202:
            self.posted[str(r.json()["id"])] = started

    def run(self) -> None:
        n = 0
        with ThreadPoolExecutor(max_workers=4) as pool:
            while not self.stop.is_set():
                pool.submit(self._one, n)
                n += 1
                self.stop.wait(self.every)

    def took(self, engine: object) -> list[float]:
        """Seconds from each POST to its message's move to ``dispatched``, read from its
        events; one never dispatched counts as 60 s."""
        if not self.posted:
            return []
        with engine.connect() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                text(
                    "SELECT message_id, min(created_at) FROM message_events WHERE "
                    "message_id = ANY(:ids) AND to_status = 'dispatched' GROUP BY message_id"
                ),
                {"ids": list(self.posted)},
            ).all()
        at = {mid: when.timestamp() for mid, when in rows}
        return sorted(max(0.0, at[m] - t) if m in at else 60.0 for m, t in self.posted.items())


def probes(base: str, other_key: str, own_key: str, every: float, first: int) -> list[Probe]:
    found = [
        Probe(base, other_key, first, every),
        Probe(base, own_key, first + 5000, every, priority="urgent"),
    ]
    for p in found:
        p.start()
    return found


def finish(found: list[Probe], engine: object) -> list[list[float]]:
    for p in found:
        p.stop.set()
    for p in found:
        p.join(timeout=120)
    time.sleep(5)  # the last ones' dispatch
    return [p.took(engine) for p in found]


def count(engine: object, sql: str, **params: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(text(sql), params).scalar_one())


def wait(engine: object, sql: str, total: int, timeout: float, **params: object) -> float:
    started = time.monotonic()
    while count(engine, sql, **params) < total:
        if time.monotonic() - started > timeout:
            raise SetupError(f"timed out waiting for {total}: {sql}")
        time.sleep(0.5)
    return time.monotonic() - started


def singles(base: str, key: str, numbers: list[int], connections: int) -> float:
    """POST each as its own intent; seconds until the last 202."""
    local = threading.local()

    def post(n: int) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        r = local.session.post(
            f"{base}/v1/messages",
            json={"to": f"+1{n}", "body": "Your order is running late", "priority": "bulk"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        if r.status_code != 202:
            raise SetupError(f"single POST answered {r.status_code}: {r.text[:200]}")

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=connections) as pool:
        list(pool.map(post, numbers))
    return time.monotonic() - started


def csv_of(numbers: list[int]) -> Iterator[bytes]:
    yield b"phone,reference\n"
    for start in range(0, len(numbers), 5000):
        yield "".join(f"+1{n},r{n}\n" for n in numbers[start : start + 5000]).encode()


def campaign(base: str, key: str, numbers: list[int], query: str) -> tuple[str, float]:
    started = time.monotonic()
    r = requests.post(
        f"{base}/v1/campaigns?{query}",
        data=csv_of(numbers),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
        timeout=600,
    )
    if r.status_code != 202:
        raise SetupError(f"the campaign answered {r.status_code}: {r.text[:300]}")
    return str(r.json()["id"]), time.monotonic() - started


def pcts(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 50):.3f}  p95 {percentile(values, 95):.3f}  "
        f"p99 {percentile(values, 99):.3f} s  (n={len(values)})"
    )


def p95(values: list[float]) -> float:
    return percentile(values, 95) if values else float("inf")


def verdict(hit: bool) -> str:
    return "HIT " if hit else "MISS"


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    run_id = secrets.token_hex(4)
    db_name, prefix = f"switchboard_bench_{run_id}", f"switchboard-bench-{run_id}:"
    log_dir = Path(tempfile.mkdtemp(prefix=f"switchboard-campaigns-{run_id}-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "BROKER_URL"}}
    env.update(
        DATABASE_URL=database_url_for(args.pg_url, db_name), REDIS_URL=args.redis_url,
        BROKER_KEYPREFIX=prefix, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=Fernet.generate_key().decode(), SWITCHBOARD_VAR_DIR=str(log_dir / "var"),
        LOG_LEVEL="WARNING", PORT=str(port), CAMPAIGN_MAX_RECIPIENTS=str(max(args.accept, 100_000)),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )  # fmt: skip
    env.pop("FLOWER_BASIC_AUTH", None)
    base = f"http://127.0.0.1:{port}"
    create_database(args.pg_url, db_name)
    engine = create_engine(env["DATABASE_URL"])
    stack = contextlib.ExitStack()
    try:
        run_cli(env, "db", "upgrade")
        keys = {}
        for name in ("campaigns", "other"):
            tenant = str(run_cli(env, "tenants", "create", "--name", name, *UNLIMITED_API)["id"])
            keys[name] = str(run_cli(env, "keys", "create", "--tenant", tenant)["key"])
            run_cli(env, "accounts", "create", "--tenant", tenant, "--provider", "sandbox",
                    "--sender", SENDER)  # fmt: skip
        root = stack.enter_context(pipeline(env, log_dir / "run.log"))
        n = args.recipients
        quiet_other: list[float] = []
        quiet_urgent: list[float] = []
        if not args.only_accept:
            say("1. the probes alone (20 s)")
            quiet = probes(base, keys["other"], keys["campaigns"], args.probe_every, 12025600000)
            time.sleep(20)
            quiet_other, quiet_urgent = finish(quiet, engine)

        say(f"2. {n} single POSTs from {args.connections} connections")
        numbers = [12025610000 + i for i in range(n) if not 1 <= (12025610000 + i) % 10000 <= 5]
        numbers = numbers[:n]
        started = time.monotonic()
        posting = singles(base, keys["campaigns"], numbers, args.connections)
        wait(engine, "SELECT count(*) FROM messages WHERE status = 'delivered' AND campaign_id "
             "IS NULL AND priority = 'bulk'", len(numbers), 1800)  # fmt: skip
        single_total = time.monotonic() - started
        single_rate = len(numbers) / single_total
        post_rate = len(numbers) / posting

        loud_other: list[float] = []
        loud_urgent: list[float] = []
        campaign_total = answered = campaign_rate = 0.0
        if not args.only_accept:
            say(f"3. the same {len(numbers)} as one campaign, with the probes running")
            loud = probes(base, keys["other"], keys["campaigns"], args.probe_every, 12025700000)
            started = time.monotonic()
            numbers3 = [x + 200000 for x in numbers]
            campaign_id, answered = campaign(
                base, keys["campaigns"], numbers3, "body=Late&name=bench"
            )
            wait(engine, "SELECT count(*) FROM messages WHERE campaign_id = :c AND status = "
                 "'delivered'", len(numbers3), 1800, c=campaign_id)  # fmt: skip
            campaign_total = time.monotonic() - started
            campaign_rate = len(numbers3) / campaign_total
            loud_other, loud_urgent = finish(loud, engine)

        say(f"4. {args.accept} recipients accepted (sent tomorrow)")
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        big = [13125000000 + i for i in range(args.accept)]
        web = {k: v for k, v in processes(root).items() if k.startswith("web worker")}
        before = rss_mb(web)
        peak = dict(before)
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                for name, mb in rss_mb(web).items():
                    peak[name] = max(peak.get(name, 0.0), mb)
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        big_id, big_answer = campaign(base, keys["campaigns"], big, f"body=Soon&send_at={tomorrow}")
        wait(engine, "SELECT count(*) FROM messages WHERE campaign_id = :c", len(big), 1800,
             c=big_id)  # fmt: skip
        accepted = time.monotonic() - started
        sampling.set()
        sampler.join()
        growth = max(peak[k] - before.get(k, peak[k]) for k in peak) if peak else 0.0
        single_equiv = len(big) / post_rate

        lines = [
            "",
            f"target 1: {len(big)} recipients accepted (202 and every message row written)",
            f"  campaign   202 in {big_answer:.1f} s, every row in {accepted:.1f} s; web "
            f"memory grew {growth:.0f} MB at most",
            f"  baseline   the same as single POSTs: {single_equiv:.0f} s (at the {post_rate:.0f}"
            " POST/s measured in step 2)",
            f"  {verdict(accepted <= 10 and growth <= 50)} target <= 10 s and <= 50 MB; "
            f"ratio {accepted / single_equiv:.3f}x",
        ]
        if args.only_accept:
            lines.append("(targets 2, 3 and 4 not run: --only-accept)")
        else:
            lines += [
                f"target 2: {len(numbers)} recipients, first request to all delivered",
                f"  campaign   {campaign_total:.1f} s = {campaign_rate:.0f} messages/s "
                f"(the 202 after {answered:.1f} s)",
                f"  baseline   single POSTs: {single_total:.1f} s = {single_rate:.0f} messages/s "
                f"(posting took {posting:.1f} s)",
                f"  {verdict(campaign_rate >= 150)} target >= 150 messages/s; "
                f"ratio {campaign_rate / single_rate:.2f}x",
                "target 3: another tenant's single messages, POST to dispatched",
                f"  during     {pcts(loud_other)}",
                f"  baseline   {pcts(quiet_other)}",
                f"  {verdict(p95(loud_other) < 2.0)} target p95 < 2 s",
                "target 4: the campaign tenant's urgent sends, POST to dispatched",
                f"  during     {pcts(loud_urgent)}",
                f"  baseline   {pcts(quiet_urgent)}",
                f"  {verdict(p95(loud_urgent) < 1.0)} target p95 < 1 s",
            ]
        for line in lines:
            say(line)
        return 0
    except SetupError as exc:
        say(f"setup failed: {exc} (logs in {log_dir})")
        return 1
    finally:
        stack.close()
        engine.dispose()
        delete_redis_keys(args.redis_url, prefix)
        drop_database(args.pg_url, db_name)


if __name__ == "__main__":
    raise SystemExit(main())
