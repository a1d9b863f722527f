"""The four targets (what each request looks like) and loading them one after another."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from app.providers.signing import sign_headers
from scripts.bench.lib.celery_worker import CeleryWorker
from scripts.bench.lib.common import SetupError, say
from scripts.bench.lib.fixtures import Environment, engine_for
from scripts.bench.lib.loadgen import HttpRequest, LoadResult, PhaseStats, RequestFactory, run_load
from scripts.bench.lib.options import Options, describe_bound
from scripts.bench.lib.profile import recording, summarize
from scripts.bench.lib.receipts import (
    ReceiptsPlan,
    clear_intake_queue,
    receipts_factory,
    seed_accepted,
    settle_earlier_callbacks,
    wait_applied,
)
from scripts.bench.lib.servers import Server

RECIPIENT = "+12025550100"  # sandbox: accepted, sent, delivered
MAX_ERROR_RATE = 0.01


@dataclass(frozen=True)
class Target:
    name: str
    endpoint: str
    server: str  # "floor" or "app"
    factory: RequestFactory


@dataclass
class TargetResult:
    target: Target
    status: str = "not run"  # ok | errors | not started | not run
    detail: str = ""
    load: LoadResult | None = None
    applied_per_s: float | None = None  # receipts: applied end to end, not just answered
    server_cpu_s: float | None = None  # the server's CPU (master and workers) while loaded
    db_cpu_s: float | None = None  # Postgres's CPU for the run's database while loaded

    @property
    def measured(self) -> PhaseStats | None:
        return self.load.measured if self.load else None

    @property
    def failed(self) -> bool:
        return self.status != "ok"


def json_request(path: str, payload: dict[str, Any], headers: dict[str, str]) -> HttpRequest:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return HttpRequest("POST", path, body, {"Content-Type": "application/json", **headers})


def build_targets(
    envir: Environment, app_url: str, plan: ReceiptsPlan, run_index: int = 0
) -> dict[str, Target]:
    """The targets' requests; ``run_index`` keeps each run's ids apart (no duplicates)."""
    run_id = f"{envir.run_id}{run_index}"

    def floor(n: int) -> HttpRequest:
        return json_request("/floor", {"to": RECIPIENT, "body": f"bench {run_id} #{n}"}, {})

    auth = {"Authorization": f"Bearer {envir.api_key}"}

    def messages(n: int) -> HttpRequest:
        return json_request("/v1/messages", {"to": RECIPIENT, "body": f"bench {run_id} #{n}"}, auth)

    webhook_path = f"/webhooks/sandbox/{envir.account_id}"
    secret = envir.webhook_secret

    def webhook(n: int) -> HttpRequest:
        # A status for a provider message id nobody sent: stored in the inbox, then deferred.
        event = {
            "eventId": f"evt-{run_id}-{n}",
            "schemaVersion": 1,
            "channel": "sms",
            "direction": "status",
            "status": "delivered",
            "providerMessageId": f"BENCH{run_id}{n:010d}",
            "timestamp": datetime.now(UTC).isoformat(),
        }
        body = json.dumps(event, separators=(",", ":"))
        headers = sign_headers(secret, f"msg_bench_{run_id}_{n}", body)  # unique webhook-id
        return HttpRequest("POST", webhook_path, body.encode(), headers)

    unknown = ReceiptsPlan(plan.account_id, plan.tenant_id, plan.auth_token, 10**6, [])
    # (a leading "f": never one of the receipts target's seeded sids, which count from 0)
    unknown.sids = [f"SM{envir.run_id}f{run_index:03x}{n:020x}" for n in range(unknown.count)]

    return {
        "floor": Target("floor", "POST /floor (floor)", "floor", floor),
        # Signed Twilio callbacks for messages nobody sent: verified, stored, handed on.
        "twilio": Target(
            "twilio", "POST /webhooks/twilio/{id}", "app", receipts_factory(app_url, unknown)
        ),
        "webhook": Target("webhook", "POST /webhooks/sandbox/{id}", "app", webhook),
        "messages": Target("messages", "POST /v1/messages", "app", messages),
        "receipts": Target(
            "receipts",
            "POST /webhooks/twilio/{id} + worker",
            "app",
            receipts_factory(app_url, plan),
        ),
    }


def run_targets(
    opts: Options,
    envir: Environment,
    servers: dict[str, Server],
    results: dict[str, TargetResult],
    run_index: int = 0,
) -> None:
    """Load each chosen target in turn, filling ``results`` as it goes.

    A server starts when its first target comes up and stops after its last one;
    a server that fails to start marks its targets "not started" and the run goes on.
    The receipts target (it seeds messages, and runs a worker) is in the first run only.
    """
    plan = ReceiptsPlan(
        envir.twilio_account_id, envir.tenant_id, envir.twilio_token, opts.receipts, []
    )
    chosen = [n for n in opts.targets if n != "receipts" or run_index == 0]
    if "receipts" in chosen:
        say(f"  seeding {opts.receipts} accepted Twilio messages")
        seed_accepted(envir.env, plan, envir.run_id)
    targets = build_targets(envir, servers["app"].base_url, plan, run_index)
    broken: dict[str, str] = {}
    for index, name in enumerate(chosen):
        target = targets[name]
        result = results[name] = TargetResult(target)
        server = servers[target.server]
        if target.server not in broken and server.proc is None:
            try:
                server.start(opts.start_timeout)
            except SetupError as exc:
                say(f"  ERROR: {exc}")
                broken[target.server] = str(exc).splitlines()[0]
                server.stop()
        if target.server in broken:
            result.status, result.detail = "not started", broken[target.server]
            continue
        if name == "receipts":
            _run_receipts(opts, envir, server, result, plan)
            continue
        say(
            f"  loading {target.endpoint}: {opts.warmup:g} s warm-up, then "
            f"{describe_bound(opts.duration, opts.requests)}, {opts.concurrency} connections"
        )
        with (
            _profiled(opts, server, name, opts.warmup + (opts.duration or 30)),
            _cpu_measured(server, result, envir),
        ):
            result.load = asyncio.run(
                run_load(
                    server.base_url,
                    target.factory,
                    concurrency=opts.concurrency,
                    warmup=opts.warmup,
                    duration=opts.duration,
                    max_requests=opts.requests,
                )
            )
        result.status, result.detail = _verdict(result.load.measured)
        # Stop a server once no later target needs it, so it does not idle alongside the next.
        if not any(targets[n].server == target.server for n in chosen[index + 1 :]):
            server.stop()


def _tree_cpu(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            times = proc.cpu_times()
            total += times.user + times.system
        return total
    except psutil.Error:
        return 0.0


def _backend_cpu(envir: Environment) -> dict[int, float]:
    """CPU seconds so far of each Postgres backend connected to the run's database."""
    import psutil

    with engine_for(envir.db_url) as engine, engine.connect() as conn:
        pids = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        found: dict[int, float] = {}
        for pid in pids:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:  # gone, or not ours to read (another host, another user)
                continue
            found[pid] = times.user + times.system
    return found


@contextlib.contextmanager
def _cpu_measured(server: Server, result: TargetResult, envir: Environment) -> Iterator[None]:
    """CPU seconds the server's processes, and Postgres's backends for the run's database,
    used during the block (warm-up included; a backend that exits within it is missed)."""
    if server.proc is None:
        yield
        return
    before = _tree_cpu(server.proc.pid)
    db_before = _backend_cpu(envir)
    yield
    result.server_cpu_s = _tree_cpu(server.proc.pid) - before
    db_after = _backend_cpu(envir)
    if db_after:
        result.db_cpu_s = sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items())


@contextlib.contextmanager
def _profiled(opts: Options, server: Server, name: str, seconds: float) -> Iterator[None]:
    """py-spy on the server for the phase, when --profile is given; its summary printed after."""
    if opts.profile_dir is None or server.proc is None:
        yield
        return
    out = Path(opts.profile_dir) / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    with recording(server.proc.pid, out, seconds):
        yield
    say(f"  profile of {name} ({out}):")
    for line in summarize(out):
        say(f"    {line}")


def _run_receipts(
    opts: Options, envir: Environment, server: Server, result: TargetResult, plan: ReceiptsPlan
) -> None:
    """No warm-up (every callback is a new receipt): one per seeded message, worker running."""
    dropped = clear_intake_queue(opts.redis_url, envir.redis_prefix)
    if dropped:
        say(f"  dropped {dropped} tasks earlier targets left on the intake queue")
    settled = settle_earlier_callbacks(envir.env)
    if settled:
        say(f"  marked {settled} callbacks earlier targets stored as processed (not receipts)")
    say("  starting a Celery worker on the intake queue, as the Procfile's (WORKER_POOL)")
    worker = CeleryWorker(envir.env, envir.log_dir / "worker.log", "workers.main", ["intake"])
    try:
        say(f"  loading {result.target.endpoint}: {plan.count} signed callbacks, applied by it")
        started = time.monotonic()
        with _cpu_measured(server, result, envir):
            result.load = asyncio.run(
                run_load(
                    server.base_url,
                    result.target.factory,
                    concurrency=opts.concurrency,
                    warmup=0,
                    duration=None,
                    max_requests=plan.count,
                )
            )
        done = wait_applied(envir.env, plan, timeout=max(60.0, plan.count / 50))
        if done is not None:
            result.applied_per_s = plan.count / (done - started)
        result.status, result.detail = _verdict(result.load.measured)
        if done is None:
            result.status, result.detail = "errors", "not every receipt was applied in time"
    finally:
        worker.stop()
        server.stop()


def _verdict(stats: PhaseStats) -> tuple[str, str]:
    if stats.ok == 0:
        return "errors", "no successful request"
    if stats.error_rate > MAX_ERROR_RATE:
        return "errors", f"error rate {100 * stats.error_rate:.2f}% is above 1%"
    return "ok", ""
