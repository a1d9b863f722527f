"""End to end on real processes: intent, lane, sandbox provider, signed webhook, final status."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.infra.db import Database
from app.models import OutboxRow
from config import Settings
from tests.factories import TenantCtx
from tests.support.processes import Pipeline
from tests.support.tcp_proxy import TcpProxy, via

pytestmark = pytest.mark.e2e
FINAL = {"delivered", "read", "failed", "undelivered", "expired", "canceled"}


def send(pipeline: Pipeline, ctx: TenantCtx, to: str, **extra: Any) -> str:
    r = requests.post(
        f"{pipeline.base_url}/v1/messages",
        json={"to": to, "body": "hi", **extra},
        headers=ctx.headers,
        timeout=10,
    )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def get(pipeline: Pipeline, ctx: TenantCtx, message_id: str) -> dict[str, Any]:
    r = requests.get(
        f"{pipeline.base_url}/v1/messages/{message_id}", headers=ctx.headers, timeout=10
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def wait_until(
    pipeline: Pipeline, check: Callable[[], dict[str, Any] | None], what: str, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{pipeline.logs()}")


def wait_final(pipeline: Pipeline, ctx: TenantCtx, message_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = get(pipeline, ctx, message_id)
        return body if body["status"] in FINAL else None

    return wait_until(pipeline, check, f"{message_id} to reach a final status")


def applied(body: dict[str, Any]) -> list[str]:
    return [e["to"] for e in body["events"] if e["outcome"] == "applied"]


def test_intent_reaches_delivered_through_signed_sandbox_receipts(
    pipeline: Pipeline, ctx: TenantCtx
) -> None:
    body = wait_final(pipeline, ctx, send(pipeline, ctx, "+12025550100"))
    assert body["status"] == "delivered"
    assert body["provider_message_id"].startswith("SBX")
    moves = applied(body)
    assert moves[:5] == ["pending", "queued", "dispatched", "accepted", moves[4]]
    assert moves[-1] == "delivered"
    assert {e["source"] for e in body["events"] if e["to"] in {"sent", "delivered"}} == {
        "webhook:sandbox"
    }


@pytest.mark.parametrize(
    ("to", "status", "must_include"),
    [
        ("+12025550001", "failed", ["dispatched", "failed"]),
        ("+12025550002", "undelivered", ["accepted", "undelivered"]),
        ("+12025550003", "delivered", ["scheduled", "queued", "accepted", "delivered"]),
        ("+12025550004", "delivered", ["scheduled", "accepted", "delivered"]),
    ],
)
def test_sandbox_outcomes(
    pipeline: Pipeline, ctx: TenantCtx, to: str, status: str, must_include: list[str]
) -> None:
    body = wait_final(pipeline, ctx, send(pipeline, ctx, to))
    assert body["status"] == status, body
    moves = applied(body)
    for step in must_include:
        assert step in moves, moves
    if to.endswith("0001"):
        assert body["status_reason"] == "invalid_number"
    if to.endswith("0002"):
        assert body["status_reason"] == "landline_or_unreachable"
    if to.endswith("0003"):
        assert body["attempts"] == 1  # a throttle is not a failed attempt
        assert any(e["reason"] == "throttled" for e in body["events"])
    if to.endswith("0004"):
        assert body["attempts"] == 3
        assert moves.count("dispatched") == 3


def test_no_receipt_leaves_the_message_accepted(pipeline: Pipeline, ctx: TenantCtx) -> None:
    mid = send(pipeline, ctx, "+12025550005")

    def accepted() -> dict[str, Any] | None:
        body = get(pipeline, ctx, mid)
        return body if body["status"] == "accepted" else None

    wait_until(pipeline, accepted, "accepted")
    ok = wait_final(
        pipeline, ctx, send(pipeline, ctx, "+12025550100")
    )  # a later message finishes...
    assert ok["status"] == "delivered"
    assert get(pipeline, ctx, mid)["status"] == "accepted"  # ...and this one is still waiting


def test_redelivered_dispatch_task_sends_nothing_twice(
    pipeline: Pipeline, ctx: TenantCtx, app: Flask
) -> None:
    mid = send(pipeline, ctx, "+12025550100")
    body = wait_final(pipeline, ctx, mid)
    celery = app.extensions["celery"]
    for _ in range(2):
        celery.send_task("dispatch_message", args=[mid], queue="dispatch.normal")

    # Watch for a window in which a duplicate send would show up in the timeline.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        again = get(pipeline, ctx, mid)
        assert applied(again).count("dispatched") == 1
        time.sleep(0.3)
    assert get(pipeline, ctx, mid)["attempts"] == body["attempts"] == 1


def test_broker_down_at_intake_then_back(
    pipeline: Pipeline, ctx: TenantCtx, settings: Settings, db: Database
) -> None:
    """The web side loses its broker: 202 anyway, the task waits in the outbox, and beat's relay
    (whose own broker connection is healthy, as after a recovery) gets it dispatched."""
    if not settings.broker_url.startswith("redis"):
        pytest.skip("needs a network broker to take down")
    proxy = TcpProxy("127.0.0.1", 1)  # never started: the broker is down for this app
    web = create_app({"settings": replace(settings, broker_url=via(settings.broker_url, proxy))})
    r = web.test_client().post(
        "/v1/messages", json={"to": "+12025550100", "body": "while down"}, headers=ctx.headers
    )
    assert r.status_code == 202
    mid = r.get_json()["id"]
    with db.session() as s:
        owed = [row.args for row in s.scalars(select(OutboxRow))]
    assert [mid] in owed, "the dispatch must wait in the outbox"
    body = wait_final(pipeline, ctx, mid)
    assert body["status"] == "delivered"
    assert applied(body).count("dispatched") == 1


def test_cancel_before_dispatch_is_honoured_by_the_worker(
    pipeline: Pipeline, ctx: TenantCtx
) -> None:
    mid = send(pipeline, ctx, "+12025550100", send_at="2099-01-01T00:00:00Z")
    r = requests.post(
        f"{pipeline.base_url}/v1/messages/{mid}/cancel", headers=ctx.headers, timeout=10
    )
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert "dispatched" not in applied(get(pipeline, ctx, mid))


def test_metrics_merge_the_web_and_the_workers(pipeline: Pipeline, ctx: TenantCtx) -> None:
    """prometheus-client's multiprocess mode: a send the worker made shows on the web's
    /metrics, beside the web's own intents and the database gauges."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.support.processes import METRICS_TOKEN

    r = requests.post(
        f"{pipeline.base_url}/v1/messages",
        json={"to": "+12025550177", "body": "metrics"},
        headers=ctx.headers,
        timeout=10,
    )
    assert r.status_code == 202
    message_id = r.json()["id"]
    deadline = time.monotonic() + 30
    samples: dict[str, float] = {}
    while time.monotonic() < deadline:
        status = requests.get(
            f"{pipeline.base_url}/v1/messages/{message_id}", headers=ctx.headers, timeout=10
        ).json()["status"]
        scraped = requests.get(
            f"{pipeline.base_url}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=10,
        )
        assert scraped.status_code == 200
        samples = {}
        for family in text_string_to_metric_families(scraped.text):
            for sample in family.samples:
                key = sample.name + "".join(f",{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[key] = samples.get(key, 0.0) + sample.value
        calls = samples.get("switchboard_provider_calls_total,outcome=accepted,provider=sandbox", 0)
        delivered = samples.get("switchboard_accepted_to_delivered_seconds_count", 0)
        if status == "delivered" and calls >= 1 and delivered >= 1:
            break
        time.sleep(0.3)
    assert samples.get("switchboard_intents_total,result=accepted", 0) >= 1  # the web's
    assert samples.get("switchboard_provider_calls_total,outcome=accepted,provider=sandbox", 0) >= 1
    assert samples.get("switchboard_intent_to_accepted_seconds_count", 0) >= 1  # a worker's
    assert samples.get("switchboard_accepted_to_delivered_seconds_count", 0) >= 1
    assert samples.get("switchboard_transitions_total,reason=,status=delivered", 0) >= 1
    assert samples.get("switchboard_gauges_up") == 1
