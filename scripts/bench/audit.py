"""What the audit chain's writes cost intake: server CPU per request, with and without.

    python scripts/bench/audit.py [--duration 10] [--rounds 3]

One fresh Postgres database and Redis prefix; two gunicorns (config/gunicorn.py) on it:
the app as it ships, and the same app with ``audit.append`` a no-op
(scripts/bench/apps/audit_off_app.py), the baseline. Each round loads, for ``--duration``
seconds at 16 connections after a warm-up, on each server in turn:

- ``POST /v1/consents``: an opt-in for a new number each request. Every consent record
  appends one event to the tenant's chain (one head row locked, one row inserted);
- the same at one connection: no two requests wait on the chain's head row, so the
  figure is the writes' CPU alone (at 16 connections, the tenant's consents queue on it);
- ``POST /v1/messages``: a send intent, which writes no audit event (the control).

It prints the server CPU (master and workers) per request, req/s and p50/p95/p99 of each,
beside the run without audit writes of the same round. Target: audit writes add at most 5%
to intake's CPU per request.
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

from cryptography.fernet import Fernet

from scripts.bench.lib.common import REPO_ROOT, say
from scripts.bench.lib.cpu_ab import Figures, load, row
from scripts.bench.lib.fixtures import (
    UNLIMITED_API,
    create_database,
    database_url_for,
    delete_redis_keys,
    drop_database,
    run_cli,
)
from scripts.bench.lib.loadgen import HttpRequest
from scripts.bench.lib.servers import Server
from scripts.bench.lib.targets import json_request

TARGET = 1.05


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--pg-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args(argv)


def phone(n: int) -> str:
    """A distinct valid US number for each n below 7 million."""
    return f"+1202{200 + n // 10000 % 700:03d}{n % 10000:04d}"


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    run_id = secrets.token_hex(4)
    db_name, prefix = f"switchboard_bench_{run_id}", f"switchboard-bench-{run_id}:"
    log_dir = Path(tempfile.mkdtemp(prefix=f"switchboard-audit-{run_id}-"))
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "BROKER_URL", "PORT"}}
    env.update(
        DATABASE_URL=database_url_for(args.pg_url, db_name), REDIS_URL=args.redis_url,
        BROKER_KEYPREFIX=prefix, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=Fernet.generate_key().decode(), SWITCHBOARD_VAR_DIR=str(log_dir / "var"),
        PYTHONPATH=REPO_ROOT.as_posix(), LOG_LEVEL="WARNING", WEB_CONCURRENCY="2",
    )  # fmt: skip
    create_database(args.pg_url, db_name)
    names = (
        "consents",
        "consents, no audit",
        "consents x1",
        "consents x1, no audit",
        "messages",
        "messages, no audit",
    )
    results: dict[str, list[Figures]] = {name: [] for name in names}
    counter = iter(range(10**7))
    try:
        run_cli(env, "db", "upgrade")
        tenant = str(run_cli(env, "tenants", "create", "--name", "audit", *UNLIMITED_API)["id"])
        scopes = "messages:write,consents:write"
        key = str(run_cli(env, "keys", "create", "--tenant", tenant, "--scopes", scopes)["key"])
        run_cli(
            env, "accounts", "create", "--tenant", tenant, "--provider", "sandbox",
            "--sender", "+12025550199",
        )  # fmt: skip
        auth = {"Authorization": f"Bearer {key}"}

        def consent(_n: int) -> HttpRequest:
            body = {
                "phone": phone(next(counter)),
                "channel": "sms",
                "status": "opted_in",
                "source": "api",
            }
            return json_request("/v1/consents", body, auth)

        def message(n: int) -> HttpRequest:
            return json_request("/v1/messages", {"to": "+12025550100", "body": f"n {n}"}, auth)

        with_audit = Server("audit", "app:create_app()", "/healthz", env, log_dir)
        without = Server(
            "no-audit", "scripts.bench.apps.audit_off_app:create_app()", "/healthz", env, log_dir
        )
        try:
            with_audit.start(45)
            without.start(45)
            single = argparse.Namespace(**{**vars(args), "concurrency": 1})
            for n in range(args.rounds):
                for name, server, factory, how in (
                    ("consents", with_audit, consent, args),
                    ("consents, no audit", without, consent, args),
                    ("consents x1", with_audit, consent, single),
                    ("consents x1, no audit", without, consent, single),
                    ("messages", with_audit, message, args),
                    ("messages, no audit", without, message, args),
                ):
                    say(f"  round {n + 1}: {name} for {args.duration:g} s")
                    results[name].append(load(server, factory, how))
        finally:
            with_audit.stop()
            without.stop()
    finally:
        with contextlib.suppress(Exception):
            drop_database(args.pg_url, db_name)
        with contextlib.suppress(Exception):
            delete_redis_keys(args.redis_url, prefix)
    print(
        f"\nSwitchboard audit benchmark (run {run_id}): {args.rounds} rounds of "
        f"{args.duration:g} s each at {args.concurrency} connections (x1: at one); CPU is the "
        "server's per request"
    )
    for target in ("consents", "consents x1", "messages"):
        base = results[f"{target}, no audit"]
        print(row(f"{target}, no audit (baseline)", base, None, TARGET, "no audit"))
        print(row(target, results[target], base, TARGET, "no audit"))
    print(f"target: audit writes add at most {TARGET - 1:.0%} to intake's CPU per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
