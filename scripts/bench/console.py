"""The operator console, /metrics and analytics at a million stored messages.

    python scripts/bench/console.py [--seed 1000000] [--requests 100]

In one run, against one fresh Postgres database and Redis prefix, one gunicorn
(config/gunicorn.py) serving the app:

1. empty (the baseline): ``GET /console/`` (the overview, signed in as an admin),
   ``GET /metrics`` (gauges read at each scrape: the cache is off) and
   ``GET /v1/analytics`` (30 days by day), ``--requests`` times each, one at a time;
2. ``--seed`` messages of history (scripts/bench/lib/seed.py) with their events, then a
   live mix on top: held (quiet hours, retry, rate limit, send_at), queued per lane,
   in flight, with the provider, stuck, dead; VACUUM ANALYZE; the rollup of its
   30 days (timed: what beat's first run would do);
3. the same three measurements again.

Prints p50/p95/p99 seeded beside empty, and the ratio. Target: the overview answers
in under 300 ms (p99) at a million messages.
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
import re
import secrets
import tempfile
import time
from dataclasses import dataclass

import requests
from cryptography.fernet import Fernet
from sqlalchemy import text

from app import create_app
from app.infra.db import Database
from app.reports.analytics import rollup
from app.security.console_users import create_user
from config import load_settings
from scripts.bench.lib.common import REPO_ROOT, say
from scripts.bench.lib.fixtures import (
    UNLIMITED_API,
    create_database,
    database_url_for,
    delete_redis_keys,
    drop_database,
    run_cli,
)
from scripts.bench.lib.loadgen import percentile
from scripts.bench.lib.seed import seed_history
from scripts.bench.lib.servers import Server

TARGET_MS = 300.0
TOKEN = "bench-metrics-token-0123456789"
# The live part of the seeded database: (status, status_reason, priority, count, age).
LIVE_MIX = (
    ("scheduled", "quiet_hours", "normal", 20_000, "0 seconds"),
    ("scheduled", "retry", "normal", 2_000, "0 seconds"),
    ("scheduled", "rate_limit", "bulk", 5_000, "0 seconds"),
    ("scheduled", None, "normal", 10_000, "0 seconds"),
    ("queued", None, "bulk", 20_000, "20 seconds"),
    ("queued", None, "urgent", 200, "1 second"),
    ("queued", None, "normal", 1_000, "1 hour"),  # stuck
    ("dispatched", None, "normal", 500, "10 seconds"),
    ("accepted", None, "normal", 30_000, "1 minute"),
    ("sent", None, "normal", 20_000, "2 hours"),  # stuck past the accepted SLA
    ("failed", "retries_exhausted", "normal", 300, "1 day"),
)


@dataclass
class Timings:
    overview: list[float]
    metrics: list[float]
    analytics: list[float]


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1_000_000, help="messages of history")
    parser.add_argument("--requests", type=int, default=100, help="requests per figure")
    parser.add_argument(
        "--pg-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args(argv)


def sign_in(base: str, username: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/console/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    r = session.post(
        f"{base}/console/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        timeout=10,
        allow_redirects=False,
    )
    assert r.status_code == 302, r.text
    return session


def timed(session: requests.Session, url: str, n: int, **kwargs: object) -> list[float]:
    found = []
    for _ in range(3):  # warm-up
        session.get(url, timeout=30, **kwargs)  # type: ignore[arg-type]
    for _ in range(n):
        start = time.perf_counter()
        r = session.get(url, timeout=30, **kwargs)  # type: ignore[arg-type]
        found.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    return found


def measure(env: dict[str, str], who: tuple[str, str], key: str, n: int, tag: str) -> Timings:
    log_dir = Path(env["SWITCHBOARD_VAR_DIR"]).parent
    server = Server(f"console-{tag}", "app:create_app()", "/healthz", env, log_dir)
    try:
        server.start(45)
        base = server.base_url
        console = sign_in(base, *who)
        say(f"  {tag}: GET /console/, /metrics, /v1/analytics x {n}")
        overview = timed(console, f"{base}/console/", n)
        plain = requests.Session()
        metrics = timed(plain, f"{base}/metrics", n, headers={"Authorization": f"Bearer {TOKEN}"})
        analytics = timed(
            plain,
            f"{base}/v1/analytics?bucket=day&start="
            + time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 30 * 86400)),
            n,
            headers={"Authorization": f"Bearer {key}"},
        )
    finally:
        server.stop()
    return Timings(overview, metrics, analytics)


def live_mix(db: Database, tenant: str, account: str) -> int:
    """Turn the newest seeded messages into live ones, as LIVE_MIX says."""
    offset = 0
    with db.engine.begin() as conn:
        for status, reason, lane, count, age in LIVE_MIX:
            conn.execute(
                text(
                    """
UPDATE messages AS m SET status = :status, status_reason = :reason, priority = :lane,
       updated_at = now() - CAST(:age AS interval),
       next_attempt_at = CASE WHEN :status = 'scheduled' THEN now() + interval '2 hours' END,
       provider_message_id = CASE WHEN :status IN ('queued', 'scheduled') THEN NULL
                                  ELSE m.provider_message_id END
FROM (SELECT id FROM messages WHERE tenant_id = :tenant
      ORDER BY id DESC OFFSET :offset LIMIT :count) AS pick
WHERE m.id = pick.id
"""
                ),
                {"status": status, "reason": reason, "lane": lane, "age": age,
                 "tenant": tenant, "offset": offset, "count": count},
            )  # fmt: skip
            offset += count
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE messages"))
    return offset


def row(name: str, empty: list[float], seeded: list[float], target: float | None) -> str:
    e = sorted(empty)
    s = sorted(seeded)
    p = {q: (percentile(e, q), percentile(s, q)) for q in (50, 95, 99)}
    ratio = p[99][1] / p[99][0] if p[99][0] else float("nan")
    verdict = "" if target is None else ("HIT" if p[99][1] < target else "MISS")
    return (
        f"{name:<22} empty p50 {p[50][0]:6.1f} p95 {p[95][0]:6.1f} p99 {p[99][0]:6.1f} ms | "
        f"seeded p50 {p[50][1]:6.1f} p95 {p[95][1]:6.1f} p99 {p[99][1]:6.1f} ms | "
        f"p99 x{ratio:5.2f} {verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    run_id = secrets.token_hex(4)
    db_name, prefix = f"switchboard_bench_{run_id}", f"switchboard-bench-{run_id}:"
    log_dir = Path(tempfile.mkdtemp(prefix=f"switchboard-console-{run_id}-"))
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "BROKER_URL", "PORT"}}
    env.update(
        DATABASE_URL=database_url_for(args.pg_url, db_name), REDIS_URL=args.redis_url,
        BROKER_KEYPREFIX=prefix, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=Fernet.generate_key().decode(), SWITCHBOARD_VAR_DIR=str(log_dir / "var"),
        PYTHONPATH=REPO_ROOT.as_posix(), LOG_LEVEL="WARNING", WEB_CONCURRENCY="2",
        METRICS_TOKEN=TOKEN, METRICS_CACHE_SECONDS="0.000001",
    )  # fmt: skip
    create_database(args.pg_url, db_name)
    try:
        run_cli(env, "db", "upgrade")
        tenant = str(run_cli(env, "tenants", "create", "--name", "console", *UNLIMITED_API)["id"])
        key = str(
            run_cli(env, "keys", "create", "--tenant", tenant, "--scopes", "messages:read")["key"]
        )
        account = str(
            run_cli(
                env, "accounts", "create", "--tenant", tenant, "--provider", "sandbox",
                "--sender", "+12025550199",
            )["id"]
        )  # fmt: skip
        app = create_app({"settings": load_settings(env)})
        db: Database = app.extensions["switchboard.db"]
        who = ("bench-admin", secrets.token_urlsafe(16))
        with db.session() as s:
            create_user(s, who[0], who[1], "admin")
        empty = measure(env, who, key, args.requests, "empty")
        say(f"  seeding {args.seed:,} messages of history")
        took = seed_history(
            db.engine, tenant_id=tenant, account_id=account, messages=args.seed, progress=say
        )
        live = live_mix(db, tenant, account)
        say("  rolling up 30 days (720 hours) of analytics")
        start = time.monotonic()
        with db.session() as s:
            written = rollup(s, hours=24 * 31)
        rolled = time.monotonic() - start
        start = time.monotonic()
        with db.session() as s:
            rollup(s, hours=3)
        beat_run = time.monotonic() - start
        seeded = measure(env, who, key, args.requests, "seeded")
    finally:
        with contextlib.suppress(Exception):
            drop_database(args.pg_url, db_name)
        with contextlib.suppress(Exception):
            delete_redis_keys(args.redis_url, prefix)
    print(
        f"\nSwitchboard console benchmark (run {run_id}): empty database (the baseline), then "
        f"{args.seed:,} messages of history (seeded in {took:.0f} s), {live:,} of them live; "
        f"{args.requests} requests each, one at a time"
    )
    print(row("GET /console/", empty.overview, seeded.overview, TARGET_MS))
    print(row("GET /metrics (no cache)", empty.metrics, seeded.metrics, None))
    print(row("GET /v1/analytics 30d", empty.analytics, seeded.analytics, None))
    print(
        f"analytics rollup: 31 days in {rolled:.1f} s ({written} rows); "
        f"beat's run (the last 3 hours) in {beat_run * 1000:.0f} ms"
    )
    print(f"target: the overview's p99 under {TARGET_MS:.0f} ms at {args.seed:,} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
