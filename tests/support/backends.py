"""Per-run backends: a fresh Postgres database and Redis key prefix, or embedded SQLite files.

Nothing depends on leftovers: each run makes its own database and cleans its
own Redis keys at the end.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# SWITCHBOARD_TEST_BROKER=amqp runs the broker on RabbitMQ, in a virtual host of the run's own.
TEST_AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")

# Fast cadences so the suite waits on beat for fractions of a second, not minutes.
FAST = {
    "RELEASE_INTERVAL": "0.5",
    "OUTBOX_RELAY_INTERVAL": "1",
    "OUTBOX_RELAY_GRACE": "1",
    "EXPIRE_INTERVAL": "1",
    "INBOX_REDRIVE_INTERVAL": "1",
    "CAMPAIGN_INTERVAL": "1",
    "RETRY_BASE_SECONDS": "0.5",
    "RETRY_MAX_SECONDS": "2",
    "LOG_LEVEL": "INFO",
    # Stopping a busy worker at the end of a test need not take the production 20 s.
    "WORKER_SOFT_SHUTDOWN_SECONDS": "2",
    # Tests change tenants in the database and send at once; test_key_cache.py turns it on.
    "AUTH_CACHE_SECONDS": "0",
    # Several pipelines run at once against one Postgres (100 connections by default), each of
    # five processes or more: each keeps two connections open and opens more only for a burst.
    "DATABASE_POOL_SIZE": "2",
    "DATABASE_MAX_OVERFLOW": "20",
}


# One set of keys for every backend of a run: the keyring is per process, and a test that
# starts a pipeline of its own must not leave this process encrypting with other keys.
RUN_KEYS = {
    "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "BLIND_INDEX_KEY": secrets.token_urlsafe(32),
}


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


def choose_kind() -> str:
    wanted = os.environ.get("SWITCHBOARD_TEST_BACKEND", "auto")
    if wanted not in {"auto", "postgres", "embedded"}:
        raise RuntimeError("SWITCHBOARD_TEST_BACKEND must be auto, postgres or embedded")
    if wanted != "auto":
        return wanted
    return "postgres" if reachable(ADMIN_PG_URL) and reachable(TEST_REDIS_URL) else "embedded"


@dataclass
class Backend:
    kind: str
    env: dict[str, str]
    var_dir: Path
    database_name: str | None = None
    redis_prefix: str | None = None
    amqp_vhost: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgres"

    def process_env(self) -> dict[str, str]:
        """The environment for subprocesses: ours, minus anything that would point elsewhere."""
        base = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "REDIS_URL", "BROKER_URL", "PUBLIC_BASE_URL", "PORT"}
        }
        return {**base, **self.env}


def _migrate(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["url"] = database_url
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")


def create_backend(tmp_dir: Path) -> Backend:
    kind = choose_kind()
    env = {
        **FAST,
        "SWITCHBOARD_VAR_DIR": str(tmp_dir / "var"),
        **RUN_KEYS,
    }
    (tmp_dir / "var").mkdir(parents=True, exist_ok=True)
    if kind == "embedded":
        backend = Backend("embedded", env, tmp_dir / "var")
        _migrate(f"sqlite:///{tmp_dir / 'var' / 'switchboard.db'}")
        return backend

    import psycopg2

    name = f"switchboard_test_{secrets.token_hex(4)}"
    conn = psycopg2.connect(ADMIN_PG_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    admin = urlsplit(ADMIN_PG_URL)
    database_url = admin._replace(path=f"/{name}").geturl()
    prefix = f"sbtest-{secrets.token_hex(4)}:"
    env.update(
        {"DATABASE_URL": database_url, "REDIS_URL": TEST_REDIS_URL, "BROKER_KEYPREFIX": prefix}
    )
    vhost = None
    if os.environ.get("SWITCHBOARD_TEST_BROKER") == "amqp":
        vhost = f"sbtest-{secrets.token_hex(4)}"
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        env["BROKER_URL"] = f"{TEST_AMQP_URL}/{vhost}"
    _migrate(database_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    return Backend(
        "postgres", env, tmp_dir / "var", database_name=name, redis_prefix=prefix, amqp_vhost=vhost
    )


def _rabbitmqctl(*args: str) -> None:
    import subprocess

    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def destroy_backend(backend: Backend) -> None:
    if not backend.is_postgres:
        return
    import psycopg2
    import redis

    conn = psycopg2.connect(ADMIN_PG_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{backend.database_name}" WITH (FORCE)')
    conn.close()
    client = redis.Redis.from_url(TEST_REDIS_URL)
    keys = list(client.scan_iter(match=f"{backend.redis_prefix}*", count=1000))
    # kombu also keeps unprefixed bindings for our queues; they carry the prefix in their name.
    if keys:
        client.delete(*keys)
    client.close()
    if backend.amqp_vhost is not None:
        _rabbitmqctl("delete_vhost", backend.amqp_vhost)
