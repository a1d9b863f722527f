"""Twilio against the local fake: sends classified, callbacks verified, stored once, applied."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.infra.db import Database
from app.messaging.dispatch.batch import dispatch_message
from app.models import Contact, InboxItem, Message, MessageEvent
from app.providers import twilio as twilio_module
from app.providers import webhook_url
from app.providers.twilio import EMPTY_TWIML
from config import Settings
from scripts.fake_twilio import FakeTwilio, Reply, Rule, sign
from tests.factories import TenantCtx, make_tenant_ctx
from tests.support.twilio import apply_all, post_callback, twilio_ctx


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    """A fake Twilio on a free port, posting callbacks nowhere (these tests post them)."""
    server = FakeTwilio(callback_delay=0).start()
    yield server
    server.stop()


def queue(client: FlaskClient, ctx: TenantCtx, to: str = "+12025550100", **extra: object) -> str:
    r = client.post("/v1/messages", json={"to": to, "body": "hello", **extra}, headers=ctx.headers)
    assert r.status_code == 202, r.get_json()
    return str(r.get_json()["id"])


def load(db: Database, message_id: str) -> Message:
    with db.session() as s:
        message = s.get(Message, message_id)
        assert message is not None
        return message


def requeue(db: Database, message_id: str) -> None:
    """What beat's release does once the wait is over, without waiting for it."""
    with db.session() as s:
        message = s.get(Message, message_id)
        assert message is not None and message.status == "scheduled"
        message.status = "queued"


def events(db: Database, message_id: str) -> list[MessageEvent]:
    with db.session() as s:
        return list(
            s.scalars(
                select(MessageEvent)
                .where(MessageEvent.message_id == message_id)
                .order_by(MessageEvent.id)
            )
        )


def inbox_count(db: Database, account_id: str) -> int:
    with db.session() as s:
        query = select(func.count()).select_from(InboxItem)
        return int(s.scalar(query.where(InboxItem.account_id == account_id)) or 0)


# -- sending


def test_an_accepted_send_speaks_twilios_shape(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake)
    media = [{"url": "https://cdn.example.com/a.png", "content_type": "image/png"}]
    mid = queue(client, ctx, channels=["mms"], media=media)
    assert dispatch_message(db, settings, mid) == "accepted"
    [sent] = fake.sent
    assert (sent.answered, sent.to, sent.sender, sent.body) == (
        201,
        "+12025550100",
        "+12025550199",
        "hello",
    )
    assert sent.media == ["https://cdn.example.com/a.png"]
    assert sent.status_callback == webhook_url(settings.public_base_url, "twilio", ctx.account_id)
    message = load(db, mid)
    assert message.status == "accepted" and message.provider_message_id == sent.sid
    assert message.provider_message_id is not None and message.provider_message_id.startswith("MM")


def test_wrong_credentials_fail_as_account_misconfigured(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = make_tenant_ctx(
        db,
        provider="twilio",
        channels=("sms",),
        credentials={
            "account_sid": fake.account_sid,
            "auth_token": "wrong",
            "base_url": fake.base_url,
        },
    )
    mid = queue(client, ctx)
    assert dispatch_message(db, settings, mid) == "failed"
    assert load(db, mid).status_reason == "account_misconfigured"
    assert fake.sent[0].answered == 401


def test_a_429_waits_without_using_an_attempt_then_sends(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake)
    fake.rule("+12025550100", Rule(replies=[Reply(429, retry_after=20)]))
    mid = queue(client, ctx)
    assert dispatch_message(db, settings, mid) == "throttled"
    message = load(db, mid)
    assert (message.status, message.attempts, message.throttles) == ("scheduled", 0, 1)
    assert message.next_attempt_at is not None
    assert 15 < (message.next_attempt_at - message.updated_at).total_seconds() <= 21
    requeue(db, mid)
    assert dispatch_message(db, settings, mid) == "accepted"
    assert [s.answered for s in fake.sends_to("+12025550100")] == [429, 201]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (21211, "invalid_number"),
        (21610, "recipient_opted_out"),
        (21408, "region_not_permitted"),
        (21614, "landline_or_unreachable"),
    ],
)
def test_permanent_errors_fail_with_the_reason_and_keep_the_raw_code(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    fake: FakeTwilio,
    code: int,
    reason: str,
) -> None:
    ctx = twilio_ctx(db, fake)
    fake.rule("+12025550100", Rule(replies=[Reply(400, code=code)]))
    mid = queue(client, ctx)
    assert dispatch_message(db, settings, mid) == "failed"
    assert (load(db, mid).status, load(db, mid).status_reason) == ("failed", reason)
    assert events(db, mid)[-1].data["error_code"] == str(code)


def test_5xx_and_a_stalled_call_are_retried_with_backoff(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    fake: FakeTwilio,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(twilio_module, "SEND_TIMEOUT", (1.0, 0.3))
    ctx = twilio_ctx(db, fake)
    fake.rule("+12025550100", Rule(replies=[Reply(503), Reply(stall=1.0)]))
    mid = queue(client, ctx)
    assert dispatch_message(db, settings, mid) == "retry"
    requeue(db, mid)
    assert dispatch_message(db, settings, mid) == "retry"
    message = load(db, mid)
    assert (message.status, message.attempts) == ("scheduled", 2)
    assert [e.data.get("error") for e in events(db, mid) if e.to_status == "scheduled"] == [
        "provider_unavailable",
        "transport_error",
    ]


@pytest.mark.parametrize("provider", ["twilio", "standard"])
def test_fallback_goes_rcs_then_mms_then_sms_each_step_an_event(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio, provider: str
) -> None:
    from app.providers.signing import generate_secret
    from tests.support.fake_provider import Answer, fake_provider

    channels = ("rcs", "mms", "sms")
    if provider == "twilio":
        ctx = twilio_ctx(db, fake, channels=channels)
        fake.rule("+12025550100", Rule(replies=[Reply(400, code=21612), Reply(400, code=21612)]))
        mid = queue(client, ctx, channels=list(channels))
        outcomes = [dispatch_message(db, settings, mid)]
        for _ in range(2):
            requeue(db, mid)
            outcomes.append(dispatch_message(db, settings, mid))
        assert [s.sender for s in fake.sent] == ["rcs:+12025550199", "+12025550199", "+12025550199"]
    else:
        with fake_provider(generate_secret()) as std:
            ctx = make_tenant_ctx(
                db,
                provider="standard",
                channels=channels,
                credentials={"base_url": std.url, "signing_secret": std.secret},
            )
            std.script += [Answer(400, {"errorCode": "channel_unsupported"})] * 2
            mid = queue(client, ctx, channels=list(channels))
            outcomes = [dispatch_message(db, settings, mid)]
            for _ in range(2):
                requeue(db, mid)
                outcomes.append(dispatch_message(db, settings, mid))
            assert [e["channel"] for e in std.received] == ["rcs", "mms", "sms"]
    assert outcomes == ["fallback", "fallback", "accepted"]
    reasons = [e.reason for e in events(db, mid) if e.to_status == "scheduled"]
    assert reasons == ["fallback:mms", "fallback:sms"]
    assert load(db, mid).channel == "sms"


# -- callbacks


def status_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "AccountSid": "AC" + "0" * 32,
        "From": "+12025550199",
        "To": "+12025550100",
        **extra,
    }


def accepted(
    client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx
) -> tuple[str, str]:
    mid = queue(client, ctx)
    assert dispatch_message(db, settings, mid) == "accepted"
    sid = load(db, mid).provider_message_id
    assert sid is not None
    return mid, sid


def test_signed_callbacks_are_stored_once_and_answered_with_empty_twiml(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake)
    _, sid = accepted(client, db, settings, ctx)
    params = status_params(sid, "sent")
    first = post_callback(client, settings, ctx, params, fake.auth_token)
    again = post_callback(client, settings, ctx, params, fake.auth_token)
    for r in (first, again):
        assert r.status_code == 200 and r.mimetype == "text/xml"
        assert r.get_data(as_text=True) == EMPTY_TWIML
    assert inbox_count(db, ctx.account_id) == 1
    r = post_callback(
        client, settings, ctx, status_params(sid, "delivered"), fake.auth_token, query="t=1"
    )
    assert r.status_code == 200 and inbox_count(db, ctx.account_id) == 2


@pytest.mark.parametrize("how", ["forged", "missing", "signed_for_the_proxied_url", "other_token"])
def test_unverified_callbacks_are_403_and_nothing_is_stored(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio, how: str
) -> None:
    ctx = twilio_ctx(db, fake)
    params = status_params("SM" + "e" * 32, "delivered")
    path = f"/webhooks/twilio/{ctx.account_id}"
    signature = {
        "forged": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "missing": "",
        # What a proxy-unaware check would compute: the URL the web process saw.
        "signed_for_the_proxied_url": sign(fake.auth_token, f"http://localhost{path}", params),
        "other_token": sign(
            "someone-else", webhook_url(settings.public_base_url, "twilio", ctx.account_id), params
        ),
    }[how]
    headers = {"X-Twilio-Signature": signature} if signature else {}
    r = client.post(
        path,
        data=urlencode(params),
        headers=headers,
        content_type="application/x-www-form-urlencoded",
    )
    assert r.status_code == 403 and r.get_json()["reason"] == "bad_signature"
    assert inbox_count(db, ctx.account_id) == 0


def test_unknown_account_or_another_providers_account_is_404(
    client: FlaskClient, db: Database, ctx: TenantCtx, fake: FakeTwilio
) -> None:
    form = "MessageSid=SM1&MessageStatus=sent"
    for path in (
        "/webhooks/twilio/acc_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        f"/webhooks/twilio/{ctx.account_id}",  # a sandbox account
        f"/webhooks/carrier-pigeon/{ctx.account_id}",
        "/webhooks/twilio/%00",
    ):
        r = client.post(path, data=form, content_type="application/x-www-form-urlencoded")
        assert r.status_code == 404, path
    twilio = twilio_ctx(db, fake)
    r = client.post(
        f"/webhooks/standard/{twilio.account_id}", data="{}", content_type="application/json"
    )
    assert r.status_code == 404


def test_an_oversized_callback_is_413(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake)
    params = status_params("SM" + "f" * 32, "sent", Body="x" * (settings.max_body_bytes + 10))
    r = post_callback(client, settings, ctx, params, fake.auth_token)
    assert r.status_code == 413 and inbox_count(db, ctx.account_id) == 0


def test_a_verified_but_unreadable_callback_is_400_with_a_reason(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake)
    params = {"AccountSid": fake.account_sid, "MessageStatus": "sent"}
    r = post_callback(client, settings, ctx, params, fake.auth_token)
    assert r.status_code == 400 and r.get_json()["reason"] == "malformed_event"
    assert r.get_json()["errors"][0]["field"] == "MessageSid"
    assert inbox_count(db, ctx.account_id) == 0


def test_duplicate_and_out_of_order_callbacks_leave_one_correct_timeline(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake)
    mid, sid = accepted(client, db, settings, ctx)
    for status in ("sent", "delivered", "delivered", "sent"):
        assert (
            post_callback(
                client, settings, ctx, status_params(sid, status), fake.auth_token
            ).status_code
            == 200
        )
    apply_all(db, ctx.account_id)
    assert load(db, mid).status == "delivered"
    applied = [(e.from_status, e.to_status) for e in events(db, mid) if e.outcome == "applied"]
    assert applied[-3:] == [("dispatched", "accepted"), ("accepted", "sent"), ("sent", "delivered")]
    # The repeats are the same receipts (MessageSid + status): stored and applied once.
    assert inbox_count(db, ctx.account_id) == 2
    assert [e.outcome for e in events(db, mid) if e.source == "webhook:twilio"] == [
        "applied",
        "applied",
    ]
    # A late receipt is a different one: recorded, and it moves nothing back.
    mid2, sid2 = accepted(client, db, settings, ctx)
    for status in ("delivered", "sent"):
        post_callback(client, settings, ctx, status_params(sid2, status), fake.auth_token)
    assert apply_all(db, ctx.account_id) == ["status:applied", "status:refused"]
    assert load(db, mid2).status == "delivered"


def test_an_undelivered_callback_gives_the_reason_and_keeps_the_carrier_code(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake)
    mid, sid = accepted(client, db, settings, ctx)
    params = status_params(sid, "undelivered", ErrorCode="30007")
    post_callback(client, settings, ctx, params, fake.auth_token)
    assert apply_all(db, ctx.account_id) == ["status:applied"]
    message = load(db, mid)
    assert (message.status, message.status_reason) == ("undelivered", "carrier_filtered")
    last = events(db, mid)[-1]
    assert last.data["error_code"] == "30007" and last.data["provider_status"] == "undelivered"


def test_a_receipt_before_its_send_is_recorded_is_retried_then_parked_not_dropped(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    from app.messaging.receipts import drain as receipts

    ctx = twilio_ctx(db, fake)
    sid = "SM" + "9" * 32
    post_callback(client, settings, ctx, status_params(sid, "delivered"), fake.auth_token)
    results = []
    for _ in range(receipts.MAX_ORPHAN_ATTEMPTS):
        results += apply_all(db, ctx.account_id)
    assert results == ["deferred"] * (receipts.MAX_ORPHAN_ATTEMPTS - 1) + ["parked"]
    with db.session() as s:
        item = s.scalars(select(InboxItem).where(InboxItem.account_id == ctx.account_id)).one()
        assert item.processed_at is None and item.result == "parked"
    # Its send is recorded at last: the parked receipt applies on its next try.
    mid = queue(client, ctx)
    assert dispatch_message(db, settings, mid) == "accepted"
    with db.session() as s:
        s.get(Message, mid).provider_message_id = sid  # type: ignore[union-attr]
    assert apply_all(db, ctx.account_id) == ["status:applied"]
    assert load(db, mid).status == "delivered"


def test_inbound_mms_is_received_and_linked_to_its_contact(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake)
    outbound, _ = accepted(client, db, settings, ctx)
    params = {
        "MessageSid": "MM" + "1" * 32,
        "From": "+12025550100",
        "To": "+12025550199",
        "Body": "here it is",
        "NumMedia": "1",
        "MediaUrl0": "https://api.twilio.com/m/0",
        "MediaContentType0": "image/jpeg",
        "SmsStatus": "received",
    }
    r = post_callback(client, settings, ctx, params, fake.auth_token)
    assert r.status_code == 200 and r.get_data(as_text=True) == EMPTY_TWIML
    assert apply_all(db, ctx.account_id) == ["inbound"]
    with db.session() as s:
        reply = s.scalars(
            select(Message).where(
                Message.tenant_id == ctx.tenant_id, Message.direction == "inbound"
            )
        ).one()
        contact = s.get(Contact, reply.contact_id)
        assert contact is not None and contact.phone == "+12025550100"
        assert reply.contact_id == s.get(Message, outbound).contact_id  # type: ignore[union-attr]
        assert (reply.status, reply.channel, reply.body) == ("received", "mms", "here it is")
        assert reply.metadata_["in_reply_to"] == outbound
    assert [e.kind for e in events(db, outbound)][-1] == "replied"
