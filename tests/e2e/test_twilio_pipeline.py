"""End to end through the fake Twilio: real web, worker and beat, signed callbacks, final states."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import select

from app.infra.db import Database
from app.models import Contact, Message
from app.providers import webhook_url
from app.providers.twilio import EMPTY_TWIML
from scripts.fake_twilio import FakeTwilio, Reply, Rule
from tests.e2e.test_pipeline import get, send, wait_final, wait_until
from tests.factories import TenantCtx, make_tenant_ctx
from tests.support.processes import Pipeline

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTwilio]:
    """The fake Twilio, posting signed callbacks to the live pipeline."""
    server = FakeTwilio(callback_delay=0.05).start()
    yield server
    server.stop()


@pytest.fixture
def tw(db: Database, fake: FakeTwilio) -> TenantCtx:
    """A tenant whose account sends through the fake Twilio."""
    return make_tenant_ctx(
        db,
        provider="twilio",
        channels=("sms", "mms"),
        credentials={
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "base_url": fake.base_url,
        },
    )


def provider_timeline(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["to"], e["outcome"]) for e in body["events"] if e["source"] == "webhook:twilio"]


def test_duplicate_and_out_of_order_callbacks_end_delivered_with_one_timeline(
    pipeline: Pipeline, tw: TenantCtx, fake: FakeTwilio
) -> None:
    to = "+12025551010"
    plan = [("sent", None), ("delivered", None), ("delivered", None), ("sent", None)]
    fake.rule(to, Rule(callbacks=plan))
    body = wait_final(pipeline, tw, send(pipeline, tw, to))
    assert body["status"] == "delivered"
    fake.wait_callbacks()
    assert [c[2] for c in fake.callback_log if c[0] == body["provider_message_id"]] == [200] * 4
    message_id = body["id"]

    def both() -> dict[str, Any] | None:
        found = get(pipeline, tw, message_id)
        return (
            found if {to for to, _ in provider_timeline(found)} == {"sent", "delivered"} else None
        )

    body = wait_until(pipeline, both, "a sent and a delivered receipt recorded")
    # One event per distinct receipt (the repeats are duplicates), and the status never goes
    # back. On a loaded machine the first "sent" can overtake the recording of the send
    # (posted 50 ms after it): it is held for a retry, and by then "delivered" came first.
    assert provider_timeline(body) in (
        [("sent", "applied"), ("delivered", "applied")],
        [("delivered", "applied"), ("sent", "refused")],
    ), provider_timeline(body)
    # And a late receipt that is not a repeat: recorded, and it changes nothing.
    to = "+12025551011"
    fake.rule(to, Rule(callbacks=[("delivered", None), ("sent", None)]))
    message_id = send(pipeline, tw, to)

    def settled() -> dict[str, Any] | None:
        found = get(pipeline, tw, message_id)
        return found if len(provider_timeline(found)) == 2 else None

    found = wait_until(pipeline, settled, "both receipts recorded")
    assert found["status"] == "delivered"
    assert provider_timeline(found) == [("delivered", "applied"), ("sent", "refused")]


def test_a_forged_callback_is_rejected_and_changes_nothing(
    pipeline: Pipeline, tw: TenantCtx, fake: FakeTwilio
) -> None:
    to = "+12025550005"  # accepted, and no callback ever comes
    message_id = send(pipeline, tw, to)
    body = wait_until(
        pipeline,
        lambda: ((b := get(pipeline, tw, message_id))["status"] == "accepted" and b) or None,
        "accepted",
    )
    params = {
        "MessageSid": body["provider_message_id"],
        "MessageStatus": "delivered",
        "AccountSid": fake.account_sid,
        "To": to,
    }
    url = webhook_url(pipeline.base_url, "twilio", tw.account_id)
    forged = requests.post(url, data=params, headers={"X-Twilio-Signature": "Zm9yZ2Vk"}, timeout=5)
    assert forged.status_code == 403
    unsigned = requests.post(url, data=params, timeout=5)
    assert unsigned.status_code == 403
    assert get(pipeline, tw, message_id)["status"] == "accepted"
    assert provider_timeline(get(pipeline, tw, message_id)) == []


def test_a_429_is_sent_later_and_twilio_is_called_exactly_twice(
    pipeline: Pipeline, tw: TenantCtx, fake: FakeTwilio
) -> None:
    to = "+12025551020"
    fake.rule(to, Rule(replies=[Reply(429, retry_after=1)]))
    body = wait_final(pipeline, tw, send(pipeline, tw, to))
    assert body["status"] == "delivered" and body["attempts"] == 1
    assert [s.answered for s in fake.sends_to(to)] == [429, 201]
    reasons = [e["reason"] for e in body["events"] if e["to"] == "scheduled"]
    assert reasons == ["throttled"]


def test_an_invalid_number_fails_with_invalid_number(
    pipeline: Pipeline, tw: TenantCtx, fake: FakeTwilio
) -> None:
    body = wait_final(pipeline, tw, send(pipeline, tw, "+12025550001"))
    assert (body["status"], body["status_reason"]) == ("failed", "invalid_number")
    assert body["events"][-1]["data"]["error_code"] == "21211"
    body = wait_final(pipeline, tw, send(pipeline, tw, "+12025550002"))
    assert (body["status"], body["status_reason"]) == ("undelivered", "landline_or_unreachable")


def test_an_inbound_message_arrives_received_and_linked_to_its_contact(
    pipeline: Pipeline, tw: TenantCtx, fake: FakeTwilio, db: Database
) -> None:
    to = "+12025551030"
    outbound = wait_final(pipeline, tw, send(pipeline, tw, to))
    url = webhook_url(pipeline.base_url, "twilio", tw.account_id)
    r = fake.post_inbound(url, from_=to, to="+12025550199", body="Sounds good")
    assert r.status_code == 200 and r.text == EMPTY_TWIML
    assert r.headers["Content-Type"].startswith("text/xml")

    def reply() -> dict[str, Any] | None:
        listed = requests.get(
            f"{pipeline.base_url}/v1/messages?status=received",
            headers=tw.headers,
            timeout=10,
        ).json()["data"]
        return listed[0] if listed else None

    received = wait_until(pipeline, reply, "the inbound message")
    assert (received["status"], received["from"], received["direction"]) == (
        "received",
        to,
        "inbound",
    )
    with db.session() as s:
        stored = s.get(Message, received["id"])
        first = s.get(Message, outbound["id"])
        assert stored is not None and first is not None
        assert stored.contact_id == first.contact_id
        contact = s.scalar(select(Contact).where(Contact.id == stored.contact_id))
        assert contact is not None and contact.phone == to
    kinds = [e["kind"] for e in get(pipeline, tw, outbound["id"])["events"]]
    assert "replied" in kinds
