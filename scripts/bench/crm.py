"""CRM benchmark: inbound webhook to CRM activity written, at a steady rate.

    python scripts/bench/crm.py [--rate 100] [--seconds 60] [--latency-ms 100]

Signed Twilio inbound messages are POSTed to gunicorn at ``--rate`` a second for
``--seconds``, each from a new number; an intake worker records them and owes
their CRM syncs; a crm worker writes them to the fake HubSpot, which answers every
call in ``--latency-ms``; beat runs as in production (re-drives, relays). Reported:
p50/p95/p99 from the webhook POST to the Communication created in HubSpot, beside
the baseline measured in the same run: one such sync's own HubSpot calls, made
in-process against the same fake (the floor no pipeline can beat). Target: p95
under 1 s. Everything it makes (database, Redis keys) is removed at the end.
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
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import urlencode

import requests
from cryptography.fernet import Fernet

from app.broker import QueueNames
from app.crm.base import MessageFacts, SyncRequest
from app.crm.hubspot import HubSpot
from app.providers import webhook_url
from scripts.bench.celery_worker import CeleryWorker
from scripts.bench.common import GUNICORN_CONFIG, REPO_ROOT, find_executable, say
from scripts.bench.fixtures import (
    create_database,
    database_url_for,
    delete_redis_keys,
    drop_database,
    run_cli,
)
from scripts.bench.loadgen import percentile
from scripts.bench.servers import free_port
from scripts.fake_hubspot import FakeHubSpot
from scripts.fake_twilio import FakeTwilio, sign

SENDER = "+12025550199"


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="inbound messages a second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--latency-ms", type=float, default=100.0, help="HubSpot's answer time")
    parser.add_argument("--crm-threads", type=int, default=64)
    parser.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the rest")
    parser.add_argument("--keep", action="store_true", help="keep the database, to look into")
    parser.add_argument(
        "--pg-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args(argv)


def pcts(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return tuple(percentile(ordered, p) * 1000 for p in (50, 95, 99))  # type: ignore[return-value]


def fmt(p: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.0f}" for v in p)


def baseline(hub: FakeHubSpot, samples: int = 20) -> tuple[float, float, float]:
    """One inbound message's sync, straight to the fake: the calls alone, no pipeline."""
    connector = HubSpot({"token": hub.token, "base_url": hub.base_url})
    took = []
    for n in range(samples):
        request = SyncRequest(
            action="log_message",
            external_id=f"baseline:{n}",
            phone=f"+1202555{9000 + n:04d}",
            message=MessageFacts(
                f"msg_baseline_{n}", "inbound", "sms", "hi", "received", None, datetime.now(UTC)
            ),
            first_try=True,  # as the pipeline's first try: no replay-guard search
        )
        start = time.monotonic()
        connector.apply(request)
        took.append(time.monotonic() - start)
    return pcts(took)


def start_web(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [find_executable("gunicorn"), "-c", GUNICORN_CONFIG, "app:create_app()"],
        cwd=REPO_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{env['PUBLIC_BASE_URL']}/healthz", timeout=1).ok:
                return proc
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"web did not start (log: {log})")


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    run_id = secrets.token_hex(4)
    db_name, prefix = f"switchboard_bench_{run_id}", f"switchboard-bench-{run_id}:"
    log_dir = Path(tempfile.mkdtemp(prefix=f"switchboard-crm-{run_id}-"))
    twilio = FakeTwilio(send_callbacks=False)
    hub = FakeHubSpot().start()
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "BROKER_URL"}}
    env.update(
        DATABASE_URL=database_url_for(args.pg_url, db_name), REDIS_URL=args.redis_url,
        BROKER_KEYPREFIX=prefix, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=Fernet.generate_key().decode(), SWITCHBOARD_VAR_DIR=str(log_dir / "var"),
        PYTHONPATH=REPO_ROOT.as_posix(), LOG_LEVEL="WARNING", PORT=str(port),
        PUBLIC_BASE_URL=app_url, TENANT_API_RATE="100000", TENANT_API_BURST="100000",
    )  # fmt: skip
    create_database(args.pg_url, db_name)
    procs: list[subprocess.Popen[bytes]] = []
    workers: list[CeleryWorker] = []
    try:
        say("baseline: one sync's HubSpot calls, in-process")
        hub.latency = args.latency_ms / 1000
        base = baseline(hub)
        with hub.lock:
            hub.objects = {"contacts": {}, "communications": {}}
            hub.created_ts.clear()
        run_cli(env, "db", "upgrade")
        tenant = str(run_cli(env, "tenants", "create", "--name", "bench")["id"])
        account = str(
            run_cli(
                env, "accounts", "create", "--tenant", tenant, "--provider", "twilio",
                "--sender", SENDER, "--account-sid", twilio.account_sid,
                "--auth-token", twilio.auth_token, "--base-url", "http://127.0.0.1:9",
            )["id"]
        )  # fmt: skip
        run_cli(
            env, "crm", "connect", "--tenant", tenant, "--kind", "hubspot",
            "--token", hub.token, "--base-url", hub.base_url,
        )  # fmt: skip
        procs.append(start_web(env, log_dir / "web.log"))
        beat = [find_executable("celery"), "-A", "workers.main", "beat", "--loglevel", "WARNING"]
        beat_log = (log_dir / "beat.log").open("wb")
        procs.append(
            subprocess.Popen(
                beat,
                cwd=REPO_ROOT,
                env=env,
                stdout=beat_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        workers.append(
            CeleryWorker(env, log_dir / "intake.log", "workers.main",
                         [QueueNames.INTAKE, QueueNames.MAINTENANCE], "threads", 16)
        )  # fmt: skip
        workers.append(
            CeleryWorker(env, log_dir / "crm.log", "workers.main", [QueueNames.CRM],
                         "threads", args.crm_threads)
        )  # fmt: skip
        url = webhook_url(app_url, "twilio", account)
        total = int(args.rate * args.seconds)
        sent: dict[str, float] = {}
        doubled = 0
        answers: list[float] = []
        errors: list[int] = []
        local = threading.local()

        def post(n: int) -> None:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            token = f"bench-{run_id}-{n}"
            params = {
                "MessageSid": f"SM{run_id}{n:024x}", "AccountSid": twilio.account_sid,
                "From": f"+1202555{n % 10000:04d}", "To": SENDER, "Body": token,
                "NumMedia": "0", "SmsStatus": "received",
            }  # fmt: skip
            headers = {
                "X-Twilio-Signature": sign(twilio.auth_token, url, params),
                "Content-Type": "application/x-www-form-urlencoded",
            }
            start = time.time()
            sent[token] = start
            r = session.post(url, data=urlencode(params), headers=headers, timeout=30)
            answers.append(time.time() - start)
            if r.status_code != 200:
                errors.append(r.status_code)

        say(f"{total} inbound at {args.rate:g}/s; HubSpot answers in {args.latency_ms:g} ms")
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=64) as pool:
            for n in range(total):
                delay = t0 + n / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(post, n)
        say("waiting for every Communication")
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline and len(hub.communications()) < total:
            time.sleep(0.5)
        first: dict[str, float] = {}
        doubled = 0
        for comm in hub.communications():
            token = comm["properties"].get("hs_communication_body", "")
            if token in first:
                doubled += 1
            elif token in sent:
                first[token] = hub.created_ts[comm["id"]]
        latencies = [first[t] - sent[t] for t in first]
        written = len(latencies)
    finally:
        for worker in workers:
            worker.stop()
        for proc in procs:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
        hub.stop()
        if args.keep:
            say(f"kept {env['DATABASE_URL']}")
        else:
            with contextlib.suppress(Exception):
                drop_database(args.pg_url, db_name)
        with contextlib.suppress(Exception):
            delete_redis_keys(args.redis_url, prefix)
    e2e = pcts(latencies) if latencies else (float("nan"),) * 3
    verdict = "HIT" if e2e[1] < 1000 and written == total and not doubled else "MISS"
    print(
        f"\nSwitchboard CRM benchmark (run {run_id}; {args.rate:g} inbound/s for "
        f"{args.seconds:g} s; HubSpot fake answers in {args.latency_ms:g} ms; "
        f"{os.cpu_count()} CPUs shared with Postgres, Redis and the fakes)"
    )
    print(f"baseline  one sync's own HubSpot calls, in-process    p50/p95/p99 {fmt(base)} ms")
    print(
        f"pipeline  inbound webhook -> Communication written      p50/p95/p99 {fmt(e2e)} ms  "
        f"({written}/{total} written, {doubled} doubled; "
        f"p95 {e2e[1] / base[1]:.1f}x the baseline's)"
    )
    print(
        f"          webhook answered                             p50/p95/p99 "
        f"{fmt(pcts(answers)) if answers else '-'} ms  ({len(errors)} non-200)"
    )
    print(f"target: p95 under 1000 ms: {verdict}")
    return 0 if verdict == "HIT" else 1


if __name__ == "__main__":
    sys.exit(main())
