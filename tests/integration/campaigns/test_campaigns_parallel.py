"""Batches of one campaign made side by side on Postgres: each recipient a message once, at
most ``parallel`` batches at a time, the campaign complete once, and a pause still waits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.infra.db import Database
from app.messaging.campaigns.expansion import Expanded, expand_batch
from app.models import AuditEvent, Campaign, CampaignRecipient, Message
from config import Settings
from tests.factories import TenantCtx
from tests.integration.campaigns.test_campaigns_api import post


@pytest.fixture(autouse=True)
def _postgres_only(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one transaction at a time: batches cannot overlap there")


def numbers(count: int, first: int = 0) -> list[str]:
    return [f"+1202555{n:04d}" for n in range(first, first + count)]


def campaign_of(client: FlaskClient, ctx: TenantCtx, count: int, first: int = 0) -> str:
    r = post(
        client, ctx, {"body": "Late", "recipients": [{"to": n} for n in numbers(count, first)]}
    )
    assert r.status_code == 202, r.get_json()
    return str(r.get_json()["id"])


def drain(db: Database, settings: Settings, campaign_id: str, size: int) -> list[Expanded]:
    """One worker's loop: batches until none is left or every slot is taken."""
    done = []
    while True:
        batch = expand_batch(db, settings, campaign_id, size, parallel=2)
        done.append(batch)
        if batch.busy or not batch.more:
            return done


def test_three_workers_share_a_campaign_and_make_each_recipient_once(
    client: FlaskClient, ctx: TenantCtx, db: Database, settings: Settings
) -> None:
    campaign_id = campaign_of(client, ctx, 1200)
    start = threading.Barrier(3)

    def worker() -> list[Expanded]:
        start.wait()
        return drain(db, settings, campaign_id, 50)

    with ThreadPoolExecutor(3) as pool:
        results = [b for f in [pool.submit(worker) for _ in range(3)] for b in f.result()]
    # A worker that found both slots taken stopped at once; what is left (if the others ended
    # first) is made by the next expansion, as beat's would.
    results += drain(db, settings, campaign_id, 50)
    assert sum(b.made for b in results) == 1200
    with db.session() as s:
        made = s.execute(
            select(CampaignRecipient.state, func.count(), func.count(CampaignRecipient.message_id))
            .where(CampaignRecipient.campaign_id == campaign_id)
            .group_by(CampaignRecipient.state)
        ).all()
        assert made == [("made", 1200, 1200)]
        messages = s.scalar(select(func.count()).where(Message.campaign_id == campaign_id))
        assert messages == 1200
        distinct = s.scalar(
            select(func.count(func.distinct(CampaignRecipient.message_id))).where(
                CampaignRecipient.campaign_id == campaign_id
            )
        )
        assert distinct == 1200
        campaign = s.get(Campaign, campaign_id)
        assert campaign is not None and campaign.status == "completed"
        assert campaign.finished_at is not None
        assert campaign.made == 1200  # counted once, at the end
    shown = client.get(f"/v1/campaigns/{campaign_id}", headers=ctx.headers).get_json()
    assert shown["recipients"]["made"] == 1200
    assert shown["messages"]["by_status"] == {"queued": 1200}


@pytest.fixture
def slots_taken(db: Database) -> Iterator[list[Session]]:
    holders: list[Session] = []
    yield holders
    for holder in holders:
        holder.rollback()
        holder.close()


def test_a_batch_that_finds_every_slot_taken_makes_nothing(
    client: FlaskClient,
    ctx: TenantCtx,
    db: Database,
    settings: Settings,
    slots_taken: list[Session],
) -> None:
    campaign_id = campaign_of(client, ctx, 20, first=2000)
    for slot in (0, 1):  # two batches at work, as far as the slots can tell
        holder = db.sessionmaker()
        holder.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:c), :s)"), {"c": campaign_id, "s": slot}
        )
        slots_taken.append(holder)
    busy = expand_batch(db, settings, campaign_id, 10, parallel=2)
    assert (busy.made, busy.busy, busy.more) == (0, True, True)
    slots_taken.pop().rollback()  # one batch ends: its slot is free
    first = expand_batch(db, settings, campaign_id, 10, parallel=2)
    assert (first.made, first.busy, first.more) == (10, False, True)
    with db.session() as s:
        left = s.scalar(
            select(func.count()).where(
                CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == "pending"
            )
        )
    assert left == 10


def test_a_pause_waits_for_the_batches_at_work_and_the_next_sees_it(
    client: FlaskClient, ctx: TenantCtx, db: Database, settings: Settings
) -> None:
    campaign_id = campaign_of(client, ctx, 40, first=2100)
    # A batch at work holds the campaign's row for share, as expand_batch does.
    batch = db.sessionmaker()
    batch.get(Campaign, campaign_id, with_for_update={"read": True})
    paused: list[int] = []

    def pause() -> None:
        r = client.post(f"/v1/campaigns/{campaign_id}/pause", headers=ctx.headers)
        paused.append(r.status_code)

    pausing = threading.Thread(target=pause)
    pausing.start()
    pausing.join(1.0)
    assert pausing.is_alive() and not paused  # the pause waits for the batch
    batch.rollback()
    batch.close()
    pausing.join(10)
    assert paused == [200]
    held = expand_batch(db, settings, campaign_id, 10, parallel=2)
    assert (held.made, held.more) == (0, False)
    with db.session() as s:
        assert s.scalar(select(func.count()).where(Message.campaign_id == campaign_id)) == 0
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.target == campaign_id)).all()
    assert "campaign.pause" in actions
