"""The operator console in-process: sign-in, roles, CSRF, lockout, the pages, and actions
(each with a dry run, each recorded). The browser tests drive the same in Chromium."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.infra.db import Database
from app.models import ConsoleAction, ConsoleUser, Message, MessageEvent
from tests.factories import TenantCtx, make_tenant_ctx
from tests.support.console import csrf_of, make_user

HOUR_AGO = timedelta(hours=1)


def login(client: FlaskClient, username: str, password: str, next_: str = "") -> int:
    page = client.get("/console/login")
    token = csrf_of(page.get_data(as_text=True))
    r = client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": token, "next": next_},
    )
    return r.status_code


def signed_in(app: Flask, db: Database, role: str) -> FlaskClient:
    client = app.test_client()
    username, password = make_user(db, role)
    assert login(client, username, password) == 302
    return client


def send(client: FlaskClient, ctx: TenantCtx, **extra: object) -> str:
    r = client.post(
        "/v1/messages",
        json={"to": "+12025550143", "body": "the secret body", **extra},
        headers=ctx.headers,
    )
    assert r.status_code == 202, r.get_json()
    return str(r.get_json()["id"])


def stuck_message(client: FlaskClient, db: Database, ctx: TenantCtx) -> str:
    """A message that never reached the provider and sat queued for an hour."""
    message_id = send(client, ctx, send_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    with db.session() as s:
        s.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(
                status="queued",
                not_before=None,
                next_attempt_at=None,
                updated_at=datetime.now(UTC) - HOUR_AGO,
            )
        )
    return message_id


def test_pages_need_a_sign_in(app: Flask) -> None:
    client = app.test_client()
    r = client.get("/console/")
    assert r.status_code == 302 and "/console/login" in r.headers["Location"]
    assert client.get("/console/messages/msg_x").status_code == 302


def test_sign_in_sets_a_scoped_http_only_cookie(app: Flask, db: Database) -> None:
    client = app.test_client()
    username, password = make_user(db, "viewer")
    page = client.get("/console/login")
    token = csrf_of(page.get_data(as_text=True))
    r = client.post(
        "/console/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert r.status_code == 302
    cookie = r.headers["Set-Cookie"]
    assert "switchboard_console=" in cookie and "HttpOnly" in cookie
    assert "Path=/console" in cookie and "SameSite=Lax" in cookie
    page = client.get("/console/")
    assert page.status_code == 200 and username in page.get_data(as_text=True)
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_the_cookie_session_is_opened_on_the_console_paths_only(app: Flask) -> None:
    """The API and the webhooks never carry the cookie (its path is /console): no signer
    is built for them."""
    sessions = app.session_interface
    for path, opened in [
        ("/console", True),
        ("/console/login", True),
        ("/v1/messages", False),
        ("/webhooks/twilio/acc_x", False),
        ("/consoles", False),
    ]:
        with app.test_request_context(path):
            session = sessions.open_session(app, request)
            assert session is not None and sessions.is_null_session(session) is not opened, path


def test_a_wrong_password_is_refused_and_recorded(app: Flask, db: Database) -> None:
    client = app.test_client()
    username, _ = make_user(db, "viewer")
    assert login(client, username, "not the password at all") == 401
    assert login(client, "nobody-" + username, "whatever it is") == 401
    with db.session() as s:
        whys = [
            a.detail["why"]
            for a in s.scalars(
                select(ConsoleAction).where(
                    ConsoleAction.username.in_([username, "nobody-" + username])
                )
            )
        ]
    assert sorted(whys) == ["bad_password", "unknown"]


def test_repeated_failures_lock_the_user_out(app: Flask, db: Database) -> None:
    settings = app.extensions["switchboard.settings"]
    client = app.test_client()
    username, password = make_user(db, "operator")
    for _ in range(settings.console_max_failures - 1):
        assert login(client, username, "wrong password here") == 401
    assert login(client, username, "wrong password here") == 403  # the last one locks
    assert login(client, username, password) == 403  # even the right one, while locked
    with db.session() as s:
        user = s.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
        assert user is not None and user.locked_until is not None
        s.execute(
            update(ConsoleUser)
            .where(ConsoleUser.id == user.id)
            .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert login(client, username, password) == 302  # the lockout ran out


def test_a_disabled_user_is_signed_out_at_once(app: Flask, db: Database) -> None:
    from app.security.console_users import set_disabled

    client = app.test_client()
    username, password = make_user(db, "viewer")
    assert login(client, username, password) == 302
    assert client.get("/console/").status_code == 200
    with db.session() as s:
        set_disabled(s, username, True)
    assert client.get("/console/").status_code == 302
    assert login(client, username, password) == 403


def test_a_form_without_its_csrf_token_gets_400(app: Flask, db: Database) -> None:
    client = signed_in(app, db, "operator")
    r = client.post("/console/actions/redrive", data={"ids": "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV"})
    assert r.status_code == 400
    assert "CSRF" in r.get_data(as_text=True)
    bare = app.test_client()
    r = bare.post("/console/login", data={"username": "x", "password": "y"})
    assert r.status_code == 400


def test_a_viewer_cannot_act(app: Flask, db: Database, client: FlaskClient, ctx: TenantCtx) -> None:
    message_id = stuck_message(client, db, ctx)
    viewer = signed_in(app, db, "viewer")
    page = viewer.get(f"/console/messages/{message_id}").get_data(as_text=True)
    assert "action-redrive" not in page
    listing = viewer.get("/console/lists/stuck").get_data(as_text=True)
    assert "list-redrive" not in listing
    r = viewer.post(
        "/console/actions/redrive",
        data={"ids": message_id, "confirm": "yes", "csrf_token": csrf_of(page)},
    )
    assert r.status_code == 403
    with db.session() as s:
        assert s.get(Message, message_id).status == "queued"  # type: ignore[union-attr]


def test_phone_and_body_are_masked_except_for_admins(
    app: Flask, db: Database, client: FlaskClient, ctx: TenantCtx
) -> None:
    message_id = send(client, ctx)
    operator = signed_in(app, db, "operator").get(f"/console/messages/{message_id}")
    text = operator.get_data(as_text=True)
    assert "+12025550143" not in text and "the secret body" not in text
    assert "+12•••••••43" in text and "hidden: 15 characters" in text
    admin = signed_in(app, db, "admin").get(f"/console/messages/{message_id}")
    text = admin.get_data(as_text=True)
    assert "+12025550143" in text and "the secret body" in text


def test_a_message_is_found_by_id_or_by_phone(
    app: Flask, db: Database, client: FlaskClient, ctx: TenantCtx
) -> None:
    message_id = send(client, ctx, to="+12025550177")
    viewer = signed_in(app, db, "viewer")
    r = viewer.get(f"/console/messages?q={message_id}")
    assert r.status_code == 302 and r.headers["Location"].endswith(message_id)
    r = viewer.get("/console/messages?q=%2B1%20202%20555%200177")
    assert message_id in r.get_data(as_text=True)
    r = viewer.get("/console/messages?q=not-a-number")
    assert "Give a message id" in r.get_data(as_text=True)
    assert viewer.get("/console/messages/msg_01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 404
    assert viewer.get("/console/messages/../../etc").status_code == 404


def test_the_overview_shows_held_queued_and_stuck(
    app: Flask, db: Database, client: FlaskClient
) -> None:
    ctx = make_tenant_ctx(db)
    held = send(client, ctx, send_at=(datetime.now(UTC) + timedelta(hours=3)).isoformat())
    stuck = stuck_message(client, db, ctx)
    page = signed_in(app, db, "viewer").get(f"/console/?tenant={ctx.tenant_id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    held_table = text.split('id="held"')[1].split("</table>")[0]
    assert ctx.tenant_id in held_table and "send_at" in held_table
    lanes = text.split('id="lanes"')[1].split("</table>")[0]
    row = re.search(rf"{ctx.tenant_id}</td><td>normal</td><td class=\"num\">(\d+)</td>", lanes)
    assert row and int(row.group(1)) == 1  # the stuck one is queued
    stuck_table = text.split('id="stuck"')[1].split("</table>")[0]
    assert re.search(r'<td class="num">1</td>', stuck_table)
    listing = signed_in(app, db, "viewer").get(f"/console/lists/held?tenant={ctx.tenant_id}")
    assert held in listing.get_data(as_text=True)
    listing = signed_in(app, db, "viewer").get(f"/console/lists/stuck?tenant={ctx.tenant_id}")
    assert stuck in listing.get_data(as_text=True)


def test_redrive_shows_a_dry_run_then_acts_and_records(
    app: Flask, db: Database, client: FlaskClient, ctx: TenantCtx
) -> None:
    message_id = stuck_message(client, db, ctx)
    operator = signed_in(app, db, "operator")
    page = operator.get(f"/console/messages/{message_id}").get_data(as_text=True)
    token = csrf_of(page)
    dry = operator.post("/console/actions/redrive", data={"ids": message_id, "csrf_token": token})
    assert dry.status_code == 200
    assert "dry run" in dry.get_data(as_text=True) and "requeued" in dry.get_data(as_text=True)
    with db.session() as s:
        notes = s.scalars(select(MessageEvent.kind).where(MessageEvent.message_id == message_id))
        assert "requeued" not in list(notes)  # nothing happened yet
    done = operator.post(
        "/console/actions/redrive",
        data={"ids": message_id, "csrf_token": token, "confirm": "yes"},
    )
    assert done.status_code == 200 and "done" in done.get_data(as_text=True)
    with db.session() as s:
        kinds = list(
            s.scalars(select(MessageEvent.kind).where(MessageEvent.message_id == message_id))
        )
        assert "requeued" in kinds
        action = s.scalars(
            select(ConsoleAction)
            .where(ConsoleAction.action == "redrive")
            .order_by(ConsoleAction.id.desc())
        ).first()
        assert action is not None and action.ids == [message_id]
        assert action.username.startswith("operator-")
        assert action.detail["results"] == [{"id": message_id, "action": "requeued"}]
    audit = operator.get("/console/audit").get_data(as_text=True)
    assert message_id in audit


def test_cancel_and_release_now(
    app: Flask, db: Database, client: FlaskClient, ctx: TenantCtx
) -> None:
    held = send(client, ctx, send_at=(datetime.now(UTC) + timedelta(hours=3)).isoformat())
    other = send(client, ctx, send_at=(datetime.now(UTC) + timedelta(hours=3)).isoformat())
    operator = signed_in(app, db, "operator")
    token = csrf_of(operator.get("/console/lists/held").get_data(as_text=True))
    r = operator.post(
        "/console/actions/release", data={"ids": [held], "csrf_token": token, "confirm": "yes"}
    )
    assert r.status_code == 200
    r = operator.post(
        "/console/actions/cancel", data={"ids": [other], "csrf_token": token, "confirm": "yes"}
    )
    assert r.status_code == 200
    with db.session() as s:
        assert s.get(Message, held).status in (
            "queued",
            "dispatched",
            "accepted",
            "sent",
            "delivered",
        )  # type: ignore[union-attr]
        canceled = s.get(Message, other)
        assert canceled is not None and canceled.status == "canceled"
    r = operator.post(
        "/console/actions/cancel", data={"ids": [other], "csrf_token": token, "confirm": "yes"}
    )
    assert "not cancelable" in r.get_data(as_text=True)


@pytest.mark.parametrize(
    ("ids", "why"),
    [
        ([], "choose 1"),
        (["not-an-id"], "not a message id"),
        (["1; DROP TABLE"], "not a message id"),
    ],
)
def test_bad_ids_get_400(app: Flask, db: Database, ids: list[str], why: str) -> None:
    operator = signed_in(app, db, "operator")
    token = csrf_of(operator.get("/console/").get_data(as_text=True))
    r = operator.post("/console/actions/cancel", data={"ids": ids, "csrf_token": token})
    assert r.status_code == 400 and why in r.get_data(as_text=True)
    assert (
        operator.post("/console/actions/nope", data={"ids": ["x"], "csrf_token": token}).status_code
        == 404
    )


def test_dead_syncs_and_parked_receipts_lists(app: Flask, db: Database) -> None:
    viewer = signed_in(app, db, "viewer")
    for name in ("dead_syncs", "parked_receipts", "held", "stuck"):
        assert viewer.get(f"/console/lists/{name}").status_code == 200
    assert viewer.get("/console/lists/other").status_code == 404
    assert viewer.get("/console/analytics").status_code == 200
    hourly = viewer.get("/console/analytics?days=2").get_data(as_text=True)
    assert hourly.count("<svg") == 2 and "Outcomes per hour" in hourly
    assert viewer.get("/console/?tenant=not-a-tenant").status_code == 400


def test_an_open_redirect_after_sign_in_is_refused(app: Flask, db: Database) -> None:
    client = app.test_client()
    username, password = make_user(db, "viewer")
    page = client.get("/console/login")
    r = client.post(
        "/console/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_of(page.get_data(as_text=True)),
            "next": "https://evil.example/",
        },
    )
    assert r.status_code == 302 and r.headers["Location"].endswith("/console/")


def test_the_database_down_gives_a_503_page_and_changes_nothing(
    app: Flask, db: Database, settings: object
) -> None:
    import dataclasses

    from app import create_app

    operator = signed_in(app, db, "operator")
    cookie = operator.get_cookie("switchboard_console", path="/console")
    assert cookie is not None
    url = app.extensions["switchboard.settings"].database_url
    down_url = (
        url.replace("127.0.0.1:5432", "127.0.0.1:9")
        if "127.0.0.1:5432" in url
        else "sqlite:////nonexistent-dir/none.db"
    )
    down = create_app(
        {
            "settings": dataclasses.replace(
                app.extensions["switchboard.settings"], database_url=down_url
            ),
            "TESTING": True,
        }
    )
    client = down.test_client()
    client.set_cookie("switchboard_console", cookie.value, path="/console")
    r = client.get("/console/")
    assert r.status_code == 503
    assert "database is not answering" in r.get_data(as_text=True)
    login_page = client.get("/console/login")
    assert login_page.status_code == 200  # the sign-in page itself needs no database
    r = client.post(
        "/console/login",
        data={
            "username": "x",
            "password": "y",
            "csrf_token": csrf_of(login_page.get_data(as_text=True)),
        },
    )
    assert r.status_code == 503


def test_the_console_previews_and_prices_a_template(
    app: Flask, db: Database, ctx: TenantCtx
) -> None:
    from app.content import store

    with db.session() as s:
        template, _ = store.create(
            s,
            ctx.tenant_id,
            {
                "name": "code",
                "variables": {"code": {"type": "string"}},
                "default_locale": "en",
                "locales": {"en": {"sms": "Your code is ((code)) ✅"}},
            },
            "test",
        )
        template_id = template.id
    viewer = signed_in(app, db, "viewer")
    page = viewer.get(f"/console/templates?tenant={ctx.tenant_id}").get_data(as_text=True)
    assert template_id in page
    r = viewer.post(
        "/console/templates",
        data={
            "template": template_id,
            "variables": '{"code": "123456"}',
            "csrf_token": csrf_of(page),
        },
    )
    text = r.get_data(as_text=True)
    price = text.split('id="price"')[1]
    assert "Your code is 123456 ✅" in price and "UCS-2" in price and "✅" in price
    r = viewer.post(
        "/console/templates",
        data={"template": template_id, "variables": "{}", "csrf_token": csrf_of(page)},
    )
    assert "variables.code: a string is required" in r.get_data(as_text=True)
