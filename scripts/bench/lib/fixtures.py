"""The run's throw-away database, Redis key prefix, settings and accounts, and their removal."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from cryptography.fernet import Fernet
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from app.providers.signing import generate_secret
from scripts.bench.apps.floor_app import SCHEMA_SQL as FLOOR_SCHEMA_SQL
from scripts.bench.lib.common import REPO_ROOT, SetupError, find_executable, say
from scripts.bench.lib.options import Options

SENDER = "+12025550199"
# The benchmark measures the path, not the per-tenant request limit (which still runs).
UNLIMITED_API = ("--api-rate-limit", "1000000", "--api-burst", "1000000")
# Inherited variables that would change what the servers under test do.
STRIPPED_ENV = (
    "DATABASE_URL",
    "REDIS_URL",
    "BROKER_URL",
    "BROKER_KEYPREFIX",
    "ENCRYPTION_KEYS",
    "BLIND_INDEX_KEY",
    "PORT",
    "WEB_CONCURRENCY",
    "WEB_THREADS",
    "PUBLIC_BASE_URL",
    "SENTRY_DSN",
    "SWITCHBOARD_VAR_DIR",
    "MAX_BODY_BYTES",
    "LOG_LEVEL",
    "GUNICORN_CMD_ARGS",
)


@dataclass
class Environment:
    run_id: str
    db_name: str
    db_url: str
    redis_prefix: str
    env: dict[str, str]
    log_dir: Path
    account_id: str = ""
    api_key: str = ""
    webhook_secret: str = ""
    tenant_id: str = ""
    twilio_account_id: str = ""
    twilio_token: str = ""


@contextlib.contextmanager
def engine_for(url: str, **kwargs: Any) -> Iterator[Engine]:
    """A pool-less engine, disposed of on the way out."""
    engine = create_engine(url, poolclass=NullPool, **kwargs)
    try:
        yield engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def admin_connection(pg_url: str) -> Iterator[Connection]:
    """An autocommit connection, as CREATE / DROP DATABASE need."""
    with engine_for(pg_url, isolation_level="AUTOCOMMIT") as engine, engine.connect() as conn:
        yield conn


def create_database(pg_url: str, name: str) -> None:
    with admin_connection(pg_url) as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))


def drop_database(pg_url: str, name: str) -> None:
    with admin_connection(pg_url) as conn:
        if (conn.dialect.server_version_info or (0,)) >= (13,):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        else:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


def delete_redis_keys(redis_url: str, prefix: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        deleted = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(client.delete(*batch))
                batch = []
        if batch:
            deleted += int(client.delete(*batch))
        return deleted
    finally:
        client.close()


def database_url_for(pg_url: str, name: str) -> str:
    url: URL = make_url(pg_url).set(drivername="postgresql+psycopg2", database=name)
    return url.render_as_string(hide_password=False)


def run_cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run ``switchboard ... --json`` and return its JSON answer."""
    cmd = [find_executable("switchboard"), *args, "--json"]
    proc = subprocess.run(
        cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    what = " ".join(args[:2])
    if proc.returncode != 0:
        raise SetupError(
            f"switchboard {what} failed ({proc.returncode}):\n{proc.stderr.strip()[-2000:]}"
        )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    try:
        data: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise SetupError(f"switchboard {what} printed no JSON: {proc.stdout!r}") from None
    return data


def new_environment(opts: Options) -> Environment:
    """Names and settings for this run; only the log directory exists yet."""
    run_id = secrets.token_hex(4)
    log_dir = Path(tempfile.mkdtemp(prefix=f"switchboard-bench-{run_id}-"))
    db_name = f"switchboard_bench_{run_id}"
    redis_prefix = f"switchboard-bench-{run_id}:"
    db_url = database_url_for(opts.pg_url, db_name)

    env = {k: v for k, v in os.environ.items() if k not in STRIPPED_ENV}
    pythonpath = os.environ.get("PYTHONPATH")
    env.update(
        DATABASE_URL=db_url,
        REDIS_URL=opts.redis_url,
        BROKER_KEYPREFIX=redis_prefix,
        ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=Fernet.generate_key().decode(),
        WEB_CONCURRENCY=str(opts.workers),
        **({"WEB_THREADS": str(opts.threads)} if opts.threads else {}),
        LOG_LEVEL=opts.log_level,
        SWITCHBOARD_VAR_DIR=str(log_dir / "var"),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), pythonpath) if p),
    )
    return Environment(run_id, db_name, db_url, redis_prefix, env, log_dir)


def prepare(opts: Options, envir: Environment, cleanups: contextlib.ExitStack) -> None:
    """Make the run's database, schema, Redis prefix, tenant, key and sandbox account.

    Each thing made registers its removal on ``cleanups`` as soon as it exists.
    """
    run_id, db_name, prefix, env = envir.run_id, envir.db_name, envir.redis_prefix, envir.env
    say(f"run {run_id}: database {db_name}, Redis prefix {prefix!r}, logs in {envir.log_dir}")
    try:
        with redis.Redis.from_url(opts.redis_url) as client:
            client.ping()
    except redis.RedisError as exc:
        raise SetupError(f"cannot reach Redis at {opts.redis_url}: {exc}") from None
    cleanups.callback(_remove_redis_keys, opts.redis_url, prefix)
    try:
        create_database(opts.pg_url, db_name)
    except Exception as exc:
        raise SetupError(f"cannot create database {db_name}: {exc}") from None
    cleanups.callback(_remove_database, opts.pg_url, db_name)

    say("  migrating (switchboard db upgrade)")
    run_cli(env, "db", "upgrade")
    with engine_for(envir.db_url) as engine, engine.begin() as conn:
        conn.execute(text(FLOOR_SCHEMA_SQL))

    say("  creating tenant, API key, sandbox and Twilio accounts (switchboard CLI)")
    tenant_id = str(
        run_cli(env, "tenants", "create", "--name", f"bench {run_id}", *UNLIMITED_API)["id"]
    )
    envir.api_key = str(run_cli(env, "keys", "create", "--tenant", tenant_id)["key"])
    envir.webhook_secret = generate_secret()
    account = run_cli(
        env,
        "accounts",
        "create",
        "--tenant",
        tenant_id,
        "--provider",
        "sandbox",
        "--channels",
        "sms",
        "--sender",
        SENDER,
        "--webhook-secret",
        envir.webhook_secret,
    )
    envir.account_id = str(account["id"])
    envir.tenant_id = tenant_id
    envir.twilio_token = secrets.token_hex(16)
    twilio = run_cli(
        env,
        "accounts",
        "create",
        "--tenant",
        tenant_id,
        "--provider",
        "twilio",
        "--sender",
        SENDER,
        "--account-sid",
        "AC" + "0" * 32,
        "--auth-token",
        envir.twilio_token,
        "--base-url",
        "http://127.0.0.1:9",  # nothing is sent in this benchmark
    )
    envir.twilio_account_id = str(twilio["id"])


def _remove_redis_keys(redis_url: str, prefix: str) -> None:
    with _warning_on_failure(f"delete Redis keys under {prefix!r}"):
        say(f"  deleted {delete_redis_keys(redis_url, prefix)} Redis keys under {prefix!r}")


def _remove_database(pg_url: str, name: str) -> None:
    with _warning_on_failure(f"drop database {name}"):
        drop_database(pg_url, name)
        say(f"  dropped database {name}")


@contextlib.contextmanager
def _warning_on_failure(what: str) -> Iterator[None]:
    """Clean-up goes on after a failed step: report it as a warning instead of raising."""
    try:
        yield
    except Exception as exc:
        say(f"  WARNING: could not {what}: {exc}")
