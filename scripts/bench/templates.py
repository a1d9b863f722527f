"""Sending from a template beside a plain intent: intake's CPU per request.

    python scripts/bench/templates.py [--duration 10] [--rounds 3]

One fresh Postgres database and Redis prefix, one gunicorn (config/gunicorn.py)
serving the app. Each round loads ``POST /v1/messages`` three ways, one after the
other, for ``--duration`` seconds at 16 connections (after a warm-up):

- **plain**: a body (the baseline);
- **template**: an order-shipped template (string, number and date variables, an
  optional block), by name;
- **template + URL**: the same with a URL variable, shortened (one more row).

The server's CPU (its master and workers) per request, and p50/p95/p99, beside the
plain intent's of the same round. Target: a template adds at most 10% CPU.
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
import json
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

TARGET = 1.10
TEMPLATE = {
    "name": "order_shipped",
    "variables": {
        "name": {"type": "string", "max_length": 60},
        "total": {"type": "number", "decimals": 2},
        "day": {"type": "date", "format": "dmy"},
        "code": {"type": "string", "required": False},
        "link": {"type": "url", "required": False},
    },
    "default_locale": "en",
    "locales": {
        "en": {
            "sms": "Hi ((name)), your order of ((total)) ships on ((day))."
            "((code?? Code: ((code)).))((link?? Track: ((link))))"
        },
        "pt": {"sms": "Olá ((name)), seu pedido de ((total)) sai em ((day))."},
    },
}


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


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    run_id = secrets.token_hex(4)
    db_name, prefix = f"switchboard_bench_{run_id}", f"switchboard-bench-{run_id}:"
    log_dir = Path(tempfile.mkdtemp(prefix=f"switchboard-templates-{run_id}-"))
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "BROKER_URL", "PORT"}}
    env.update(
        DATABASE_URL=database_url_for(args.pg_url, db_name), REDIS_URL=args.redis_url,
        BROKER_KEYPREFIX=prefix, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=Fernet.generate_key().decode(), SWITCHBOARD_VAR_DIR=str(log_dir / "var"),
        PYTHONPATH=REPO_ROOT.as_posix(), LOG_LEVEL="WARNING", WEB_CONCURRENCY="2",
    )  # fmt: skip
    create_database(args.pg_url, db_name)
    results: dict[str, list[Figures]] = {"plain": [], "template": [], "template + URL": []}
    try:
        run_cli(env, "db", "upgrade")
        tenant = str(run_cli(env, "tenants", "create", "--name", "templates", *UNLIMITED_API)["id"])
        key = str(run_cli(env, "keys", "create", "--tenant", tenant)["key"])
        run_cli(
            env,
            "accounts",
            "create",
            "--tenant",
            tenant,
            "--provider",
            "sandbox",
            "--sender",
            "+12025550199",
        )
        spec = log_dir / "template.json"
        spec.write_text(json.dumps(TEMPLATE))
        run_cli(env, "templates", "create", "--tenant", tenant, "--file", str(spec))
        auth = {"Authorization": f"Bearer {key}"}
        to = "+12025550100"

        def plain(n: int) -> HttpRequest:
            body = f"Hi Ana, your order of 19.90 ships on 24/12/2026. Code: {n:06d}."
            return json_request("/v1/messages", {"to": to, "body": body}, auth)

        def template(n: int) -> HttpRequest:
            variables = {"name": "Ana", "total": 19.9, "day": "2026-12-24", "code": f"{n:06d}"}
            return json_request(
                "/v1/messages",
                {"to": to, "template": "order_shipped", "variables": variables},
                auth,
            )

        def with_url(n: int) -> HttpRequest:
            variables = {
                "name": "Ana",
                "total": 19.9,
                "day": "2026-12-24",
                "link": f"https://track.example/{n}",
            }
            return json_request(
                "/v1/messages",
                {"to": to, "template": "order_shipped", "variables": variables},
                auth,
            )

        server = Server("templates", "app:create_app()", "/healthz", env, log_dir)
        try:
            server.start(45)
            for n in range(args.rounds):
                for name, factory in (
                    ("plain", plain),
                    ("template", template),
                    ("template + URL", with_url),
                ):
                    say(f"  round {n + 1}: {name} for {args.duration:g} s")
                    results[name].append(load(server, factory, args))
        finally:
            server.stop()
    finally:
        with contextlib.suppress(Exception):
            drop_database(args.pg_url, db_name)
        with contextlib.suppress(Exception):
            delete_redis_keys(args.redis_url, prefix)
    print(
        f"\nSwitchboard template benchmark (run {run_id}): POST /v1/messages, "
        f"{args.rounds} rounds of {args.duration:g} s each at {args.concurrency} connections; "
        "CPU is the server's per request"
    )
    baseline = results["plain"]
    print(row("plain (baseline)", baseline, None, TARGET, "plain"))
    print(row("template", results["template"], baseline, TARGET, "plain"))
    print(row("template + URL", results["template + URL"], baseline, TARGET, "plain"))
    print(f"target: a template adds at most {TARGET - 1:.0%} to intake's CPU per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
