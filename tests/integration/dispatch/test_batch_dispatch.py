"""Batch dispatch: fair claims, one send per message under concurrent drains, opt-out races.

Runs on both backends: Postgres claims with ``SKIP LOCKED``; SQLite serializes claims in
its IMMEDIATE transactions, and the concurrent-drain test proves that is enough there.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, update

from app.domain.ids import new_id
from app.infra.db import Database
from app.infra.ratelimit import DatabaseLimiter, RateLimiter
from app.messaging.compliance.consent import lock_contact, record_consent
from app.messaging.contacts import get_or_create_contact
from app.messaging.dispatch import fair
from app.messaging.dispatch.batch import dispatch_batch, dispatch_message, drain_lane
from app.messaging.dispatch.claims import claim_batch
from app.models import Contact, Message, MessageEvent, Tenant
from config import Settings
from scripts.fake_twilio import FakeTwilio
from tests.factories import TenantCtx, make_tenant_ctx
from tests.support.twilio import twilio_ctx


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    """A fake Twilio that records every send, with no callbacks."""
    server = FakeTwilio(callback_delay=0, send_callbacks=False).start()
    yield server
    server.stop()


def seed(
    db: Database, ctx: TenantCtx, recipients: list[str], priority: str = "normal"
) -> list[str]:
    """Queued messages, as intake leaves them, without their wake-up tasks."""
    now = datetime.now(UTC)
    ids: list[str] = []
    with db.session() as s:
        for to in recipients:
            contact = get_or_create_contact(s, ctx.tenant_id, to)
            message_id = new_id("msg")
            s.execute(
                insert(Message).values(
                    id=message_id, tenant_id=ctx.tenant_id, direction="outbound", channel="sms",
                    channels=["sms"], account_id=ctx.account_id, contact_id=contact.id,
                    body="hello", priority=priority, status="queued", attempts=0, throttles=0,
                    segments=1, encoding="GSM-7", quiet_hours="respect", metadata={},
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
            ids.append(message_id)
    return ids


def clear_lane(db: Database, settings: Settings, lane: str) -> None:
    """Other tests leave queued messages behind (no worker runs here): settle the lane."""
    with db.session() as s:
        s.execute(
            update(Message)
            .where(Message.status == "queued", Message.priority == lane)
            .values(status="canceled", status_reason="canceled_by_api")
        )


def statuses(db: Database, ids: list[str]) -> dict[str, str]:
    with db.session() as s:
        rows = s.execute(select(Message.id, Message.status).where(Message.id.in_(ids)))
        return {i: status for i, status in rows}


def test_a_lane_drains_in_batches_and_each_message_is_sent_once(
    db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    clear_lane(db, settings, "normal")
    ctx = twilio_ctx(db, fake)
    recipients = [f"+1202555{7000 + n:04d}" for n in range(25)]
    ids = seed(db, ctx, recipients)
    small = dataclasses.replace(settings, dispatch_batch_size=10)
    handled, more = drain_lane(db, small, DatabaseLimiter(), "normal")
    assert (handled, more) == (25, False)
    assert set(statuses(db, ids).values()) == {"accepted"}
    assert Counter(s.to for s in fake.sent) == Counter(recipients)
    # Every message went through both steps, one event each, in order.
    with db.session() as s:
        steps = s.execute(
            select(MessageEvent.to_status, MessageEvent.data)
            .where(MessageEvent.message_id == ids[0])
            .order_by(MessageEvent.id)
        ).all()
    assert [to for to, _ in steps] == ["dispatched", "accepted"]
    assert steps[0][1]["policy"] == {"verdict": "allow", "rule": "default"}
    assert steps[1][1]["provider_message_id"].startswith("SM")
    # Nothing is queued any more: a second drain sends nothing.
    assert drain_lane(db, small, DatabaseLimiter(), "normal") == (0, False)
    assert len(fake.sent) == 25


def test_two_drains_side_by_side_never_send_a_message_twice(
    db: Database, settings: Settings, fake: FakeTwilio, app: object
) -> None:
    clear_lane(db, settings, "bulk")
    ctx = twilio_ctx(db, fake)
    recipients = [f"+1202556{n:03d}8" for n in range(120)]
    ids = seed(db, ctx, recipients, priority="bulk")
    small = dataclasses.replace(settings, dispatch_batch_size=15)
    limiter: RateLimiter = app.extensions["switchboard.limiter"]  # type: ignore[attr-defined]
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            while drain_lane(db, small, limiter, "bulk")[1]:
                pass
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=drain) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert set(statuses(db, ids).values()) == {"accepted"}
    assert Counter(s.to for s in fake.sent) == Counter(recipients)  # exactly once each


def _tenant_with_weight(db: Database, weight: int) -> TenantCtx:
    ctx = make_tenant_ctx(db)
    with db.session() as s:
        tenant = s.get(Tenant, ctx.tenant_id)
        assert tenant is not None
        tenant.dispatch_weight = weight
    return ctx


def test_a_batch_is_shared_between_tenants_by_weight_and_fifo_is_not(
    db: Database, settings: Settings
) -> None:
    clear_lane(db, settings, "bulk")
    flood = _tenant_with_weight(db, 1)
    heavy = _tenant_with_weight(db, 3)
    small = _tenant_with_weight(db, 1)
    flood_ids = seed(db, flood, [f"+1202557{n:04d}" for n in range(60)], "bulk")
    heavy_ids = seed(db, heavy, [f"+1202558{n:04d}" for n in range(60)], "bulk")
    (lone,) = seed(db, small, ["+12025559999"], "bulk")
    batch = dataclasses.replace(settings, dispatch_batch_size=20)

    fifo = claim_batch(db, batch, DatabaseLimiter(), lane="bulk", fifo=True)
    taken = {c.request.message_id for c in fifo.claims}
    assert taken == set(flood_ids[:20])  # oldest first: the flood fills the batch

    fair_batch = claim_batch(db, batch, DatabaseLimiter(), lane="bulk")
    taken = {c.request.message_id for c in fair_batch.claims}
    assert lone in taken  # the small tenant's one message is in the very next batch
    from_flood = len(taken & set(flood_ids))
    from_heavy = len(taken & set(heavy_ids))
    assert (from_flood, from_heavy) == (4, 12)  # 20 places by weight 1:3:1, the lone one used 1
    assert fair_batch.full is False  # the lone tenant left 3 of its 4 places unused


def test_shares_give_every_tenant_a_place_and_rotate_past_the_batch_size() -> None:
    tenants = [(f"t{i}", 1) for i in range(5)]
    assert fair.shares(tenants, 10, 0) == [(f"t{i}", 2) for i in range(5)]
    assert fair.shares([("a", 1), ("b", 3)], 8, 0) == [("a", 2), ("b", 6)]
    assert fair.shares([("a", 1), ("b", 100)], 8, 0) == [("a", 1), ("b", 7)]
    # More tenants than places: a window of them, starting where the last batch stopped.
    assert [t for t, _ in fair.shares(tenants, 2, 0)] == ["t0", "t1"]
    assert [t for t, _ in fair.shares(tenants, 2, 4)] == ["t4", "t0"]
    assert fair.shares([], 10, 0) == []


def test_the_batch_claim_applies_the_policy_to_each_message(
    db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    """One batch: an opted-out recipient is canceled, an expired one expires, the rest go."""
    ctx = twilio_ctx(db, fake)
    ok, opted_out, expired = seed(db, ctx, ["+12025550161", "+12025550162", "+12025550163"])
    with db.session() as s:
        contact = s.scalar(
            select(Contact)
            .join(Message, Message.contact_id == Contact.id)
            .where(Message.id == opted_out)
        )
        assert contact is not None
        record_consent(s, contact, channel="all", status="opted_out", source="api")
        # The opt-out canceled it at once; put it back as if it had raced the cancel.
        s.execute(update(Message).where(Message.id == opted_out).values(status="queued"))
        s.execute(
            update(Message)
            .where(Message.id == expired)
            .values(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
    report = dispatch_batch(db, settings, DatabaseLimiter(), ids=[ok, opted_out, expired])
    assert report.results == {ok: "accepted", opted_out: "canceled", expired: "expired"}
    assert [s.to for s in fake.sent] == ["+12025550161"]


@pytest.mark.postgres
def test_an_opt_out_holding_the_contact_keeps_its_message_out_of_the_batch(
    db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    """The claim never waits for an opt-out in progress, and never sends past it."""
    ctx = twilio_ctx(db, fake)
    (message_id,) = seed(db, ctx, ["+12025550171"])
    with db.session() as s:
        contact_id = s.scalar(select(Message.contact_id).where(Message.id == message_id))
    assert contact_id is not None
    opt_out = db.sessionmaker()
    try:
        contact = lock_contact(opt_out, contact_id)  # the opt-out has begun
        assert contact is not None
        report = dispatch_batch(db, settings, DatabaseLimiter(), ids=[message_id])
        assert report.results == {message_id: "contended"} and report.contended
        assert statuses(db, [message_id]) == {message_id: "queued"}
        record_consent(opt_out, contact, channel="all", status="opted_out", source="api")
        opt_out.commit()
    finally:
        opt_out.close()
    assert statuses(db, [message_id]) == {message_id: "canceled"}
    assert dispatch_message(db, settings, message_id) == "skipped:canceled"
    assert fake.sent == []


@pytest.mark.postgres
def test_wakes_coalesce_per_key_until_the_drain_clears_them(backend: object) -> None:
    import redis

    from app.infra.wakes import Wakes
    from tests.support.backends import TEST_REDIS_URL

    prefix = f"{backend.redis_prefix}wakes-test:"  # type: ignore[attr-defined]
    wakes = Wakes(redis.Redis.from_url(TEST_REDIS_URL), prefix, ttl=30)
    assert wakes.should_publish("dispatch.normal", "ten_a") is True
    assert wakes.should_publish("dispatch.normal", "ten_a") is False  # one is waiting
    assert wakes.should_publish("dispatch.normal", "ten_b") is True  # another tenant
    assert wakes.should_publish("dispatch.bulk", "ten_a") is True  # another lane
    assert wakes.should_publish("dispatch.normal", None) is True  # not a coalescing wake
    wakes.clear("dispatch.normal", "ten_a")  # the drain started
    assert wakes.should_publish("dispatch.normal", "ten_a") is True
    # A batch of keys in one round trip (the outbox's publisher thread): ten_a waits.
    batch = [("dispatch.normal", "ten_c"), ("dispatch.normal", "ten_a"), ("intake", "inbox")]
    assert wakes.to_publish(batch) == {("dispatch.normal", "ten_c"), ("intake", "inbox")}
    assert wakes.to_publish(batch) == set()
    # Without Redis (the embedded default), or with Redis away, every wake is published.
    assert Wakes(None).should_publish("dispatch.normal", "ten_a") is True
    away = Wakes(redis.Redis(port=1, socket_connect_timeout=0.2), prefix)
    assert away.should_publish("dispatch.normal", "ten_a") is True
    assert away.to_publish(batch) == set(batch)
