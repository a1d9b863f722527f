"""CRM writeback end to end: a reply at the Twilio webhook reaches HubSpot (a Communication on
the right contact) and Salesforce (a Task on a new Lead) exactly once, through an outage,
throttling and a replay of the same webhook, on real web, worker and beat processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.providers import webhook_url
from scripts.fake_hubspot import FakeHubSpot
from scripts.fake_salesforce import FakeSalesforce
from scripts.fake_twilio import FakeTwilio
from tests.e2e.conftest import Run
from tests.e2e.test_conversations_pipeline import SENDER, twilio_tenant
from tests.e2e.test_pipeline import wait_until

pytestmark = pytest.mark.e2e
FAST_CRM = {
    "CRM_SYNC_INTERVAL": "1",
    "CRM_RETRY_BASE_SECONDS": "0.2",
    "CRM_RETRY_MAX_SECONDS": "1",
    "CRM_SYNC_SLA_SECONDS": "1",
}


@pytest.fixture
def hubspot() -> Iterator[FakeHubSpot]:
    server = FakeHubSpot().start()
    yield server
    server.stop()


@pytest.fixture
def salesforce() -> Iterator[FakeSalesforce]:
    server = FakeSalesforce().start()
    yield server
    server.stop()


def test_a_reply_lands_once_in_hubspot_and_salesforce_through_outage_throttle_and_replay(
    own: Callable[..., Run],
    fake: FakeTwilio,
    hubspot: FakeHubSpot,
    salesforce: FakeSalesforce,
) -> None:
    run = own(**FAST_CRM)
    ctx = twilio_tenant(run.db, fake)
    hub = run.cli(
        "crm", "connect", "--tenant", ctx.tenant_id, "--kind", "hubspot",
        "--token", hubspot.token, "--base-url", hubspot.base_url,
    )  # fmt: skip
    sf = run.cli(
        "crm", "connect", "--tenant", ctx.tenant_id, "--kind", "salesforce",
        "--token", salesforce.token, "--instance-url", salesforce.base_url,
    )  # fmt: skip
    assert hub["id"].startswith("crm_") and sf["id"].startswith("crm_")
    phone = "+12025558001"
    with hubspot.lock:  # HubSpot already knows this person; Salesforce does not
        hubspot.objects["contacts"]["501"] = {
            "id": "501",
            "properties": {"phone": phone, "firstname": "Ana"},
            "createdAt": "",
            "updatedAt": "",
            "archived": False,
            "associations": [],
        }
    hubspot.set_mode("down")
    salesforce.set_mode("throttle", retry_after=1)
    url = webhook_url(run.pipeline.base_url, "twilio", ctx.account_id)
    sid = "SM" + "e2e" * 10 + "00"
    for _ in range(3):  # Twilio retried: the same webhook, three times
        r = fake.post_inbound(url, from_=phone, to=SENDER, body="Can we talk pricing?", sid=sid)
        assert r.status_code == 200

    def stuck_syncs() -> dict[str, Any] | None:
        report = run.cli("stuck", "--older-than", "0s")
        return report if report["syncs"] else None

    report = wait_until(run.pipeline, stuck_syncs, "the waiting syncs reported", timeout=30)
    assert {s["reason"] for s in report["syncs"]} <= {"retryable", "throttled", "waiting"}
    time.sleep(3)  # the outage and the throttling go on for a while
    assert hubspot.communications() == [] and salesforce.of("Task") == []
    hubspot.set_mode("ok")
    salesforce.set_mode("ok")

    def landed() -> dict[str, Any] | None:
        done = hubspot.communications() and salesforce.of("Task")
        return {"ok": True} if done else None

    wait_until(run.pipeline, landed, "the reply in both CRMs", timeout=90)
    time.sleep(3)  # every chance for a duplicate to show up
    (communication,) = hubspot.communications()
    assert communication["associations"] == ["501"]
    assert communication["properties"]["hs_communication_body"] == "Can we talk pricing?"
    assert len(hubspot.contacts()) == 1
    (task,) = salesforce.of("Task")
    (lead,) = salesforce.of("Lead")
    assert (task["WhoId"], lead["Phone"], lead["LeadSource"]) == (lead["Id"], phone, "SMS")
    assert task["Description"] == "Can we talk pricing?"

    def settled() -> dict[str, Any] | None:
        report = run.cli("stuck", "--older-than", "0s")
        return report if not report["syncs"] else None

    wait_until(run.pipeline, settled, "every sync done", timeout=30)
