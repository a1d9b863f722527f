"""POST /v1/messages from a template: rendered per channel, pinned to a version, in the
contact's locale, URLs shortened; 422 per field; RCS falling back to the SMS text
through the existing fallback chain, against the fake Twilio."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.content import store
from app.infra.db import Database
from app.messaging.dispatch.batch import dispatch_message
from app.models import Message, MessageEvent, ShortLink
from config import Settings
from scripts.fake_twilio import FakeTwilio, Reply, Rule
from tests.factories import TenantCtx
from tests.support.twilio import twilio_ctx

REMINDER: dict[str, Any] = {
    "name": "reminder",
    "variables": {
        "name": {"type": "string", "max_length": 1600},
        "when": {"type": "date", "format": "dmy"},
        "link": {"type": "url", "required": False},
    },
    "default_locale": "en",
    "locales": {
        "en": {
            "sms": "Hi ((name)), see you on ((when)).((link?? Details: ((link))))",
            "rcs": {
                "card": {"title": "Reminder for ((name))", "description": "See you on ((when))."},
                "suggestions": ["Confirm", "Cancel"],
            },
        },
        "pt": {"sms": "Olá ((name)), até ((when))."},
    },
}


def make_template(db: Database, tenant_id: str, body: dict[str, Any] = REMINDER) -> str:
    with db.session() as s:
        template, _ = store.create(s, tenant_id, body, "test")
        return template.id


def send(client: FlaskClient, ctx: TenantCtx, **extra: Any) -> Any:
    return client.post(
        "/v1/messages",
        json={
            "to": "+12025550100",
            "template": "reminder",
            "variables": {"name": "Ana", "when": "2026-12-24"},
            **extra,
        },
        headers=ctx.headers,
    )


def load(db: Database, message_id: str) -> Message:
    with db.session() as s:
        message = s.get(Message, message_id)
        assert message is not None
        return message


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    server = FakeTwilio(callback_delay=0).start()
    yield server
    server.stop()


def test_a_send_from_a_template_records_it(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    template_id = make_template(db, ctx.tenant_id)
    r = send(client, ctx)
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert body["body"] == "Hi Ana, see you on 24/12/2026."
    assert body["template"] == {"id": template_id, "version": 1, "locale": "en"}
    message = load(db, body["id"])
    assert (message.template_id, message.template_version, message.template_locale) == (
        template_id,
        1,
        "en",
    )
    by_id = send(client, ctx, template=template_id, variables={"name": "Bo", "when": "2026-12-25"})
    assert by_id.status_code == 202 and by_id.get_json()["body"].startswith("Hi Bo")


def test_a_url_variable_is_shortened_and_redirects(
    client: FlaskClient, ctx: TenantCtx, db: Database, settings: Settings
) -> None:
    make_template(db, ctx.tenant_id)
    r = send(
        client,
        ctx,
        variables={"name": "Ana", "when": "2026-12-24", "link": "https://clinic.example/a?b=1"},
    )
    text = r.get_json()["body"]
    prefix = f"{settings.public_base_url}/s/"
    assert prefix in text
    code = text.split(prefix, 1)[1]
    assert len(code) == 8
    follow = client.get(f"/s/{code}")
    assert (
        follow.status_code == 302 and follow.headers["Location"] == "https://clinic.example/a?b=1"
    )
    assert client.get("/s/nothere1").status_code == 404
    assert client.get("/s/x").status_code == 404
    with db.session() as s:
        assert s.get(ShortLink, code) is not None


@pytest.mark.parametrize(
    ("extra", "fields"),
    [
        ({"variables": {"when": "2026-12-24"}}, {"variables.name"}),
        ({"variables": {"name": 5, "when": "soon"}}, {"variables.name", "variables.when"}),
        ({"variables": {"name": "A", "when": "2026-12-24", "other": 1}}, {"variables.other"}),
        ({"template": "nope"}, {"template"}),
        ({"locale": "!!"}, {"locale"}),
        ({"variables": {"name": "x" * 1590, "when": "2026-12-24"}}, {"variables"}),
    ],
)
def test_problems_are_422_per_field(
    client: FlaskClient, ctx: TenantCtx, db: Database, extra: dict[str, Any], fields: set[str]
) -> None:
    make_template(db, ctx.tenant_id)
    r = send(client, ctx, **extra)
    assert r.status_code == 422, r.get_json()
    assert {e["field"] for e in r.get_json()["errors"]} == fields


def test_a_template_and_a_body_together_are_422(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    make_template(db, ctx.tenant_id)
    assert send(client, ctx, body="also").status_code == 422
    r = client.post(
        "/v1/messages",
        json={"to": "+12025550100", "body": "x", "locale": "en"},
        headers=ctx.headers,
    )
    assert r.status_code == 422


def test_an_archived_template_cannot_send(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    template_id = make_template(db, ctx.tenant_id)
    with db.session() as s:
        template = store.find(s, ctx.tenant_id, template_id)
        assert template is not None
        store.archive(template)
    r = send(client, ctx)
    assert r.status_code == 422 and r.get_json()["errors"][0]["code"] == "archived"


def test_the_contacts_stored_locale_is_used(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    make_template(db, ctx.tenant_id)
    r = client.put(
        "/v1/contacts/locale?phone=%2B12025550100", json={"locale": "pt_br"}, headers=ctx.headers
    )
    assert r.status_code == 200 and r.get_json()["locale"] == "pt-BR"
    sent = send(client, ctx).get_json()
    assert sent["template"]["locale"] == "pt" and sent["body"] == "Olá Ana, até 24/12/2026."
    assert send(client, ctx, locale="en").get_json()["template"]["locale"] == "en"  # the send wins
    bad = client.put(
        "/v1/contacts/locale?phone=%2B12025550100", json={"locale": 3}, headers=ctx.headers
    )
    assert bad.status_code == 422


def test_the_version_is_pinned_while_an_edit_lands(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake, channels=("sms",))
    make_template(db, ctx.tenant_id)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    message_id = send(client, ctx, send_at=later).get_json()["id"]
    with db.session() as s:  # the edit lands while the message waits
        template = store.find(s, ctx.tenant_id, "reminder")
        assert template is not None
        edited = {k: v for k, v in REMINDER.items() if k != "name"}
        edited["locales"] = {"en": {"sms": "CHANGED ((name)) ((when))"}}
        store.new_version(s, template, edited, "test")
    with db.session() as s:
        s.execute(
            update(Message).where(Message.id == message_id).values(status="queued", not_before=None)
        )
    assert dispatch_message(db, settings, message_id) == "accepted"
    assert [m.body for m in fake.sent] == ["Hi Ana, see you on 24/12/2026."]
    assert load(db, message_id).template_version == 1
    fresh = send(client, ctx).get_json()
    assert fresh["template"]["version"] == 2 and fresh["body"].startswith("CHANGED")


def test_a_rich_rcs_template_falls_back_to_the_sms_text(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake, channels=("rcs", "sms"))
    make_template(db, ctx.tenant_id)
    fake.rule("+12025550100", Rule(replies=[Reply(400, code=21612)]))  # not reachable on RCS
    r = send(client, ctx, channels=["rcs", "sms"])
    assert r.status_code == 202, r.get_json()
    message_id = r.get_json()["id"]
    assert dispatch_message(db, settings, message_id) == "fallback"
    with db.session() as s:
        s.execute(update(Message).where(Message.id == message_id).values(status="queued"))
    assert dispatch_message(db, settings, message_id) == "accepted"
    rcs, sms = fake.sent
    assert (
        rcs.sender == "rcs:+12025550199" and rcs.body == "Reminder for Ana\nSee you on 24/12/2026."
    )
    assert sms.sender == "+12025550199" and sms.body == "Hi Ana, see you on 24/12/2026."
    with db.session() as s:
        reasons = list(
            s.scalars(
                select(MessageEvent.reason).where(
                    MessageEvent.message_id == message_id, MessageEvent.to_status == "scheduled"
                )
            )
        )
    assert reasons == ["fallback:sms"]
