"""A body campaign's batches made by column (``in_bulk``) are the batches ``per_recipient``
makes, row for row: the same messages, events, contacts, recipients' outcomes, wakes and
metrics, for recipients in several zones, quiet hours, an opt-out that came after the upload,
a contact that already had a zone, a row from before zones were kept, and messages born
expired (which owe the CRM their event)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import event, func, select, update

from app.infra.db import Database
from app.messaging.campaigns import expansion, in_bulk, per_recipient
from app.messaging.campaigns.control import control
from app.messaging.campaigns.expansion import expand_batch
from app.messaging.campaigns.submit import expansions_for
from app.messaging.compliance.consent import record_consent
from app.messaging.contacts import get_or_create_contact
from app.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    CrmConnection,
    CrmSync,
    Message,
    MessageEvent,
    OutboxRow,
)
from app.observability.metrics import REGISTRY
from config import Settings
from tests.factories import TenantCtx, make_tenant_ctx
from tests.integration.campaigns.test_campaigns_api import post

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 08:00 in New York: quiet until 09:00
RECIPIENTS = [
    ("+12015550101", "ny-1"),  # America/New_York: in quiet hours
    ("+12015550102", "ny-2"),
    ("+447400123456", "gb"),  # Europe/Guernsey: afternoon
    ("+33612345678", "fr-old"),  # a row from before zones were kept
    ("+61412345678", "au"),  # several zones: the tenant's (UTC) applies
    ("+4915123456789", "de-known"),  # a contact whose zone was set to New York
    ("+12015550103", "opted-out"),  # opted out after the upload
]


@pytest.fixture(autouse=True)
def _postgres_only(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the column-wise way is Postgres's; SQLite makes each recipient in Python")


def _tenant(db: Database) -> TenantCtx:
    ctx = make_tenant_ctx(db, quiet_hours="21:00-09:00", timezone="UTC")
    with db.session() as s:  # so that a final status owes the CRM its activity
        s.add(CrmConnection(tenant_id=ctx.tenant_id, kind="webhook", config="{}"))
        s.commit()
    return ctx


def _prepare(client: FlaskClient, db: Database, ctx: TenantCtx, ttl: int) -> str:
    """A started campaign whose expansion meets every case above."""
    with db.session() as s:
        known = get_or_create_contact(s, ctx.tenant_id, "+4915123456789")
        known.timezone = "America/New_York"
        known.locale = "de"
        s.commit()
    body = {
        "body": "Your order is late",
        "ttl_seconds": ttl,
        "recipients": [{"to": phone, "reference": ref} for phone, ref in RECIPIENTS],
    }
    r = post(client, ctx, body)
    assert r.status_code == 202, r.get_json()
    campaign_id = str(r.get_json()["id"])
    with db.session() as s:
        s.execute(
            update(CampaignRecipient)
            .where(
                CampaignRecipient.campaign_id == campaign_id,
                CampaignRecipient.reference == "fr-old",
            )
            .values(timezone=None)
        )
        contact = get_or_create_contact(s, ctx.tenant_id, "+12015550103")
        record_consent(s, contact, channel="all", status="opted_out", source="api")
        s.commit()
    return campaign_id


_COLUMNS = (
    "direction", "channel", "channels", "body", "media", "priority", "status", "status_reason",
    "attempts", "throttles", "not_before", "expires_at", "segments", "encoding", "quiet_hours",
    "metadata_", "template_id", "template_version", "template_locale", "alternates",
    "created_at", "updated_at", "journey_id", "idempotency_key", "provider_message_id",
    "next_attempt_at",
)  # fmt: skip


def _transitions() -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for metric in REGISTRY.collect():
        if metric.name != "switchboard_transitions":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                found[(sample.labels["status"], sample.labels["reason"])] = sample.value
    return found


def _expand(db: Database, settings: Settings, campaign_id: str) -> tuple[list[str], Any]:
    """Expand the campaign; the statements it ran, and the metrics it counted."""
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    before = _transitions()
    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        with freeze_time(NOON):
            while expand_batch(db, settings, campaign_id, 500).more:
                pass
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    after = _transitions()
    counted = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    return statements, counted


def _snapshot(db: Database, campaign_id: str) -> dict[str, Any]:
    """Everything the expansion wrote, keyed by each recipient's reference (ids left out)."""
    with db.session() as s:
        campaign = s.get(Campaign, campaign_id)
        assert campaign is not None
        recipients = {
            r.reference: (r.state, r.reason, r.message_id is not None)
            for r in s.scalars(
                select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign_id)
            )
        }
        messages: dict[str | None, Any] = {}
        for m in s.scalars(select(Message).where(Message.campaign_id == campaign_id)):
            contact = s.get(Contact, m.contact_id)
            assert contact is not None
            events = [
                (e.kind, e.from_status, e.to_status, e.outcome, e.reason, e.source, e.data)
                for e in s.scalars(
                    select(MessageEvent)
                    .where(MessageEvent.message_id == m.id)
                    .order_by(MessageEvent.id)
                )
            ]
            syncs = s.scalar(select(func.count()).where(CrmSync.message_id == m.id))
            messages[m.external_ref] = {
                "row": {c: getattr(m, c) for c in _COLUMNS},
                "account_is_the_tenants": m.account_id is not None,
                "contact": (contact.phone, contact.timezone, contact.locale),
                "events": events,
                "crm_syncs": syncs,
                "recipient_points_here": recipients[m.external_ref][2],
            }
        return {
            "status": campaign.status,
            "made": campaign.made,
            "recipients": recipients,
            "messages": messages,
        }


@pytest.fixture
def each_way(
    client: FlaskClient, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    def run(ttl: int, bulk: bool) -> tuple[dict[str, Any], list[str], Any]:
        ctx = _tenant(db)
        campaign_id = _prepare(client, db, ctx, ttl)
        monkeypatch.setattr(expansion.in_bulk, "takes", lambda *_: bulk)
        wakes: list[tuple[Any, ...]] = []
        for module in (in_bulk, per_recipient):
            real = module.enqueue

            def noted(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
                wakes.append((args[1], args[3], kwargs.get("wake")))
                return _real(*args, **kwargs)

            monkeypatch.setattr(module, "enqueue", noted)
        statements, counted = _expand(db, settings, campaign_id)
        snap = _snapshot(db, campaign_id)
        # The wakes owed: one dispatch wake a batch with a queued message, on its lane.
        snap["wakes"] = [(task, lane, wake == ctx.tenant_id) for task, lane, wake in wakes]
        return snap, statements, counted

    yield run


@pytest.mark.parametrize("ttl", [86400, 600], ids=["scheduled-until-morning", "born-expired"])
def test_in_bulk_makes_what_per_recipient_makes(each_way: Any, ttl: int) -> None:
    by_column, statements, bulk_counted = each_way(ttl, True)
    one_by_one, _, each_counted = each_way(ttl, False)
    assert by_column == one_by_one
    assert bulk_counted == each_counted
    # It is the column-wise way that ran: its INSERT ... SELECT FROM unnest of messages.
    assert any(s.startswith("INSERT INTO messages") and "unnest" in s for s in statements)


def test_the_cases_land_where_they_should(each_way: Any) -> None:
    """Not only alike: right. Each recipient's status, reason and zone."""
    snap, _, counted = each_way(86400, True)
    m = snap["messages"]
    assert snap["recipients"]["opted-out"] == ("skipped", "recipient_opted_out", False)
    assert "opted-out" not in m
    for ref in ("ny-1", "ny-2", "de-known"):  # 08:00 in New York: quiet until 09:00
        assert m[ref]["row"]["status"] == "scheduled", ref
        assert m[ref]["row"]["status_reason"] == "quiet_hours"
        assert m[ref]["row"]["not_before"] == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    for ref in ("gb", "fr-old", "au"):
        assert m[ref]["row"]["status"] == "queued", ref
    assert m["fr-old"]["contact"][1] == "Europe/Paris"  # found from the number
    assert m["gb"]["contact"][1] == "Europe/Guernsey"  # kept by the upload
    assert m["au"]["contact"][1] is None
    assert m["de-known"]["contact"] == ("+4915123456789", "America/New_York", "de")
    assert m["gb"]["contact"][0] == "+447400123456"  # the ciphertext copied decrypts
    assert [e[2] for e in m["gb"]["events"]] == ["pending", "queued"]
    assert snap["wakes"] == [("dispatch_message", "dispatch.bulk", True)]
    assert snap["status"] == "completed" and snap["made"] == 6
    assert counted == {
        ("pending", "created"): 6,
        ("queued", ""): 3,
        ("scheduled", "quiet_hours"): 3,
    }


def test_born_expired_owes_the_crm_as_any_final_status(each_way: Any) -> None:
    snap, _, _ = each_way(600, True)
    expired = {ref: v for ref, v in snap["messages"].items() if v["row"]["status"] == "expired"}
    assert set(expired) == {"ny-1", "ny-2", "de-known"}
    for ref, message in expired.items():
        assert message["row"]["status_reason"] == "expired", ref
        assert message["crm_syncs"] == 1, ref  # its activity, owed to the connection
    others = [v for v in snap["messages"].values() if v["row"]["status"] != "expired"]
    assert others and all(v["crm_syncs"] == 0 for v in others)


def test_a_batch_costs_the_same_statements_whatever_its_size(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    """The statement count per batch does not grow with the batch (one per group at most)."""

    def statements_for(count: int, first: int) -> int:
        ctx = make_tenant_ctx(db)
        recipients = [{"to": f"+1202555{n:04d}"} for n in range(first, first + count)]
        r = post(client, ctx, {"body": "Hi", "recipients": recipients})
        assert r.status_code == 202, r.get_json()
        seen: list[str] = []
        here = threading.get_ident()

        def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if threading.get_ident() == here:  # not the outbox's threads, which come and go
                seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", note)
        try:
            batch = expand_batch(db, settings, str(r.get_json()["id"]), count + 1)
        finally:
            event.remove(db.engine, "before_cursor_execute", note)
        assert batch.made == count
        return len(seen)

    assert statements_for(10, 6000) == statements_for(400, 6100)


def test_a_large_start_owes_its_side_by_side_expansions_at_once(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    """A campaign of more than a batch starts with CAMPAIGN_PARALLEL expansion tasks owed,
    not one that owes helpers only after its first batch; a small one with one."""
    assert expansions_for(settings, settings.campaign_batch_size) == 1
    assert expansions_for(settings, settings.campaign_batch_size + 1) == settings.campaign_parallel
    ctx = make_tenant_ctx(db)
    r = post(client, ctx, {"body": "Hi", "recipients": [{"to": "+12025556200"}], "start": False})
    assert r.status_code == 201, r.get_json()
    with db.session() as s:
        campaign = s.get(Campaign, r.get_json()["id"], with_for_update=True)
        assert campaign is not None
        control(s, campaign, "start", "test", expansions=3)
        s.flush()
        owed = s.scalars(select(OutboxRow).where(OutboxRow.task_name == "expand_campaign"))
        assert [o.args for o in owed].count([campaign.id]) == 3
        s.rollback()
