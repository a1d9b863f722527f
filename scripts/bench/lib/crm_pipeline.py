"""The CRM benchmark's pipeline (as the Procfile splits it), its tenants, and the flood of
signed replies, POSTed from a process of its own."""

from __future__ import annotations

import contextlib
import multiprocessing
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from app.domain.queues import QueueNames
from app.providers import webhook_url
from scripts.bench.lib.celery_worker import CeleryWorker
from scripts.bench.lib.common import GUNICORN_CONFIG, REPO_ROOT, find_executable
from scripts.bench.lib.fixtures import run_cli
from scripts.fake_twilio import FakeTwilio, sign

SENDER = "+12025550199"


@dataclass
class Pipeline:
    env: dict[str, str]
    app_url: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[CeleryWorker] = field(default_factory=list)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for proc in self.procs:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)


def start_pipeline(env: dict[str, str], log_dir: Path) -> Pipeline:
    pipeline = Pipeline(env, env["PUBLIC_BASE_URL"])
    web = subprocess.Popen(
        [find_executable("gunicorn"), "-c", GUNICORN_CONFIG, "app:create_app()"],
        cwd=REPO_ROOT, env=env, stdout=(log_dir / "web.log").open("wb"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    pipeline.procs.append(web)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{pipeline.app_url}/healthz", timeout=1).ok:
                break
        time.sleep(0.2)
    else:
        pipeline.stop()
        raise RuntimeError(f"web did not start (log: {log_dir / 'web.log'})")
    beat = [find_executable("celery"), "-A", "workers.main", "beat", "--loglevel", "WARNING"]
    pipeline.procs.append(
        subprocess.Popen(
            beat, cwd=REPO_ROOT, env=env, stdout=(log_dir / "beat.log").open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    )  # fmt: skip
    # As the Procfile splits them: each family of queues in a process of its own.
    for name, queues in (
        ("worker", [QueueNames.URGENT, QueueNames.NORMAL]),
        ("intake", [QueueNames.INTAKE]),
        ("bulk", [QueueNames.BULK, QueueNames.MAINTENANCE]),
        ("crm", [QueueNames.CRM]),
    ):
        pipeline.workers.append(CeleryWorker(env, log_dir / f"{name}.log", "workers.main", queues))
    return pipeline


@dataclass
class Tenant:
    id: str
    account: str
    key: str
    connection: str


def new_tenant(env: dict[str, str], twilio: FakeTwilio, name: str, connect: list[str]) -> Tenant:
    tenant = str(run_cli(env, "tenants", "create", "--name", name)["id"])
    account = str(
        run_cli(
            env, "accounts", "create", "--tenant", tenant, "--provider", "twilio",
            "--sender", SENDER, "--account-sid", twilio.account_sid,
            "--auth-token", twilio.auth_token, "--base-url", twilio.base_url,
        )["id"]
    )  # fmt: skip
    key = str(run_cli(env, "keys", "create", "--tenant", tenant)["key"])
    connection = str(run_cli(env, "crm", "connect", "--tenant", tenant, *connect)["id"])
    return Tenant(tenant, account, key, connection)


@dataclass
class Flood:
    sent: dict[str, float] = field(default_factory=dict)  # body token -> when POSTed
    errors: list[int] = field(default_factory=list)


def flood(
    pipeline: Pipeline,
    twilio: FakeTwilio,
    tenant: Tenant,
    rate: float,
    seconds: float,
    tag: str,
    area: int,
    during: Callable[[], None] | None = None,
) -> Flood:
    """Signed inbound replies at ``rate`` a second, each from a new number (in ``area``),
    POSTed from a process of their own: the fakes that stand in for the CRMs and the
    provider live in this one, and the flood's threads would slow their answers."""
    url = webhook_url(pipeline.app_url, "twilio", tenant.account)
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe(duplex=False)
    args = (url, twilio.account_sid, twilio.auth_token, rate, seconds, tag, area, child)
    poster = context.Process(target=_post_replies, args=args, daemon=True)
    poster.start()
    child.close()
    side = threading.Thread(target=during, daemon=True) if during else None
    if side is not None:
        side.start()
    sent, errors = parent.recv()
    poster.join()
    if side is not None:
        side.join()
    return Flood(sent, errors)


def _post_replies(
    url: str, account_sid: str, auth_token: str, rate: float, seconds: float, tag: str,
    area: int, out: Any,
) -> None:  # fmt: skip
    total = int(rate * seconds)
    sent: dict[str, float] = {}
    errors: list[int] = []
    local = threading.local()

    def post(n: int) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        token = f"{tag}-{n}"
        params = {
            "MessageSid": f"SM{tag}{n:030x}", "AccountSid": account_sid,
            "From": f"+1{area}555{n:04d}", "To": SENDER, "Body": token,
            "NumMedia": "0", "SmsStatus": "received",
        }  # fmt: skip
        headers = {
            "X-Twilio-Signature": sign(auth_token, url, params),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        sent[token] = time.time()
        try:
            r = session.post(url, data=urlencode(params), headers=headers, timeout=30)
            status = r.status_code
        except requests.RequestException:
            status = 0
        if status != 200:
            errors.append(status)

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=64) as pool:
        for n in range(total):
            delay = t0 + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(post, n)
    out.send((sent, errors))
    out.close()


def wait_for(count: Callable[[], int], total: int, wait: float) -> float:
    """Wait until ``count()`` reaches ``total``; when it did (time.time), or NaN."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if count() >= total:
            return time.time()
        time.sleep(0.25)
    return float("nan")


def written_once(
    records: list[tuple[str, float]], sent: dict[str, float]
) -> tuple[list[float], int]:
    """Per reply token, the first write's latency; and how many were written twice."""
    first: dict[str, float] = {}
    doubled = 0
    for token, created in records:
        if token in first:
            doubled += 1
        elif token in sent:
            first[token] = created
    return [first[t] - sent[t] for t in first], doubled
