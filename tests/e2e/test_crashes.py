"""Never sent twice, never lost: real processes killed, restarted and cut off mid-run.

Each test has a database, broker namespace and pipeline of its own, since it
kills or starves them. They need real Postgres and Redis.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from app.infra.db import Database
from scripts.fake_twilio import FakeTwilio
from tests.e2e.conftest import Run
from tests.factories import TenantCtx, make_tenant_ctx
from tests.support.backends import ADMIN_PG_URL
from tests.support.processes import free_port
from tests.support.tcp_proxy import proxy_for, via

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
FINAL = {"delivered", "read", "failed", "undelivered", "expired", "canceled"}
# Short SLAs and cadences, so reconciliation acts within the test's patience.
FAST_RECOVERY = {
    "STUCK_SLAS": "queued=3,dispatched=3,accepted=6",
    "RECONCILE_INTERVAL": "1",
    "INBOX_LOST_AFTER_SECONDS": "3",
    "WORKER_SOFT_SHUTDOWN_SECONDS": "20",
}


def twilio_tenant(db: Database, fake: FakeTwilio) -> TenantCtx:
    return make_tenant_ctx(
        db,
        provider="twilio",
        channels=("sms",),
        credentials={
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "base_url": fake.base_url,
        },
    )


def send(run: Run, ctx: TenantCtx, to: str) -> requests.Response:
    return requests.post(
        f"{run.pipeline.base_url}/v1/messages",
        json={"to": to, "body": "hi"},
        headers=ctx.headers,
        timeout=15,
    )


def statuses(run: Run, ctx: TenantCtx, ids: list[str]) -> dict[str, str]:
    """Each message's status, read straight from the database (the API may be cut off)."""
    from sqlalchemy import select

    from app.models import Message

    with run.db.session() as s:
        rows = s.execute(
            select(Message.id, Message.status).where(
                Message.tenant_id == ctx.tenant_id, Message.id.in_(ids)
            )
        ).all()
    return {message_id: status for message_id, status in rows}


def wait_for(what: str, check: Callable[[], bool], run: Run, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{run.pipeline.logs()}")


def test_kill_9_mid_call_sends_each_at_most_once_and_leaves_each_final_or_reported(
    own: Callable[..., Run], fake: FakeTwilio
) -> None:
    run = own(**FAST_RECOVERY)
    ctx = twilio_tenant(run.db, fake)
    fake.stall_all = 4.0  # every send hangs at the provider
    recipients = ["+12025553001", "+12025553002", "+12025553003"]
    ids = [send(run, ctx, to).json()["id"] for to in recipients]
    wait_for("three calls in flight", lambda: len(fake.arrivals) == 3, run, 30)
    run.pipeline.kill("worker")
    fake.stall_all = 0.0
    run.pipeline.start_worker()

    def settled() -> bool:
        stuck = {m["id"] for m in run.cli("stuck")["messages"]}
        current = statuses(run, ctx, ids)
        return all(current[i] in FINAL or i in stuck for i in ids)

    wait_for("each message final or reported stuck", settled, run, 60)
    time.sleep(3)  # give a wrongful resend every chance to show up
    assert Counter(to for _, to in fake.arrivals) == Counter(recipients)  # at most once each
    report = run.cli("stuck", "--older-than", "0s")
    for message in report["messages"]:
        if message["id"] in ids:
            assert message["status"] == "dispatched"
            assert message["last_event"]["kind"] in {"stuck", "transition"}
    # Support staff's redrive checks rather than re-sends: still one call each.
    run.cli("redrive", "--status", "dispatched", "--older-than", "0s")
    assert Counter(to for _, to in fake.arrivals) == Counter(recipients)


def test_sigterm_lets_the_call_in_flight_finish_within_herokus_30_seconds(
    own: Callable[..., Run], fake: FakeTwilio
) -> None:
    run = own(**FAST_RECOVERY)
    ctx = twilio_tenant(run.db, fake)
    fake.stall_all = 3.0
    message_id = send(run, ctx, "+12025553101").json()["id"]
    wait_for("the call in flight", lambda: len(fake.arrivals) == 1, run, 30)
    proc = run.pipeline.procs["worker"]
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    took = time.monotonic() - started
    assert took < 30, took
    fake.stall_all = 0.0
    del run.pipeline.procs["worker"]
    run.pipeline.start_worker()  # the restart: receipts are processed by the new one
    wait_for(
        "delivered",
        lambda: statuses(run, ctx, [message_id]).get(message_id) == "delivered",
        run,
        60,
    )
    assert [to for _, to in fake.arrivals] == ["+12025553101"]
    with run.db.session() as s:
        from sqlalchemy import select

        from app.models import MessageEvent

        sources = s.scalars(
            select(MessageEvent.source).where(
                MessageEvent.message_id == message_id, MessageEvent.to_status == "accepted"
            )
        ).all()
    assert list(sources) == ["provider"]  # the answer was recorded before the worker left


def test_postgres_gone_for_ten_seconds_intake_503_then_everything_final(
    own: Callable[..., Run],
) -> None:
    proxy = proxy_for(ADMIN_PG_URL)
    run = own(**FAST_RECOVERY)
    ctx = make_tenant_ctx(run.db)  # a sandbox tenant, made before the cut
    # The processes reach Postgres through the proxy from now on.
    run.pipeline.stop_all()
    env = {**run.pipeline.env, "DATABASE_URL": via(run.pipeline.env["DATABASE_URL"], proxy)}
    run.pipeline.env = env
    run.pipeline.start_web()
    run.pipeline.start_worker()
    run.pipeline.start_beat()
    before = [send(run, ctx, f"+1202555{3200 + n:04d}").json()["id"] for n in range(10)]
    proxy.stop()
    during = [send(run, ctx, f"+1202555{3300 + n:04d}").status_code for n in range(3)]
    assert set(during) == {503}
    time.sleep(10)
    proxy.start()
    after = [send(run, ctx, f"+1202555{3400 + n:04d}").json()["id"] for n in range(5)]
    ids = before + after
    wait_for(
        "every message final",
        lambda: (
            set(statuses(run, ctx, ids).values()) <= FINAL
            and len(statuses(run, ctx, ids)) == len(ids)
        ),
        run,
        90,
    )
    assert set(statuses(run, ctx, ids).values()) == {"delivered"}
    proxy.stop()


def _redis_server(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    assert binary is not None
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("redis-server did not start")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
def test_redis_restarted_mid_run_of_500_loses_none_and_sends_none_twice(
    own: Callable[..., Run], fake: FakeTwilio, tmp_path: Path
) -> None:
    port = free_port()
    redis_proc = _redis_server(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        run = own(**FAST_RECOVERY, REDIS_URL=url)
        ctx = twilio_tenant(run.db, fake)
        # Last digits never 0001, 0002 or 0005, which the fake answers specially.
        recipients = [f"+1202556{n:03d}7" for n in range(500)]
        ids: list[str] = []

        def one(to: str) -> str | None:
            for _ in range(20):  # a client retries what was refused
                r = send(run, ctx, to)
                if r.status_code == 202:
                    return str(r.json()["id"])
                time.sleep(0.5)
            return None

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(one, to) for to in recipients]
            while sum(f.done() for f in futures) < 150:
                time.sleep(0.05)
            redis_proc.kill()  # everything queued in Redis is gone with it
            redis_proc.wait()
            time.sleep(1)
            redis_proc = _redis_server(port, tmp_path)
            ids = [i for f in futures if (i := f.result()) is not None]
        assert len(ids) == 500

        def all_final() -> bool:
            current = statuses(run, ctx, ids)
            return len(current) == 500 and set(current.values()) <= FINAL

        wait_for("all 500 final", all_final, run, 150)
        assert set(statuses(run, ctx, ids).values()) == {"delivered"}
        sent = Counter(s.to for s in fake.sent if s.answered == 201)
        assert sent == Counter(recipients)  # each exactly once
    finally:
        redis_proc.kill()
        redis_proc.wait()
