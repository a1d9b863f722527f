"""A CRM drain killed mid-batch loses nothing and doubles nothing: the worker is killed with
kill -9 while a batch of HubSpot writes is in flight (HubSpot still completes them), and
after the restart every reply is in HubSpot exactly once, found again by its message id."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from app.providers import webhook_url
from scripts.fake_hubspot import FakeHubSpot
from scripts.fake_twilio import FakeTwilio
from tests.e2e.conftest import Run
from tests.e2e.test_conversations_pipeline import SENDER, twilio_tenant
from tests.e2e.test_pipeline import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
REPLIES = 20


def test_kill_9_mid_batch_every_reply_lands_once(own: Callable[..., Run], fake: FakeTwilio) -> None:
    run = own(CRM_LEASE_SECONDS="3", CRM_SYNC_INTERVAL="1")
    hub = FakeHubSpot().start()
    try:
        ctx = twilio_tenant(run.db, fake)
        run.cli(
            "crm", "connect", "--tenant", ctx.tenant_id, "--kind", "hubspot",
            "--token", hub.token, "--base-url", hub.base_url,
        )  # fmt: skip
        run.pipeline.kill("worker")
        url = webhook_url(run.pipeline.base_url, "twilio", ctx.account_id)
        for n in range(REPLIES):
            body = f"reply {n}"
            r = fake.post_inbound(url, from_=f"+1202554{n:04d}", to=SENDER, body=body)
            assert r.status_code == 200
        hub.latency = 1.5  # each call takes a while: the batch is in flight when we kill
        run.pipeline.start_worker()

        def creating() -> dict[str, int] | None:
            with hub.lock:
                made = [p for _, p in hub.requests if p.endswith("communications/batch/create")]
            return {"n": len(made)} if made else None

        wait_until(run.pipeline, creating, "the Communications' batch in flight", timeout=60)
        run.pipeline.kill("worker")  # kill -9, with the create on its way
        time.sleep(2)  # HubSpot finishes the create the dead worker never hears of
        assert len(hub.communications()) == REPLIES
        hub.latency = 0.0
        run.pipeline.start_worker()

        def settled() -> dict[str, int] | None:
            report = run.cli("stuck", "--older-than", "0s")
            return None if report["syncs"] else {"ok": 1}

        wait_until(run.pipeline, settled, "every sync done after the lease ran out", timeout=90)
        time.sleep(2)  # every chance for a duplicate to show up
        bodies = Counter(
            c["properties"]["hs_communication_body"]
            for c in hub.communications()
            if c["properties"]["switchboard_direction"] == "inbound"
        )
        assert bodies == Counter(f"reply {n}" for n in range(REPLIES))  # each exactly once
        phones = [c["properties"]["phone"] for c in hub.contacts()]
        assert len(phones) == len(set(phones)) == REPLIES
        # The replay looked its Communications up rather than creating them again.
        assert any(p.endswith("communications/search") for _, p in hub.requests)
    finally:
        hub.stop()
