"""Never sent twice, never lost, mid-batch: a worker killed, stopped, or cut off from Postgres
while a whole batch of sends is in flight at the provider.

Each test queues its messages while no worker runs, so that one drain claims them in
batches of ten, then acts once a batch is in flight. They need real Postgres and Redis.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import select

from app.models import MessageEvent
from scripts.fake_twilio import FakeTwilio
from tests.e2e.conftest import Run
from tests.e2e.test_crashes import FAST_RECOVERY, FINAL, send, statuses, twilio_tenant, wait_for
from tests.support.backends import ADMIN_PG_URL
from tests.support.tcp_proxy import proxy_for, via

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
BATCHES = {**FAST_RECOVERY, "DISPATCH_BATCH_SIZE": "10"}
RECIPIENTS = [f"+1202557{n:03d}8" for n in range(20)]


def queue_while_no_worker_runs(run: Run, fake: FakeTwilio) -> tuple[list[str], object]:
    run.pipeline.kill("worker")
    ctx = twilio_tenant(run.db, fake)
    ids = []
    for to in RECIPIENTS:
        r = send(run, ctx, to)
        assert (r.status_code, r.json()["status"]) == (202, "queued")
        ids.append(r.json()["id"])
    return ids, ctx


def test_kill_9_mid_batch_sends_each_once_and_loses_none(
    own: Callable[..., Run], fake: FakeTwilio
) -> None:
    run = own(**BATCHES)
    ids, ctx = queue_while_no_worker_runs(run, fake)
    fake.stall_all = 4.0  # every send of the batch hangs at the provider
    run.pipeline.start_worker()
    wait_for("a batch in flight", lambda: len(fake.arrivals) >= 10, run, 30)
    run.pipeline.kill("worker")  # kill -9, mid-batch
    # What no claim had taken when the worker died must go out after the restart. (On a slow
    # machine the drain may have claimed the second batch too before the kill, its calls not
    # yet left: those stay `dispatched`, in the stuck report, as asserted below.)
    unclaimed = [i for i, status in statuses(run, ctx, ids).items() if status == "queued"]  # type: ignore[arg-type]
    fake.stall_all = 0.0
    run.pipeline.start_worker()

    def settled() -> bool:
        stuck = {m["id"] for m in run.cli("stuck")["messages"]}
        current = statuses(run, ctx, ids)  # type: ignore[arg-type]
        return all(current[i] in FINAL or i in stuck for i in ids)

    wait_for("each message final or reported stuck", settled, run, 90)
    time.sleep(3)  # give a wrongful resend every chance to show up
    # At most once each, and none lost: the ones not yet claimed went out after the restart.
    # One claimed by the killed worker whose call had not left it yet stays `dispatched`
    # (the send may have happened, as far as anyone can tell): never re-sent blindly, and
    # the stuck report shows it.
    arrived = Counter(to for _, to in fake.arrivals)
    assert max(arrived.values()) == 1, arrived
    stuck = {m["id"] for m in run.cli("stuck", "--older-than", "0s")["messages"]}
    for message_id, to in zip(ids, RECIPIENTS, strict=True):
        assert to in arrived or message_id in stuck, f"{to} neither sent nor reported"
    assert len(arrived) >= len(RECIPIENTS) - 10  # at most the last claim's batch was cut

    def delivered() -> int:
        current = statuses(run, ctx, unclaimed)  # type: ignore[arg-type]
        return sum(1 for i in unclaimed if current[i] == "delivered")

    # An `accepted` message past its SLA is already in the stuck report, so "settled" can
    # come before its receipt on a slow run: wait for the receipts themselves.
    wait_for(
        "the messages sent after the restart delivered",
        lambda: delivered() == len(unclaimed),
        run,
        60,
    )


def test_sigterm_mid_batch_records_the_whole_batch_before_leaving(
    own: Callable[..., Run], fake: FakeTwilio
) -> None:
    run = own(**BATCHES)
    ids, ctx = queue_while_no_worker_runs(run, fake)
    fake.stall_all = 3.0
    run.pipeline.start_worker()
    wait_for("a batch in flight", lambda: len(fake.arrivals) >= 10, run, 30)
    proc = run.pipeline.procs["worker"]
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    took = time.monotonic() - started
    assert took < 30, took
    fake.stall_all = 0.0
    del run.pipeline.procs["worker"]
    run.pipeline.start_worker()
    wait_for(
        "all delivered",
        lambda: set(statuses(run, ctx, ids).values()) == {"delivered"},  # type: ignore[arg-type]
        run,
        90,
    )
    assert Counter(to for _, to in fake.arrivals) == Counter(RECIPIENTS)  # exactly once each
    with run.db.session() as s:
        sources = s.scalars(
            select(MessageEvent.source).where(
                MessageEvent.message_id.in_(ids), MessageEvent.to_status == "accepted"
            )
        ).all()
    # Every answer was recorded from the provider's reply, none guessed by reconciliation.
    assert list(sources) == ["provider"] * len(ids)


def test_postgres_cut_mid_batch_the_answers_are_still_recorded(
    own: Callable[..., Run], fake: FakeTwilio
) -> None:
    proxy = proxy_for(ADMIN_PG_URL)
    # Twilio does not retry a status callback: one that met the outage is gone, and the
    # reconciliation's poll of the provider recovers it (sooner than the day a real run waits).
    run = own(**{**BATCHES, "STUCK_SLAS": "queued=3,dispatched=3,accepted=6,sent=6"})
    run.pipeline.stop_all()
    env = {**run.pipeline.env, "DATABASE_URL": via(run.pipeline.env["DATABASE_URL"], proxy)}
    run.pipeline.env = env
    run.pipeline.start_web()
    run.pipeline.start_beat()
    ctx = twilio_tenant(run.db, fake)
    ids = [send(run, ctx, to).json()["id"] for to in RECIPIENTS]
    fake.stall_all = 2.0
    run.pipeline.start_worker()
    wait_for("a batch in flight", lambda: len(fake.arrivals) >= 10, run, 30)
    proxy.stop()  # Postgres is gone while the provider holds the batch
    time.sleep(3)
    proxy.start()
    fake.stall_all = 0.0
    try:
        wait_for(
            "all delivered",
            lambda: set(statuses(run, ctx, ids).values()) == {"delivered"},  # type: ignore[arg-type]
            run,
            120,
        )
        assert Counter(to for _, to in fake.arrivals) == Counter(RECIPIENTS)  # exactly once
    finally:
        proxy.stop()
