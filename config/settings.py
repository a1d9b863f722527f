"""Every setting Switchboard reads, parsed and validated from the environment.

Nothing else in the code base reads ``os.environ``. A bad value stops the
process at start-up with a message that names the variable.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography.fernet import Fernet


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


DEFAULT_STUCK_SLAS: dict[str, float] = {
    "pending": 60,
    "scheduled": 300,  # past its due time, not released
    "queued": 300,
    "dispatched": 120,
    "accepted": 3600,
    "sent": 86400,
}


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one Switchboard process."""

    embedded: bool
    database_url: str
    broker_url: str
    redis_url: str | None
    encryption_keys: tuple[str, ...]
    blind_index_key: bytes
    public_base_url: str
    var_dir: Path
    port: int = 5000
    web_concurrency: int = 2
    # Threads per gunicorn worker (gthread): a request waits on Postgres and Redis in turn.
    web_threads: int = 4
    # Connections each process keeps open to Postgres (None: max(10, WORKER_CONCURRENCY)), and
    # how many more it may open for a burst and close after: keep every process's sum under the
    # server's max_connections.
    database_pool_size: int | None = None
    database_max_overflow: int = 10
    max_body_bytes: int = 64 * 1024
    sentry_dsn: str | None = None
    sentry_environment: str = "production"
    flower_basic_auth: str | None = None
    flower_port: int = 5555
    log_level: str = "INFO"
    redis_tls_verify: bool = False
    broker_visibility_timeout: int = 3600
    # Beat cadence, in seconds: how often each maintenance job runs.
    outbox_relay_interval: float = 5.0
    outbox_relay_grace: float = 10.0
    # Beat hands due scheduled messages (send_at, quiet hours, retries) on this often.
    release_interval: float = 1.0
    expire_interval: float = 30.0
    inbox_redrive_interval: float = 15.0
    # Retry policy for provider errors (database-held backoff with full jitter).
    max_attempts: int = 5
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 900.0
    default_ttl_seconds: int = 24 * 3600
    # Webhook dedupe: processed inbox rows are kept this long (past providers' retry windows).
    webhook_dedupe_hours: int = 96
    inbox_purge_interval: float = 3600.0
    # How long a message may stay in each non-final state before it counts as stuck (seconds).
    stuck_slas: tuple[tuple[str, float], ...] = tuple(DEFAULT_STUCK_SLAS.items())
    reconcile_interval: float = 60.0
    # The worker pool, chosen by measurement (scripts/bench/dispatch.py): dispatch waits on
    # provider HTTP, and threads overlapped that wait twice as well as prefork on 2 cores.
    worker_pool: str = "threads"
    worker_concurrency: int = 16
    # On SIGTERM, running tasks get this long before the worker gives the rest back (Heroku: 30).
    worker_soft_shutdown_seconds: float = 20.0
    # An inbox row never deferred yet unprocessed this long after arrival lost its task.
    inbox_lost_after_seconds: float = 600.0
    # POST /v1/messages per tenant: requests a second, and the burst (a tenant may override).
    tenant_api_rate: float = 100.0
    tenant_api_burst: float = 200.0
    # API keys and their tenants are cached this long per process (0: off): a revoked key,
    # or a tenant's changed settings, reach the API within this many seconds.
    auth_cache_seconds: int = 5
    # Channel accounts (credentials decrypted) and their active webhook secrets are cached
    # this long per process for the webhook route (0: off). A secret added by a rotation
    # verifies at once (a failed verification reloads once); one deactivated, and a
    # changed auth token, stop verifying within this many seconds.
    account_cache_seconds: int = 30
    # The embedded (SQLite) broker is polled this often when its queues are empty.
    embedded_broker_poll_seconds: float = 0.1
    # Namespaces every broker key (kombu's global_keyprefix): several deployments, one Redis.
    broker_keyprefix: str | None = None
    # CRM syncs: beat re-drives due ones and sweeps for missing ones this often; a sync not
    # done within the SLA is reported stuck; 5xx and timeouts back off (base doubling to the
    # max, jittered) for up to this many attempts (about three hours), then dead-letter.
    crm_sync_interval: float = 10.0
    crm_sync_sla_seconds: float = 600.0
    crm_max_attempts: int = 40
    crm_retry_base_seconds: float = 2.0
    crm_retry_max_seconds: float = 300.0
    crm_sweep_window_seconds: float = 24 * 3600.0
    # A claimed CRM sync, and a connection's drain, are handed on when a worker holding
    # them is lost this long (longer than a batch's calls at their timeouts take).
    crm_lease_seconds: float = 120.0
    # Batch hot paths: a dispatch claims up to this many queued messages of one lane in one
    # statement (fair between tenants); a receipts batch applies up to this many inbox rows.
    dispatch_batch_size: int = 100
    receipt_batch_size: int = 200
    # Sends in flight at once per worker process (also how many messages it may hold claimed
    # but not yet sent), and per channel account within it. 256 measured 1.3x the rate of
    # 128 with a provider answering in 50 ms (scripts/bench/dispatch.py).
    send_concurrency: int = 256
    send_concurrency_per_account: int = 64
    # A drain task keeps claiming full batches for at most this long, then hands on.
    drain_seconds: float = 5.0
    # "fair" shares each batch between tenants by weight; "fifo" takes the oldest first,
    # whatever the tenant (kept to measure fairness against).
    dispatch_claim_order: str = "fair"
    # Analytics: beat recomputes the last ANALYTICS_ROLLUP_HOURS hours this often.
    analytics_rollup_interval: float = 60.0
    analytics_rollup_hours: int = 3
    # The console's session cookie: signed with this key (derived from BLIND_INDEX_KEY when
    # unset), sent over HTTPS only when PUBLIC_BASE_URL is https (or CONSOLE_SECURE_COOKIES).
    console_secret_key: str = ""
    console_secure_cookies: bool = False
    console_session_minutes: int = 60
    # Sign-in: this many failures in a row lock a console user out for CONSOLE_LOCKOUT_MINUTES.
    console_max_failures: int = 5
    console_lockout_minutes: int = 15
    # /metrics: answers only with "Authorization: Bearer <METRICS_TOKEN>" (404 when unset).
    metrics_token: str | None = None
    # Gauges read from the database at scrape time are cached this long per process.
    metrics_cache_seconds: float = 10.0
    # prometheus-client's multiprocess mode: every process (web workers, Celery workers)
    # writes its samples here and /metrics merges them. None: this process's samples only.
    metrics_dir: Path | None = None
    # The audit chain's checkpoints are signed with this Ed25519 key (32 bytes; derived from
    # BLIND_INDEX_KEY when AUDIT_SIGNING_KEY is unset), every AUDIT_CHECKPOINT_INTERVAL
    # seconds. AUDIT_VERIFY_KEYS: public keys of retired signing keys, still trusted.
    # The blind index's previous key, while it is re-keyed (`keys rotate --blind-index`):
    # lookups by number match either index; new rows get BLIND_INDEX_KEY's.
    blind_index_previous_key: bytes | None = None
    audit_signing_key: bytes = b""
    audit_verify_keys: tuple[str, ...] = ()
    audit_checkpoint_interval: float = 300.0
    # OAuth 2.0 access tokens: JWTs signed (HS256) with this secret (derived from
    # BLIND_INDEX_KEY when OAUTH_TOKEN_SECRET is unset), valid OAUTH_TOKEN_SECONDS.
    oauth_token_secret: str = ""
    oauth_token_seconds: int = 900
    # Beat applies each tenant's privacy mode (bodies, webhook payloads) this often.
    privacy_interval: float = 30.0
    # Campaigns: recipients made into messages per transaction; how often beat wakes the
    # expansion of a running campaign; the most recipients one campaign takes, and the
    # largest upload (a CSV of 100,000 rows is a few megabytes); how many batches of one
    # campaign (without a rate of its own) are made at once on Postgres.
    campaign_batch_size: int = 2000
    campaign_parallel: int = 2
    campaign_interval: float = 10.0
    campaign_max_recipients: int = 100_000
    campaign_max_bytes: int = 32 * 1024 * 1024

    @property
    def stuck_sla(self) -> dict[str, float]:
        return dict(self.stuck_slas)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def broker_transport_options(self) -> dict[str, Any]:
        """Options every process (web, worker, beat, flower) must share."""
        # Establishing a channel gives up after one quick retry: the web process must
        # answer within milliseconds when the broker is down (the outbox keeps the task),
        # and workers reconnect through Celery's own consumer retry loop.
        opts: dict[str, Any] = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
        if self.broker_url.startswith(("redis://", "rediss://")):
            opts["visibility_timeout"] = self.broker_visibility_timeout
            if self.broker_keyprefix:
                opts["global_keyprefix"] = self.broker_keyprefix
        if self.broker_url.startswith("sqla+"):
            # kombu hands every sqla option to create_engine (the polling interval is
            # app.infra.embedded_broker's); let SQLite wait for its lock instead of failing.
            opts["connect_args"] = {"timeout": 30}
        return opts

    @property
    def broker_use_ssl(self) -> dict[str, Any] | None:
        if not self.broker_url.startswith("rediss://"):
            return None
        return {"ssl_cert_reqs": ssl.CERT_REQUIRED if self.redis_tls_verify else ssl.CERT_NONE}


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _metrics_token(env: Mapping[str, str]) -> str | None:
    raw = (env.get("METRICS_TOKEN") or "").strip()
    if raw and len(raw) < 16:
        raise ConfigError("METRICS_TOKEN must be at least 16 characters")
    return raw or None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def normalize_database_url(url: str) -> str:
    """Accept Heroku's ``postgres://`` form and pin the psycopg2 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    if not url.startswith(("postgresql+psycopg2://", "sqlite://")):
        raise ConfigError(
            f"DATABASE_URL must be a postgres:// or sqlite:// URL, got scheme {url.split(':')[0]!r}"
        )
    return url


def normalize_redis_url(url: str, verify: bool) -> str:
    """Make a ``rediss://`` URL carry its certificate policy for redis-py and kombu.

    Heroku Redis presents a self-signed certificate, so verification is off
    unless REDIS_TLS_VERIFY says otherwise.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"}:
        raise ConfigError(f"REDIS_URL must be redis:// or rediss://, got {parts.scheme!r}")
    if parts.scheme == "redis":
        return url
    query = dict(parse_qsl(parts.query))
    query.setdefault("ssl_cert_reqs", "required" if verify else "none")
    return urlunsplit(parts._replace(query=urlencode(query)))


def _stuck_slas(env: Mapping[str, str]) -> tuple[tuple[str, float], ...]:
    """``STUCK_SLAS=queued=300,dispatched=120``: overrides per state, in seconds."""
    slas = dict(DEFAULT_STUCK_SLAS)
    raw = env.get("STUCK_SLAS", "").strip()
    for part in filter(None, (p.strip() for p in raw.split(","))):
        state, _, value = part.partition("=")
        if state.strip() not in DEFAULT_STUCK_SLAS:
            raise ConfigError(
                f"STUCK_SLAS: {state.strip()!r} is not one of {', '.join(DEFAULT_STUCK_SLAS)}"
            )
        try:
            seconds = float(value)
        except ValueError:
            raise ConfigError(f"STUCK_SLAS: {part!r} is not state=seconds") from None
        if seconds <= 0:
            raise ConfigError(f"STUCK_SLAS: {part!r} must be positive")
        slas[state.strip()] = seconds
    return tuple(slas.items())


def _fernet_keys(raw: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in raw.replace("\n", ",").split(",") if k.strip())
    if not keys:
        raise ConfigError("ENCRYPTION_KEYS is set but holds no key")
    for index, key in enumerate(keys):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ConfigError(
                f"ENCRYPTION_KEYS entry {index} is not a Fernet key "
                "(32 url-safe base64-encoded bytes; make one with `switchboard keys generate`)"
            ) from None
    return keys


LOCAL_RUN = "run.json"


def _local_run(var_dir: Path) -> dict[str, int]:
    """What ``scripts/run`` (``make run``) recorded of the pipeline it started: its web port."""
    try:
        data = json.loads((var_dir / LOCAL_RUN).read_text())
    except (OSError, ValueError):
        return {}
    port = data.get("port") if isinstance(data, dict) else None
    return {"port": port} if isinstance(port, int) and 0 < port < 65536 else {}


def _dev_secrets(var_dir: Path) -> dict[str, str]:
    """Development keys for the embedded default, made once and kept in ./var."""
    path = var_dir / "dev-secrets.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    var_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "encryption_key": Fernet.generate_key().decode(),
        "blind_index_key": Fernet.generate_key().decode(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.chmod(0o600)
    tmp.replace(path)  # atomic, so concurrent starters agree on one file
    return data


def _previous_blind(env: Mapping[str, str], current: str) -> bytes | None:
    raw = env.get("BLIND_INDEX_PREVIOUS_KEY", "").strip()
    if not raw:
        return None
    if len(raw) < 32:
        raise ConfigError("BLIND_INDEX_PREVIOUS_KEY must be at least 32 characters")
    if raw == current:
        raise ConfigError("BLIND_INDEX_PREVIOUS_KEY is BLIND_INDEX_KEY: give the old key")
    return raw.encode()


def _audit_key(env: Mapping[str, str], blind_raw: str) -> bytes:
    raw = env.get("AUDIT_SIGNING_KEY", "").strip()
    if not raw:
        return hmac.new(blind_raw.encode(), b"switchboard audit checkpoints", "sha256").digest()
    try:
        seed = base64.urlsafe_b64decode(raw.encode())
    except (ValueError, TypeError):
        seed = b""
    if len(seed) != 32:
        raise ConfigError(
            "AUDIT_SIGNING_KEY must be 32 bytes in url-safe base64 "
            "(make one with `switchboard audit keygen`)"
        )
    return seed


def _public_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in env.get("AUDIT_VERIFY_KEYS", "").split(",") if k.strip())
    for key in keys:
        try:
            ok = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise ConfigError(f"AUDIT_VERIFY_KEYS holds {key!r}, not a url-safe base64 Ed25519 key")
    return keys


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the configuration; raise ConfigError naming the bad variable."""
    env = os.environ if environ is None else environ
    var_dir = Path(env.get("SWITCHBOARD_VAR_DIR") or "var").resolve()
    database_url_raw = env.get("DATABASE_URL", "").strip()
    redis_url_raw = env.get("REDIS_URL", "").strip()
    broker_url_raw = env.get("BROKER_URL", "").strip()
    embedded = not database_url_raw and not redis_url_raw
    tls_verify = _bool(env, "REDIS_TLS_VERIFY", False)

    redis_url = normalize_redis_url(redis_url_raw, tls_verify) if redis_url_raw else None
    if embedded:
        var_dir.mkdir(parents=True, exist_ok=True)
        database_url = f"sqlite:///{var_dir / 'switchboard.db'}"
        broker_url = broker_url_raw or f"sqla+sqlite:///{var_dir / 'broker.db'}"
    else:
        if not database_url_raw:
            raise ConfigError("REDIS_URL is set, so DATABASE_URL must be set too")
        database_url = normalize_database_url(database_url_raw)
        if broker_url_raw:
            broker_url = broker_url_raw
        elif redis_url:
            broker_url = redis_url
        elif database_url.startswith("sqlite"):
            broker_url = f"sqla+sqlite:///{var_dir / 'broker.db'}"
        else:
            raise ConfigError("DATABASE_URL is set, so REDIS_URL (or BROKER_URL) must be set too")
        if broker_url.startswith("rediss://"):
            broker_url = normalize_redis_url(broker_url, tls_verify)

    keys_raw = env.get("ENCRYPTION_KEYS", "").strip()
    blind_raw = env.get("BLIND_INDEX_KEY", "").strip()
    production = database_url.startswith("postgresql")
    if production and not keys_raw:
        raise ConfigError(
            "ENCRYPTION_KEYS is required with a Postgres DATABASE_URL "
            "(comma-separated Fernet keys; the first encrypts, all decrypt)"
        )
    if production and not blind_raw:
        raise ConfigError("BLIND_INDEX_KEY is required with a Postgres DATABASE_URL")
    if not keys_raw or not blind_raw:
        dev = _dev_secrets(var_dir)
        keys_raw = keys_raw or dev["encryption_key"]
        blind_raw = blind_raw or dev["blind_index_key"]
    if len(blind_raw) < 32:
        raise ConfigError("BLIND_INDEX_KEY must be at least 32 characters")

    # PUBLIC_BASE_URL, else from PORT, else where `make run` last put the web process (so a
    # second terminal's CLI finds a pipeline started with only PORT changed), else 5000.
    default_port = _local_run(var_dir).get("port", 5000)
    port = _int(env, "PORT", default_port, minimum=1, maximum=65535)
    public_base_url = (env.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{port}").rstrip("/")
    if not public_base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"PUBLIC_BASE_URL must start with http:// or https://, got {public_base_url!r}"
        )

    flower_auth = env.get("FLOWER_BASIC_AUTH") or None
    if flower_auth is not None and ":" not in flower_auth:
        raise ConfigError("FLOWER_BASIC_AUTH must look like user:password")

    log_level = (env.get("LOG_LEVEL") or "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"LOG_LEVEL must be a logging level name, got {log_level!r}")

    return Settings(
        embedded=embedded,
        database_url=database_url,
        broker_url=broker_url,
        redis_url=redis_url,
        encryption_keys=_fernet_keys(keys_raw),
        blind_index_key=blind_raw.encode(),
        public_base_url=public_base_url,
        var_dir=var_dir,
        port=port,
        web_concurrency=_int(env, "WEB_CONCURRENCY", 2, minimum=1),
        web_threads=_int(env, "WEB_THREADS", 4, minimum=1, maximum=64),
        database_pool_size=(
            _int(env, "DATABASE_POOL_SIZE", 10, minimum=1, maximum=200)
            if env.get("DATABASE_POOL_SIZE")
            else None
        ),
        database_max_overflow=_int(env, "DATABASE_MAX_OVERFLOW", 10, minimum=0, maximum=200),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 64 * 1024, minimum=1024),
        sentry_dsn=env.get("SENTRY_DSN") or None,
        sentry_environment=env.get("SENTRY_ENVIRONMENT") or "production",
        flower_basic_auth=flower_auth,
        flower_port=_int(env, "FLOWER_PORT", port, minimum=1, maximum=65535),
        log_level=log_level,
        redis_tls_verify=tls_verify,
        broker_visibility_timeout=_int(env, "BROKER_VISIBILITY_TIMEOUT", 3600, minimum=60),
        embedded_broker_poll_seconds=_float(env, "EMBEDDED_BROKER_POLL_SECONDS", 0.1),
        auth_cache_seconds=_int(env, "AUTH_CACHE_SECONDS", 5, minimum=0, maximum=300),
        account_cache_seconds=_int(env, "ACCOUNT_CACHE_SECONDS", 30, minimum=0, maximum=300),
        outbox_relay_interval=_float(env, "OUTBOX_RELAY_INTERVAL", 5.0),
        outbox_relay_grace=_float(env, "OUTBOX_RELAY_GRACE", 10.0),
        release_interval=_float(env, "RELEASE_INTERVAL", 1.0),
        expire_interval=_float(env, "EXPIRE_INTERVAL", 30.0),
        inbox_redrive_interval=_float(env, "INBOX_REDRIVE_INTERVAL", 15.0),
        max_attempts=_int(env, "MAX_ATTEMPTS", 5, minimum=1),
        retry_base_seconds=_float(env, "RETRY_BASE_SECONDS", 5.0),
        retry_max_seconds=_float(env, "RETRY_MAX_SECONDS", 900.0),
        default_ttl_seconds=_int(env, "DEFAULT_TTL_SECONDS", 24 * 3600, minimum=1),
        webhook_dedupe_hours=_int(env, "WEBHOOK_DEDUPE_HOURS", 96, minimum=72),
        inbox_purge_interval=_float(env, "INBOX_PURGE_INTERVAL", 3600.0),
        broker_keyprefix=env.get("BROKER_KEYPREFIX") or None,
        stuck_slas=_stuck_slas(env),
        reconcile_interval=_float(env, "RECONCILE_INTERVAL", 60.0),
        worker_soft_shutdown_seconds=_float(env, "WORKER_SOFT_SHUTDOWN_SECONDS", 20.0),
        worker_pool=_choice(env, "WORKER_POOL", "threads", ("threads", "prefork", "solo")),
        worker_concurrency=_int(env, "WORKER_CONCURRENCY", 16, minimum=1, maximum=64),
        inbox_lost_after_seconds=_float(env, "INBOX_LOST_AFTER_SECONDS", 600.0),
        tenant_api_rate=_float(env, "TENANT_API_RATE", 100.0),
        tenant_api_burst=_float(env, "TENANT_API_BURST", 200.0),
        crm_sync_interval=_float(env, "CRM_SYNC_INTERVAL", 10.0),
        crm_sync_sla_seconds=_float(env, "CRM_SYNC_SLA_SECONDS", 600.0),
        crm_max_attempts=_int(env, "CRM_MAX_ATTEMPTS", 40, minimum=1),
        crm_retry_base_seconds=_float(env, "CRM_RETRY_BASE_SECONDS", 2.0),
        crm_retry_max_seconds=_float(env, "CRM_RETRY_MAX_SECONDS", 300.0),
        crm_sweep_window_seconds=_float(env, "CRM_SWEEP_WINDOW_SECONDS", 24 * 3600.0),
        crm_lease_seconds=_float(env, "CRM_LEASE_SECONDS", 120.0),
        dispatch_batch_size=_int(env, "DISPATCH_BATCH_SIZE", 100, minimum=1, maximum=1000),
        receipt_batch_size=_int(env, "RECEIPT_BATCH_SIZE", 200, minimum=1, maximum=1000),
        send_concurrency=_int(env, "SEND_CONCURRENCY", 256, minimum=1, maximum=1024),
        send_concurrency_per_account=_int(
            env, "SEND_CONCURRENCY_PER_ACCOUNT", 64, minimum=1, maximum=512
        ),
        drain_seconds=_float(env, "DRAIN_SECONDS", 5.0),
        dispatch_claim_order=_choice(env, "DISPATCH_CLAIM_ORDER", "fair", ("fair", "fifo")),
        analytics_rollup_interval=_float(env, "ANALYTICS_ROLLUP_INTERVAL", 60.0),
        analytics_rollup_hours=_int(env, "ANALYTICS_ROLLUP_HOURS", 3, minimum=1, maximum=24 * 7),
        console_secret_key=env.get("CONSOLE_SECRET_KEY")
        or hmac.new(blind_raw.encode(), b"switchboard console session", "sha256").hexdigest(),
        console_secure_cookies=_bool(
            env, "CONSOLE_SECURE_COOKIES", public_base_url.startswith("https://")
        ),
        console_session_minutes=_int(env, "CONSOLE_SESSION_MINUTES", 60, minimum=1),
        console_max_failures=_int(env, "CONSOLE_MAX_FAILURES", 5, minimum=1, maximum=100),
        console_lockout_minutes=_int(env, "CONSOLE_LOCKOUT_MINUTES", 15, minimum=1),
        metrics_token=_metrics_token(env),
        metrics_cache_seconds=_float(env, "METRICS_CACHE_SECONDS", 10.0),
        metrics_dir=Path(env["PROMETHEUS_MULTIPROC_DIR"]).resolve()
        if env.get("PROMETHEUS_MULTIPROC_DIR")
        else None,
        blind_index_previous_key=_previous_blind(env, blind_raw),
        audit_signing_key=_audit_key(env, blind_raw),
        audit_verify_keys=_public_keys(env),
        audit_checkpoint_interval=_float(env, "AUDIT_CHECKPOINT_INTERVAL", 300.0),
        oauth_token_secret=env.get("OAUTH_TOKEN_SECRET")
        or hmac.new(blind_raw.encode(), b"switchboard oauth tokens", "sha256").hexdigest(),
        oauth_token_seconds=_int(env, "OAUTH_TOKEN_SECONDS", 900, minimum=30, maximum=86400),
        privacy_interval=_float(env, "PRIVACY_INTERVAL", 30.0),
        campaign_batch_size=_int(env, "CAMPAIGN_BATCH_SIZE", 2000, minimum=1, maximum=5000),
        campaign_interval=_float(env, "CAMPAIGN_INTERVAL", 10.0),
        campaign_parallel=_int(env, "CAMPAIGN_PARALLEL", 2, minimum=1, maximum=8),
        campaign_max_recipients=_int(env, "CAMPAIGN_MAX_RECIPIENTS", 100_000, minimum=1),
        campaign_max_bytes=_int(env, "CAMPAIGN_MAX_BYTES", 32 * 1024 * 1024, minimum=1024),
    )
