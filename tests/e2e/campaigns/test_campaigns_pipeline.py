"""Campaigns through the running pipeline: a CSV to every message delivered, and a worker
killed mid-expansion that still makes each recipient a message exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select

from app.infra.db import Database
from app.models import CampaignRecipient, Message
from tests.e2e.conftest import Run
from tests.factories import TenantCtx, make_tenant_ctx
from tests.support.processes import Pipeline

pytestmark = pytest.mark.e2e


def post_csv(base_url: str, ctx: TenantCtx, rows: list[str], query: str) -> requests.Response:
    data = ("phone,reference\n" + "\n".join(f"{p},ref-{p[-4:]}" for p in rows) + "\n").encode()
    return requests.post(
        f"{base_url}/v1/campaigns?{query}",
        data=data,
        headers={**ctx.headers, "Content-Type": "text/csv"},
        timeout=60,
    )


def show(base_url: str, ctx: TenantCtx, campaign_id: str) -> dict[str, object]:
    r = requests.get(f"{base_url}/v1/campaigns/{campaign_id}", headers=ctx.headers, timeout=10)
    assert r.status_code == 200, r.text
    found: dict[str, object] = r.json()
    return found


def test_a_csv_campaign_is_delivered_end_to_end(pipeline: Pipeline, ctx: TenantCtx) -> None:
    numbers = [f"+1202556{n:04d}" for n in range(7000, 7100)]
    r = post_csv(pipeline.base_url, ctx, numbers, "body=Your+order+is+late&name=late")
    assert r.status_code == 202, r.text
    campaign_id = r.json()["id"]
    deadline = time.monotonic() + 90
    while True:
        found = show(pipeline.base_url, ctx, campaign_id)
        messages = found["messages"]
        assert isinstance(messages, dict)
        if messages["by_status"] == {"delivered": 100}:
            break
        assert time.monotonic() < deadline, (found, pipeline.logs())
        time.sleep(0.5)
    assert found["status"] == "completed"
    assert found["left"] == 0
    page = requests.get(
        f"{pipeline.base_url}/v1/campaigns/{campaign_id}/recipients?limit=1",
        headers=ctx.headers,
        timeout=10,
    ).json()["data"][0]
    assert page["reference"] == "ref-7000"
    message = requests.get(
        f"{pipeline.base_url}/v1/messages/{page['message_id']}", headers=ctx.headers, timeout=10
    ).json()
    assert message["status"] == "delivered"
    assert message["campaign_id"] == campaign_id


def counts(db: Database, campaign_id: str) -> tuple[int, int, int]:
    with db.session() as s:
        made = s.scalar(
            select(func.count()).where(
                CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == "made"
            )
        )
        messages = s.scalar(select(func.count()).where(Message.campaign_id == campaign_id))
        contacts = s.scalar(
            select(func.count(func.distinct(Message.contact_id))).where(
                Message.campaign_id == campaign_id
            )
        )
    return int(made or 0), int(messages or 0), int(contacts or 0)


def test_a_worker_killed_mid_expansion_makes_each_recipient_a_message_once(
    own: Callable[..., Run],
) -> None:
    run = own(CAMPAIGN_BATCH_SIZE="10", CAMPAIGN_INTERVAL="1")
    ctx = make_tenant_ctx(run.db)
    # Three hundred batches: the kill lands mid-way even on a loaded machine, where this
    # test is slow to see the first batch and kill, and the worker is not.
    total = 3000
    numbers = [f"+1202557{n:04d}" for n in range(total)]
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    # Sent tomorrow: this test is about making the messages, not sending them.
    r = post_csv(run.pipeline.base_url, ctx, numbers, f"body=hi&send_at={later}")
    assert r.status_code == 202, r.text
    campaign_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while counts(run.db, campaign_id)[0] == 0:
        assert time.monotonic() < deadline, run.pipeline.logs()
        time.sleep(0.05)
    run.pipeline.kill("worker")  # kill -9, mid-expansion
    made_at_kill = counts(run.db, campaign_id)[0]
    assert made_at_kill < total, "the expansion finished before the kill: nothing was tested"
    run.pipeline.start_worker()
    deadline = time.monotonic() + 120
    while counts(run.db, campaign_id)[0] < total:
        assert time.monotonic() < deadline, (counts(run.db, campaign_id), run.pipeline.logs())
        time.sleep(0.5)
    time.sleep(2)  # give a doubled batch every chance to show up
    assert counts(run.db, campaign_id) == (total, total, total)
    found = show(run.pipeline.base_url, ctx, campaign_id)
    assert found["status"] == "completed"
    messages = found["messages"]
    assert isinstance(messages, dict) and messages["by_status"] == {"scheduled": total}
