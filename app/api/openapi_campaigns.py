"""The /v1/campaigns part of the OpenAPI description (app.api.openapi builds the rest)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from app.api import campaign_schemas as c
from app.api.openapi import _json, _op, _problems, _query
from app.messaging.campaigns.spec import CampaignSpec

CAMPAIGN_ID = {"name": "campaign_id", "in": "path", "required": True, "schema": {"type": "string"}}
KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Names the whole campaign: a retry (after a 503, say) completes it.",
    "schema": {"type": "string", "maxLength": 255},
}
CSV_NOTE = (
    " Or send the rows as `text/csv` (a `phone` column, an optional `reference`, one column "
    "per template variable) with the campaign's fields in the query string."
)


def _control(action: str, summary: str) -> dict[str, Any]:
    return {
        "post": _op(
            f"{action}Campaign",
            summary,
            "messages:write",
            {"200": _json(c.CampaignOut, "The campaign, after it."), **_problems(404, 409)},
            params=[CAMPAIGN_ID],
        )
    }


def campaign_paths() -> dict[str, Any]:
    create = _op(
        "createCampaign",
        "Create a campaign: its recipients checked, written, and (unless start is false) sent",
        "messages:write",
        {
            "202": _json(c.CampaignOut, "Started: every accepted recipient is durable."),
            "201": _json(c.CampaignOut, "A draft: nothing is sent until it starts."),
            "200": _json(c.CampaignOut, "A retry of an earlier Idempotency-Key."),
            **_problems(404, 409, 413, 415, 422),
        },
        body=CampaignSpec,
        params=[KEY],
    )
    create["description"] += CSV_NOTE
    add = _op(
        "addCampaignRecipients",
        "Add recipients to a campaign that is not canceled",
        "messages:write",
        {
            "200": _json(c.CampaignOut, "The campaign, with this upload."),
            **_problems(404, 409, 413, 415, 422),
        },
        body=c.RecipientsIn,
        params=[CAMPAIGN_ID],
    )
    add["description"] += CSV_NOTE
    return {
        "/v1/campaigns": {
            "post": create,
            "get": _op(
                "listCampaigns",
                "List campaigns, newest first",
                "messages:read",
                {"200": _json(c.CampaignPage, "A page of campaigns."), **_problems(422)},
                params=[
                    _query("status", "Only this status."),
                    _query("limit", "1 to 500.", type="integer"),
                    _query("cursor", "From the previous page's next_cursor."),
                ],
            ),
        },
        "/v1/campaigns/{campaign_id}": {
            "get": _op(
                "getCampaign",
                "A campaign's progress: counts, send rate, estimated finish, what holds it",
                "messages:read",
                {"200": _json(c.CampaignOut, "The campaign."), **_problems(404)},
                params=[CAMPAIGN_ID],
            )
        },
        "/v1/campaigns/{campaign_id}/recipients": {
            "post": add,
            "get": _op(
                "listCampaignRecipients",
                "Each recipient in the order accepted, with its message id",
                "messages:read",
                {"200": _json(c.RecipientPage, "A page of recipients."), **_problems(404, 422)},
                params=[
                    CAMPAIGN_ID,
                    _query("state", "pending, made or skipped."),
                    _query("limit", "1 to 500.", type="integer"),
                    _query("cursor", "From the previous page's next_cursor."),
                ],
            ),
        },
        "/v1/campaigns/{campaign_id}/start": _control("start", "Start a draft"),
        "/v1/campaigns/{campaign_id}/pause": _control(
            "pause", "Pause: what is not yet dispatched waits"
        ),
        "/v1/campaigns/{campaign_id}/resume": _control("resume", "Resume a paused campaign"),
        "/v1/campaigns/{campaign_id}/cancel": _control(
            "cancel", "Cancel: what is not yet dispatched never is"
        ),
    }


MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (CampaignSpec, "validation"),
    (c.RecipientsIn, "validation"),
    (c.CampaignOut, "serialization"),
    (c.CampaignPage, "serialization"),
    (c.RecipientPage, "serialization"),
]
