"""Compliance and conversations end to end: real web, worker and beat, the fake Twilio
posting inbound messages signed as Twilio signs them (its RequestValidator), real sends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from app.domain.queues import QueueNames
from app.infra.db import Database
from app.providers import webhook_url
from scripts.fake_twilio import FakeTwilio
from tests.e2e.conftest import Run
from tests.e2e.test_pipeline import get, send, wait_final, wait_until
from tests.factories import TenantCtx, add_api_key, make_tenant_ctx
from tests.support.pii import forms, leaks
from tests.support.processes import Pipeline

pytestmark = pytest.mark.e2e
SENDER = "+12025550199"


def twilio_tenant(db: Database, fake: FakeTwilio, **kw: Any) -> TenantCtx:
    return make_tenant_ctx(
        db,
        provider="twilio",
        credentials={
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "base_url": fake.base_url,
        },
        **kw,
    )


def reply(pipeline: Pipeline, fake: FakeTwilio, ctx: TenantCtx, phone: str, text: str) -> None:
    url = webhook_url(pipeline.base_url, "twilio", ctx.account_id)
    r = fake.post_inbound(url, from_=phone, to=SENDER, body=text)
    assert r.status_code == 200, r.text


def admin(db: Database, ctx: TenantCtx, *scopes: str) -> dict[str, str]:
    key = add_api_key(db, ctx.tenant_id, scopes or ("admin",))
    return {"Authorization": f"Bearer {key}"}


def inbound_messages(pipeline: Pipeline, ctx: TenantCtx) -> list[dict[str, Any]]:
    r = requests.get(
        f"{pipeline.base_url}/v1/messages", params={"status": "received"}, headers=ctx.headers
    )
    return [get(pipeline, ctx, m["id"]) for m in r.json()["data"]]


def sent_to(fake: FakeTwilio, phone: str) -> list[str | None]:
    return [s.body for s in fake.sent if s.to == phone]


def test_stop_opts_out_confirms_once_and_refuses_the_next_send(
    pipeline: Pipeline, db: Database, fake: FakeTwilio
) -> None:
    ctx = twilio_tenant(db, fake, quiet_hours="00:00-23:59")  # quiet all day but a minute
    phone = "+12025557001"
    waiting = send(pipeline, ctx, phone, send_at="2099-01-01T00:00:00Z")
    reply(pipeline, fake, ctx, phone, " Stop! ")
    # The confirmation goes at once, through the provider, despite quiet hours.
    wait_until(
        pipeline,
        lambda: (
            {"ok": True} if any("unsubscribed" in (b or "") for b in sent_to(fake, phone)) else None
        ),
        "the opt-out confirmation to be sent",
    )
    body = get(pipeline, ctx, waiting)
    assert (body["status"], body["status_reason"]) == ("canceled", "recipient_opted_out")
    r = requests.post(
        f"{pipeline.base_url}/v1/messages",
        json={"to": phone, "body": "one more?"},
        headers=ctx.headers,
        timeout=10,
    )
    assert (r.status_code, r.json()["reason"]) == (422, "recipient_opted_out")
    consents = requests.get(
        f"{pipeline.base_url}/v1/consents",
        params={"phone": phone},
        headers=admin(db, ctx, "consents:read"),
        timeout=10,
    ).json()
    assert [(h["status"], h["source"]) for h in consents["history"]] == [("opted_out", "keyword")]
    # A second STOP is recorded on its message, and answered with nothing.
    reply(pipeline, fake, ctx, phone, "STOP")
    wait_until(
        pipeline,
        lambda: {"ok": True} if len(inbound_messages(pipeline, ctx)) == 2 else None,
        "the second STOP recorded",
    )
    time.sleep(1)
    assert len(sent_to(fake, phone)) == 1


def test_a_reply_cancels_the_rest_of_its_journey_and_is_routed(
    pipeline: Pipeline, db: Database, fake: FakeTwilio
) -> None:
    ctx = twilio_tenant(db, fake)
    headers = admin(db, ctx)
    rule = {
        "name": "Pricing questions",
        "match": "keywords",
        "values": ["pricing", "how much"],
        "action": "escalate",
        "target": "sales",
    }
    created = requests.post(
        f"{pipeline.base_url}/v1/routing-rules", json=rule, headers=headers, timeout=10
    )
    assert created.status_code == 201, created.text
    phone = "+12025557002"
    first = wait_final(pipeline, ctx, send(pipeline, ctx, phone, journey_id="trial"))
    assert first["status"] == "delivered"
    nudge = send(pipeline, ctx, phone, journey_id="trial", send_at="2099-01-01T00:00:00Z")
    reply(pipeline, fake, ctx, phone, "How much is the pricing after the trial?")

    def canceled() -> dict[str, Any] | None:
        body = get(pipeline, ctx, nudge)
        return body if body["status"] == "canceled" else None

    assert wait_until(pipeline, canceled, "the nudge canceled")["status_reason"] == "replied"
    (inbound,) = inbound_messages(pipeline, ctx)
    assert inbound["from"] == phone and inbound["metadata"]["in_reply_to"] == first["id"]
    notes = [
        (e["kind"], e["data"].get("target")) for e in inbound["events"] if e["outcome"] == "note"
    ]
    assert notes == [("escalated", "sales"), ("routed", None)]
    assert "replied" in [e["kind"] for e in get(pipeline, ctx, first["id"])["events"]]


def test_erasure_through_the_running_pipeline_leaves_nothing(
    pipeline: Pipeline, db: Database, fake: FakeTwilio
) -> None:
    ctx = twilio_tenant(db, fake)
    phone = "+13125557003"
    secret = f"e2e-secret-{time.time_ns()}"
    sent = wait_final(pipeline, ctx, send(pipeline, ctx, phone, body=secret))
    reply(pipeline, fake, ctx, phone, f"re: {secret}")
    wait_until(
        pipeline,
        lambda: {"ok": True} if inbound_messages(pipeline, ctx) else None,
        "the reply recorded",
    )
    headers = admin(db, ctx)
    r = requests.delete(
        f"{pipeline.base_url}/v1/contacts", params={"phone": phone}, headers=headers, timeout=10
    )
    assert r.status_code == 200, r.text
    assert leaks(db, [secret, *forms(phone)]) == []
    body = get(pipeline, ctx, sent["id"])
    assert (body["to"], body["body"], body["status"]) == ("", None, "delivered")


def test_an_opt_out_while_a_send_sits_queued_means_it_never_goes(
    own: Callable[..., Run], fake: FakeTwilio
) -> None:
    run = own()
    ctx = twilio_tenant(run.db, fake)
    # The bulk lane has no worker for now: the send sits queued on it.
    run.pipeline.stop("worker")
    others = [q for q in QueueNames.all() if q != QueueNames.BULK]
    run.pipeline.start_worker("worker", queues=others)
    phone = "+12025557004"
    queued = send(run.pipeline, ctx, phone, priority="bulk", body="your weekly digest")
    assert get(run.pipeline, ctx, queued)["status"] == "queued"
    reply(run.pipeline, fake, ctx, phone, "STOP")
    wait_until(
        run.pipeline,
        lambda: {"ok": True} if sent_to(fake, phone) else None,
        "the confirmation sent",
    )
    run.pipeline.start_worker("bulk", queues=[QueueNames.BULK])
    body = wait_final(run.pipeline, ctx, queued)
    assert (body["status"], body["status_reason"]) == ("canceled", "recipient_opted_out")
    time.sleep(2)  # every chance for the bulk worker to (wrongly) send it
    assert [b for b in sent_to(fake, phone) if b == "your weekly digest"] == []
