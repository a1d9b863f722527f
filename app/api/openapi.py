"""GET /v1/openapi.json: the API's OpenAPI 3.1 description, generated from the pydantic
models that validate requests (app.messaging.intake.intents, app.api.routes.consents) and describe
responses (app.api.schemas). OpenAPI 3.1 schemas are JSON Schema 2020-12, which is
what pydantic emits, so the models go in unchanged."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, json
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from app.api import schemas as s
from app.api.routes.consents import ConsentIn
from app.domain.channels import CHANNELS
from app.messaging.intake.intents import SendIntent
from app.security.api_keys import KNOWN_SCOPES

bp = Blueprint("openapi", __name__)
VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (SendIntent, "validation"),
    (ConsentIn, "validation"),
    (s.TimezoneIn, "validation"),
    (s.RedriveIn, "validation"),
    (s.ProblemDoc, "serialization"),
    (s.MessageOut, "serialization"),
    (s.MessagePage, "serialization"),
    (s.Consents, "serialization"),
    (s.TimezoneOut, "serialization"),
    (s.Erasure, "serialization"),
    (s.Analytics, "serialization"),
    (s.RedriveOut, "serialization"),
    (s.StuckReport, "serialization"),
    (s.Health, "serialization"),
    (s.AnyObject, "serialization"),
    (s.RoutingRuleIn, "validation"),
    (s.RoutingRules, "serialization"),
    (s.RoutingRule, "serialization"),
    (s.CrmConnectionIn, "validation"),
    (s.CrmLimitsIn, "validation"),
    (s.CrmConnections, "serialization"),
    (s.CrmConnection, "serialization"),
    (s.SyncIds, "validation"),
    (s.SyncRedrive, "serialization"),
    (s.TemplateIn, "validation"),
    (s.TemplateVersionIn, "validation"),
    (s.TemplateOut, "serialization"),
    (s.TemplateList, "serialization"),
    (s.PreviewIn, "validation"),
    (s.PreviewOut, "serialization"),
    (s.LocaleIn, "validation"),
    (s.LocaleOut, "serialization"),
    (s.TokenRequest, "validation"),
    (s.TokenOut, "serialization"),
    (s.RevokeRequest, "validation"),
    (s.OAuthError, "serialization"),
]
PROBLEM_CODES = {
    400: "Malformed JSON, or a bad cursor.",
    401: "No API key, or an unknown or revoked one.",
    403: "The key lacks the scope.",
    404: "No such resource in this tenant.",
    405: "Method not allowed.",
    409: "A conflict (an idempotency key reused with another body; a state that forbids it).",
    413: "The body is too large.",
    415: "Not JSON.",
    422: "Validation failed: ``errors`` names each field.",
    429: "Too many requests: wait ``Retry-After`` seconds.",
    503: "The database is unavailable; nothing was stored. Retry after ``Retry-After``.",
}


def _oauth(
    operation_id: str, summary: str, form: type[BaseModel], ok: dict[str, Any]
) -> dict[str, Any]:
    """The OAuth endpoints: form-encoded, client authentication, OAuth's own errors."""
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": [{"clientBasic": []}, {}],
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": _ref(form)}},
        },
        "responses": _oauth_responses(ok),
    }


def _oauth_responses(ok: dict[str, Any]) -> dict[str, Any]:
    responses = {"200": ok, **_problems(413)}
    for code in ("400", "401"):
        # OAuth's own error document; anything the app refuses before Authlib, a problem.
        responses[code]["content"]["application/json"] = {"schema": _ref(s.OAuthError)}
    responses.pop("403")
    return responses


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _problems(*codes: int) -> dict[str, Any]:
    found = {}
    for code in sorted({400, 401, 403, 405, 503, *codes}):
        found[str(code)] = {
            "description": PROBLEM_CODES[code],
            "content": {"application/problem+json": {"schema": _ref(s.ProblemDoc)}},
        }
    return found


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _phone() -> dict[str, Any]:
    return {
        "name": "phone",
        "in": "query",
        "required": True,
        "description": "E.164 (encode the + as %2B).",
        "schema": {"type": "string"},
    }


def _op(
    operation_id: str,
    summary: str,
    scope: str | None,
    responses: dict[str, Any],
    *,
    body: type[BaseModel] | None = None,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "responses": responses}
    if scope is not None:
        op["security"] = [{"apiKey": []}, {"oauth2": [scope]}]
        op["description"] = f"Needs the `{scope}` scope."
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if params:
        op["parameters"] = params
    return op


MESSAGE_ID = {
    "name": "message_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}


TEMPLATE_REF = {
    "name": "ref",
    "in": "path",
    "required": True,
    "description": "The template's id (tpl_...) or its name.",
    "schema": {"type": "string"},
}
CONNECTION_ID = {
    "name": "connection_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}


@cache
def build() -> dict[str, Any]:
    # Imported here: that module builds on this one's helpers.
    from app.api.openapi_campaigns import MODELS, campaign_paths

    _, top = models_json_schema([*_MODELS, *MODELS], ref_template=REF)
    components = top.get("$defs", {})
    paths: dict[str, Any] = {
        "/v1/messages": {
            "post": _op(
                "sendMessage",
                "Send a message (a send intent)",
                "messages:write",
                {
                    "202": _json(s.MessageOut, "Accepted: the message, as stored."),
                    "200": _json(s.MessageOut, "A replay of an earlier Idempotency-Key."),
                    **_problems(409, 413, 415, 422, 429),
                },
                body=SendIntent,
                params=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 255},
                    }
                ],
            ),
            "get": _op(
                "listMessages",
                "List messages, newest first",
                "messages:read",
                {"200": _json(s.MessagePage, "A page of messages."), **_problems(422)},
                params=[
                    _query("status", "Only this status."),
                    _query("since", "Created at or after (RFC 3339).", type="string"),
                    _query("limit", "1 to 200.", type="integer"),
                    _query("cursor", "From the previous page's next_cursor."),
                ],
            ),
        },
        "/v1/messages/{message_id}": {
            "get": _op(
                "getMessage",
                "A message and its events",
                "messages:read",
                {"200": _json(s.MessageOut, "The message."), **_problems(404)},
                params=[MESSAGE_ID],
            )
        },
        "/v1/messages/{message_id}/cancel": {
            "post": _op(
                "cancelMessage",
                "Cancel a message not yet handed to a provider",
                "messages:write",
                {"200": _json(s.MessageOut, "Canceled."), **_problems(404, 409)},
                params=[MESSAGE_ID],
            )
        },
        "/v1/consents": {
            "post": _op(
                "recordConsent",
                "Record a consent (opt-in or opt-out)",
                "consents:write",
                {"201": _json(s.Consents, "The number's consents."), **_problems(413, 415, 422)},
                body=ConsentIn,
            ),
            "get": _op(
                "getConsents",
                "A number's consents and their history",
                "consents:read",
                {"200": _json(s.Consents, "The number's consents."), **_problems(422)},
                params=[_phone()],
            ),
        },
        "/v1/contacts/timezone": {
            "put": _op(
                "setContactTimezone",
                "Store a contact's own time zone",
                "messages:write",
                {"200": _json(s.TimezoneOut, "Stored."), **_problems(413, 415, 422)},
                body=s.TimezoneIn,
                params=[_phone()],
            )
        },
        "/v1/contacts/export": {
            "get": _op(
                "exportContact",
                "Everything held about a number (a data-subject request)",
                "admin",
                {"200": _json(s.AnyObject, "What is held."), **_problems(422)},
                params=[_phone()],
            )
        },
        "/v1/contacts": {
            "delete": _op(
                "eraseContact",
                "Erase what is held about a number",
                "admin",
                {"200": _json(s.Erasure, "Erased."), **_problems(404, 422)},
                params=[_phone()],
            )
        },
        "/v1/analytics": {
            "get": _op(
                "getAnalytics",
                "Delivery figures by hour or by day",
                "messages:read",
                {"200": _json(s.Analytics, "The figures."), **_problems(422)},
                params=[
                    _query("start", "ISO 8601; default a week (day) or a day (hour) back."),
                    _query("end", "ISO 8601; default now."),
                    _query("bucket", "hour or day.", type="string", enum=["hour", "day"]),
                    _query("by", "Comma-separated: tenant, account, channel, campaign."),
                    _query("account_id", "Only this account."),
                    _query("channel", "Only this channel.", type="string", enum=list(CHANNELS)),
                    _query("campaign_id", "Only this campaign's messages."),
                ],
            )
        },
        "/v1/admin/stuck": {
            "get": _op(
                "getStuckReport",
                "The stuck-work report",
                "admin",
                {"200": _json(s.StuckReport, "The report."), **_problems(422)},
                params=[_query("older_than", "A duration (90s, 10m, 2h, 1d).")],
            )
        },
        "/v1/admin/redrive": {
            "post": _op(
                "redriveMessages",
                "Re-drive stuck messages safely (dry_run first)",
                "admin",
                {"200": _json(s.RedriveOut, "What was done."), **_problems(413, 415, 422)},
                body=s.RedriveIn,
            )
        },
        "/v1/routing-rules": {
            "get": _op(
                "listRoutingRules",
                "The tenant's routing rules, in order",
                "admin",
                {"200": _json(s.RoutingRules, "The rules.")},
            ),
            "post": _op(
                "createRoutingRule",
                "Add a routing rule at the end",
                "admin",
                {"201": _json(s.RoutingRule, "Added."), **_problems(413, 415, 422)},
                body=s.RoutingRuleIn,
            ),
        },
        "/v1/routing-rules/{rule_id}": {
            "delete": _op(
                "deleteRoutingRule",
                "Remove a routing rule",
                "admin",
                {"204": {"description": "Removed."}, **_problems(404)},
                params=[
                    {
                        "name": "rule_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
            )
        },
        "/v1/admin/crm/connections": {
            "get": _op(
                "listCrmConnections",
                "The tenant's CRM connections, with their budgets",
                "admin",
                {"200": _json(s.CrmConnections, "The connections.")},
            ),
            "post": _op(
                "connectCrm",
                "Connect a CRM",
                "admin",
                {"201": _json(s.CrmConnection, "Connected."), **_problems(413, 415, 422)},
                body=s.CrmConnectionIn,
            ),
        },
        "/v1/admin/crm/connections/{connection_id}": {
            "patch": _op(
                "changeCrmLimits",
                "Change a connection's plan or limits",
                "admin",
                {"200": _json(s.CrmConnection, "Changed."), **_problems(404, 413, 415, 422)},
                body=s.CrmLimitsIn,
                params=[CONNECTION_ID],
            ),
            "delete": _op(
                "disconnectCrm",
                "Disconnect a CRM",
                "admin",
                {"200": _json(s.CrmConnection, "Disconnected."), **_problems(404)},
                params=[CONNECTION_ID],
            ),
        },
        "/v1/admin/redrive/syncs": {
            "post": _op(
                "redriveSyncs",
                "Put dead-lettered CRM syncs back in line",
                "admin",
                {"200": _json(s.SyncRedrive, "What was re-driven."), **_problems(413, 415, 422)},
                body=s.SyncIds,
            )
        },
        "/v1/templates": {
            "post": _op(
                "createTemplate",
                "Create a template (its version 1)",
                "templates:write",
                {"201": _json(s.TemplateOut, "Created."), **_problems(413, 415, 422)},
                body=s.TemplateIn,
            ),
            "get": _op(
                "listTemplates",
                "The tenant's templates",
                "templates:write",
                {"200": _json(s.TemplateList, "The templates.")},
                params=[
                    _query(
                        "archived",
                        "true: archived ones too.",
                        type="string",
                        enum=["true", "false"],
                    )
                ],
            ),
        },
        "/v1/templates/{ref}": {
            "get": _op(
                "getTemplate",
                "A template and one version (the latest unless ?version=)",
                "templates:write",
                {"200": _json(s.TemplateOut, "The template."), **_problems(404, 422)},
                params=[TEMPLATE_REF, _query("version", "A version number.", type="integer")],
            )
        },
        "/v1/templates/{ref}/versions": {
            "post": _op(
                "addTemplateVersion",
                "Add a version: sends already made keep theirs",
                "templates:write",
                {"201": _json(s.TemplateOut, "Added."), **_problems(404, 409, 413, 415, 422)},
                body=s.TemplateVersionIn,
                params=[TEMPLATE_REF],
            )
        },
        "/v1/templates/{ref}/archive": {
            "post": _op(
                "archiveTemplate",
                "Archive a template",
                "templates:write",
                {"200": _json(s.TemplateOut, "Archived."), **_problems(404)},
                params=[TEMPLATE_REF],
            )
        },
        "/v1/templates/{ref}/preview": {
            "post": _op(
                "previewTemplate",
                "Each channel's text, encoding, segments and the characters forcing UCS-2",
                "templates:write",
                {"200": _json(s.PreviewOut, "The preview."), **_problems(404, 413, 415, 422)},
                body=s.PreviewIn,
                params=[TEMPLATE_REF],
            )
        },
        "/v1/contacts/locale": {
            "put": _op(
                "setContactLocale",
                "Store a contact's preferred locale (for templates)",
                "messages:write",
                {"200": _json(s.LocaleOut, "Stored."), **_problems(413, 415, 422)},
                body=s.LocaleIn,
                params=[_phone()],
            )
        },
        "/oauth/token": {
            "post": _oauth(
                "issueToken",
                "An access token (client credentials)",
                s.TokenRequest,
                _json(s.TokenOut, "The token."),
            )
        },
        "/oauth/revoke": {
            "post": _oauth(
                "revokeToken",
                "Revoke an access token (RFC 7009)",
                s.RevokeRequest,
                {"description": "Revoked (or unknown)."},
            )
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness",
                "responses": {"200": _json(s.Health, "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the database and the broker answer",
                "responses": {
                    "200": _json(s.Health, "Ready."),
                    "503": _json(s.Health, "Not ready: checks says which."),
                },
            }
        },
    }
    paths.update(campaign_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard",
            "version": VERSION,
            "description": "Send intents in; messages, consents and delivery figures out. "
            "Errors are RFC 9457 problem documents.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key."},
                "oauth2": {
                    "type": "oauth2",
                    "description": "An access token from the client credentials grant.",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": "/oauth/token",
                            "scopes": {scope: scope for scope in sorted(KNOWN_SCOPES)},
                        }
                    },
                },
                "clientBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "An OAuth client's id and secret.",
                },
            },
        },
    }


@bp.get("/v1/openapi.json")
def openapi_json() -> Response:
    return Response(json.dumps(build()), mimetype="application/json")
