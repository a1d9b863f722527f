"""The console's Campaigns pages: progress, reasons, a draft's row errors, and the controls."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from app.infra.db import Database
from app.messaging.campaigns.expansion import expand_batch
from config import Settings
from tests.factories import TenantCtx
from tests.integration.console.test_console import signed_in
from tests.support.console import csrf_of


def test_an_operator_follows_and_pauses_a_campaign(
    app: Flask, client: FlaskClient, ctx: TenantCtx, db: Database, settings: Settings
) -> None:
    rows = [{"to": "+12025553300"}, {"to": "+12025553301"}, {"to": "+1202"}]
    draft = client.post(
        "/v1/campaigns",
        json={"name": "Reminders", "body": "See you tomorrow", "start": False, "recipients": rows},
        headers=ctx.headers,
    ).get_json()
    operator = signed_in(app, db, "operator")
    listing = operator.get(f"/console/campaigns?tenant={ctx.tenant_id}").get_data(as_text=True)
    assert draft["id"] in listing and "Reminders" in listing and "draft" in listing

    page = operator.get(f"/console/campaigns/{draft['id']}").get_data(as_text=True)
    assert "Row errors" in page and "invalid_number" in page  # row 3's phone
    token = csrf_of(page)
    started = operator.post(f"/console/campaigns/{draft['id']}/start", data={"csrf_token": token})
    assert started.status_code == 302
    assert expand_batch(db, settings, draft["id"], 500).made == 2
    page = operator.get(f"/console/campaigns/{draft['id']}").get_data(as_text=True)
    assert '<strong id="status">completed</strong>' in page
    paused = operator.post(f"/console/campaigns/{draft['id']}/pause", data={"csrf_token": token})
    assert paused.status_code == 302
    page = operator.get(f"/console/campaigns/{draft['id']}").get_data(as_text=True)
    assert '<strong id="status">paused</strong>' in page and "campaign paused" in page
    again = operator.post(f"/console/campaigns/{draft['id']}/pause", data={"csrf_token": token})
    assert again.status_code == 302  # pausing a paused campaign changes nothing
    assert (
        operator.post(
            f"/console/campaigns/{draft['id']}/start", data={"csrf_token": token}
        ).status_code
        == 409
    )
    shown = client.get(f"/v1/campaigns/{draft['id']}", headers=ctx.headers).get_json()
    assert shown["status"] == "paused"


def test_a_viewer_sees_but_cannot_act(
    app: Flask, client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    made = client.post(
        "/v1/campaigns",
        json={"body": "hi", "recipients": [{"to": "+12025553302"}]},
        headers=ctx.headers,
    ).get_json()
    viewer = signed_in(app, db, "viewer")
    page = viewer.get(f"/console/campaigns/{made['id']}").get_data(as_text=True)
    assert made["id"] in page and 'id="campaign-pause"' not in page
    token = csrf_of(page)
    refused = viewer.post(f"/console/campaigns/{made['id']}/pause", data={"csrf_token": token})
    assert refused.status_code == 403
    assert viewer.get("/console/campaigns/cmp_%00").status_code == 404
