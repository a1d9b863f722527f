"""A CRM that is down never delays sends: the Procfile's processes (the crm queue in its own
worker), HubSpot hanging and then dropping every call, a flood of replies from new numbers
owing it writes, and urgent sends measured all the while. Then HubSpot comes back and every
reply lands in it once."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from app.domain.queues import QueueNames
from app.models import CrmSync, Message
from app.providers import webhook_url
from scripts.fake_hubspot import FakeHubSpot
from scripts.fake_twilio import FakeTwilio
from tests.e2e.conftest import Run
from tests.e2e.test_conversations_pipeline import SENDER, twilio_tenant
from tests.e2e.test_pipeline import wait_until

pytestmark = pytest.mark.e2e
REPLIES = 300
URGENT = 25
# The Procfile's workers: each queue family in a process of its own.
ROLES = {
    "worker": [QueueNames.URGENT, QueueNames.NORMAL],
    "worker_intake": [QueueNames.INTAKE],
    "worker_bulk": [QueueNames.BULK, QueueNames.MAINTENANCE],
    "worker_crm": [QueueNames.CRM],
}


def urgent_send(run: Run, fake: FakeTwilio, headers: dict[str, str], n: int) -> float:
    """Seconds from an urgent POST to its arrival at the provider."""
    to = f"+1202557{n:04d}"
    started = time.monotonic()
    r = requests.post(
        f"{run.pipeline.base_url}/v1/messages",
        json={"to": to, "body": "your code is 1234", "priority": "urgent"},
        headers=headers,
        timeout=10,
    )
    assert r.status_code == 202, r.text
    while not fake.sends_to(to):
        assert time.monotonic() - started < 30, run.pipeline.logs()
        time.sleep(0.01)
    return time.monotonic() - started


def test_urgent_sends_stay_fast_while_the_crm_is_down_and_replies_flood_in(
    own: Callable[..., Run], fake: FakeTwilio
) -> None:
    run = own(CRM_SYNC_INTERVAL="1", CRM_RETRY_BASE_SECONDS="0.5", CRM_RETRY_MAX_SECONDS="2")
    run.pipeline.stop("worker")
    for name, queues in ROLES.items():
        run.pipeline.start_worker(name, queues)
    hub = FakeHubSpot().start()
    try:
        ctx = twilio_tenant(run.db, fake)
        # The baseline: the same urgent sends, no CRM connected and no replies in flight.
        quiet = [urgent_send(run, fake, ctx.headers, 900 + n) for n in range(URGENT)]
        run.cli(
            "crm", "connect", "--tenant", ctx.tenant_id, "--kind", "hubspot",
            "--token", hub.token, "--base-url", hub.base_url,
        )  # fmt: skip
        hub.set_mode("down")
        hub.latency = 2.0  # every call hangs, then the connection drops
        # A baseline send's final status may have reached HubSpot before it went down (a
        # call that read "ok" may still sleep the latency, then write): count what it holds
        # once any such call has finished.
        time.sleep(hub.latency + 0.5)
        taken_before = len(hub.communications())
        url = webhook_url(run.pipeline.base_url, "twilio", ctx.account_id)

        def reply(n: int) -> int:
            body = f"reply {n}"
            return fake.post_inbound(
                url, from_=f"+1202556{n:04d}", to=SENDER, body=body
            ).status_code

        def urgent(n: int) -> float:
            return urgent_send(run, fake, ctx.headers, n)

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = pool.map(reply, range(REPLIES))
            # During the flood itself the web tier is saturated: sends go, with no bound here
            # (the benchmark gives that figure); the target is for the writes left waiting.
            for n in range(5):
                urgent(n)
            assert set(answers) == {200}

        def owed() -> dict[str, int] | None:
            with run.db.session() as s:
                received = s.scalar(
                    select(func.count()).where(
                        Message.tenant_id == ctx.tenant_id, Message.direction == "inbound"
                    )
                )
                logs = s.scalar(
                    select(func.count())
                    .select_from(CrmSync)
                    .join(Message, Message.id == CrmSync.message_id)
                    .where(
                        CrmSync.tenant_id == ctx.tenant_id,
                        CrmSync.action == "log_message",
                        Message.direction == "inbound",
                    )
                )
            return {"logs": logs or 0} if received == REPLIES and logs == REPLIES else None

        wait_until(run.pipeline, owed, "every reply received and owed to HubSpot", timeout=60)
        took = []
        for n in range(5, 5 + URGENT):  # HubSpot still hangs and drops; its writes wait
            took.append(urgent(n))
            time.sleep(0.1)
        p95 = statistics.quantiles(took, n=20)[18]
        # The target is 1 s; on a loaded machine, the same sends with the CRM quiet set the bar.
        # A send behind the CRM's hanging calls would take their 2 s and more.
        quiet_p95 = statistics.quantiles(quiet, n=20)[18]
        assert p95 < max(1.0, 4 * quiet_p95), (p95, took, quiet_p95)
        assert len(hub.communications()) == taken_before  # HubSpot took nothing while down
        assert hub.requests  # and it was tried

        hub.latency = 0.0
        hub.set_mode("ok")

        def inbound() -> list[str]:
            return [
                c["properties"]["hs_communication_body"]
                for c in hub.communications()
                if c["properties"]["switchboard_direction"] == "inbound"
            ]

        def landed() -> dict[str, int] | None:
            n = len(inbound())
            return {"n": n} if n >= REPLIES else None

        wait_until(run.pipeline, landed, "every reply in HubSpot", timeout=120)
        time.sleep(2)  # every chance for a duplicate to show up
        assert sorted(inbound()) == sorted(f"reply {n}" for n in range(REPLIES))  # once each
        phones = [c["properties"]["phone"] for c in hub.contacts()]
        assert len(phones) == len(set(phones)) >= REPLIES  # no contact twice
        # A batch, not a call per reply, once it came back.
        assert len(hub.requests) < REPLIES
    finally:
        hub.stop()
