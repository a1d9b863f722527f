"""Postgres cut mid-upload on the running pipeline: the answer is 503, the campaign holds whole
batches as a draft that sends nothing, and the same request again completes it, each number
once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import requests
from sqlalchemy import func, select

from app.messaging.campaigns import store
from app.models import Campaign, CampaignRecipient, Message
from tests.e2e.conftest import Run
from tests.e2e.test_crashes import FAST_RECOVERY
from tests.factories import make_tenant_ctx
from tests.support.backends import ADMIN_PG_URL
from tests.support.tcp_proxy import proxy_for, via

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

NUMBERS = [f"+1202557{n:04d}" for n in range(10_000)]
CUT_AT = 7500  # rows sent before the cut: more than the 64 KiB the web reads, and a batch
KEY = "upload-across-a-cut"


def test_postgres_cut_mid_upload_503_then_the_retry_completes_each_number_once(
    own: Callable[..., Run],
) -> None:
    proxy = proxy_for(ADMIN_PG_URL)
    run = own(**FAST_RECOVERY)
    ctx = make_tenant_ctx(run.db)
    # The web reaches Postgres through the proxy; the workers do not (they are not cut).
    run.pipeline.stop("web")
    run.pipeline.env = {
        **run.pipeline.env,
        "DATABASE_URL": via(run.pipeline.env["DATABASE_URL"], proxy),
    }
    run.pipeline.start_web()
    url = f"{run.pipeline.base_url}/v1/campaigns?body=Your+order+is+late&name=cut"
    headers = {**ctx.headers, "Content-Type": "text/csv", "Idempotency-Key": KEY}

    def held() -> int:
        with run.db.session() as s:
            found = s.scalar(
                select(func.count())
                .select_from(CampaignRecipient)
                .join(Campaign, Campaign.id == CampaignRecipient.campaign_id)
                .where(Campaign.tenant_id == ctx.tenant_id)
            )
        return int(found or 0)

    def streamed() -> Iterator[bytes]:
        yield b"phone\n"
        for start in range(0, len(NUMBERS), 500):
            if start == CUT_AT:  # once some batches are written, Postgres goes away
                deadline = time.monotonic() + 30
                while held() == 0 and time.monotonic() < deadline:
                    time.sleep(0.1)
                proxy.stop()
            yield "".join(f"{n}\n" for n in NUMBERS[start : start + 500]).encode()

    try:
        down = requests.post(url, data=streamed(), headers=headers, timeout=60)
        assert down.status_code == 503, down.text
        assert down.json()["reason"] == "database_unavailable", down.text
        assert "same Idempotency-Key" in down.json()["detail"]
    finally:
        proxy.start()
    with run.db.session() as s:
        campaign = s.scalar(select(Campaign).where(Campaign.tenant_id == ctx.tenant_id))
        assert campaign is not None and campaign.status == "draft"  # a draft: it sends nothing
        assert s.scalar(select(func.count()).where(Message.campaign_id == campaign.id)) == 0
    kept = held()
    # Exactly the batches that committed.
    assert 0 < kept <= CUT_AT and kept % store.BATCH == 0, (kept, store.BATCH)
    assert down.json()["campaign_id"] == campaign.id

    body = ("phone\n" + "".join(f"{n}\n" for n in NUMBERS)).encode()
    retry = requests.post(url, data=body, headers=headers, timeout=60)
    assert retry.status_code == 202, retry.text
    shown = retry.json()
    assert shown["id"] == campaign.id  # the same campaign, now started
    assert shown["recipients"]["total"] == len(NUMBERS)
    deadline = time.monotonic() + 120
    while True:
        with run.db.session() as s:
            made = s.scalar(select(func.count()).where(Message.campaign_id == campaign.id))
        if made == len(NUMBERS):
            break
        assert time.monotonic() < deadline, (made, run.pipeline.logs())
        time.sleep(0.5)
    with run.db.session() as s:
        recipients = s.execute(
            select(
                func.count(),
                func.count(func.distinct(CampaignRecipient.phone_index)),
                func.count(func.distinct(CampaignRecipient.message_id)),
            ).where(CampaignRecipient.campaign_id == campaign.id)
        ).one()
    assert tuple(recipients) == (len(NUMBERS),) * 3  # each number once, each a message once
    proxy.stop()
