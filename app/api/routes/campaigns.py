"""/v1/campaigns: a list of recipients in one request, tracked, paused and counted.

``POST /v1/campaigns`` takes the campaign as JSON with its ``recipients``, or a CSV body
(``text/csv``, a ``phone`` column and one per variable) with the campaign's fields in the
query string. Every row is checked before anything is sent; the recipients are written in
batches, and once the answer is given every accepted one is durable. Their messages are
made behind the answer, in batches, by the workers (``app.messaging.campaigns``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, current_app, g, request
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import RequestEntityTooLarge

from app.api.auth import require_scope
from app.api.bodies import check_json_shape
from app.api.errors import Problem, validation_problem
from app.api.routes.messages import MAX_IDEMPOTENCY_KEY
from app.api.session import get_db, request_session
from app.content.store import TemplateProblem
from app.domain.ids import is_id
from app.messaging.campaigns import progress
from app.messaging.campaigns.control import NotAllowed, control, owe_expansion
from app.messaging.campaigns.rows import Checked, FileProblem, Row, csv_rows, json_rows
from app.messaging.campaigns.spec import CampaignSpec, spec_from_query
from app.messaging.campaigns.store import Bound, CampaignConflict, NotOpen, Uploaded, open_campaign
from app.messaging.campaigns.submit import expansions_for, finish, upload
from app.messaging.intake.routing import NoRoute
from app.models import Campaign, CampaignRecipient, Tenant
from config import Settings

log = logging.getLogger(__name__)

bp = Blueprint("campaigns", __name__, url_prefix="/v1/campaigns")
STATUSES = ("draft", "running", "paused", "canceled", "completed")


def _settings() -> Settings:
    settings: Settings = current_app.extensions["switchboard.settings"]
    return settings


def _key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise Problem(
            400,
            "bad_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
        )
    return key


def _is_csv() -> bool:
    return request.mimetype in ("text/csv", "application/csv")


def _json_body() -> dict[str, Any]:
    if not request.mimetype or not (
        request.mimetype == "application/json" or request.mimetype.endswith("+json")
    ):
        raise Problem(
            415, "unsupported_media_type", "send Content-Type: application/json or text/csv"
        )
    try:
        payload = json.loads(request.get_data(cache=False))
    except RecursionError:
        raise Problem(400, "too_deeply_nested", "the JSON nests too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Problem(400, "malformed_json", "the body must be a JSON object")
    check_json_shape(payload)
    return payload


def _file_problem(exc: FileProblem) -> Problem:
    status = 422 if exc.code == "too_many_recipients" else 400
    return Problem(status, exc.code, exc.message, errors=[exc.as_dict()])


def _load(campaign_id: str, lock: bool = False) -> Campaign:
    if not is_id(campaign_id, "cmp"):
        raise Problem(404, "not_found", "no campaign with this id")
    session = request_session()
    campaign = session.get(Campaign, campaign_id, with_for_update=lock)
    if campaign is None or campaign.tenant_id != g.tenant_id:
        raise Problem(404, "not_found", "no campaign with this id")
    return campaign


def _upload(
    tenant: Tenant, campaign: Campaign, recipients: Any, created: bool, replay: bool = False
) -> tuple[Uploaded, Checked]:
    """Check and write this request's rows; a file that cannot be read writes nothing."""
    campaign_id = campaign.id
    request_session().close()  # each batch has a transaction of its own

    def source(bound: Bound, checked: Checked) -> Iterator[Row]:
        if recipients is None:
            return csv_rows(request.stream, bound.check, checked, bound.convert)
        return json_rows(recipients, bound.check, checked)

    try:
        return upload(
            get_db(),
            tenant,
            campaign_id,
            source,
            limit=_settings().campaign_max_recipients,
            created=created,
            replay=replay,
            undo_on=(FileProblem, RequestEntityTooLarge),
        )
    except FileProblem as exc:
        raise _file_problem(exc) from None
    except RequestEntityTooLarge:
        raise Problem(
            413,
            "too_large",
            f"a campaign upload is at most {_settings().campaign_max_bytes} bytes",
        ) from None
    except NotOpen:
        raise Problem(
            409, "campaign_closed", "a canceled campaign takes no more recipients"
        ) from None
    except (OperationalError, PoolTimeout):
        log.error("database unavailable mid-upload", extra={"campaign_id": campaign_id})
        raise Problem(
            503,
            "database_unavailable",
            "the database went away mid-upload: the campaign holds the batches that committed "
            "and sends nothing; send the same request with the same Idempotency-Key to "
            "complete it",
            headers={"Retry-After": "5"},
            extra={"campaign_id": campaign_id},
        ) from None


def _answer(campaign_id: str, upload_view: dict[str, Any] | None, status: int) -> Any:
    session = request_session()
    campaign = session.get(Campaign, campaign_id)
    assert campaign is not None
    body = progress.view(campaign, progress.counts(session, campaign))
    if upload_view is not None:
        body["upload"] = upload_view
    return body, status, {"Location": f"/v1/campaigns/{campaign_id}"}


def _bound_size() -> None:
    """Campaign uploads may be larger than other requests, up to CAMPAIGN_MAX_BYTES; one that
    says it is larger is refused before anything is written."""
    limit = _settings().campaign_max_bytes
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "too_large", f"a campaign upload is at most {limit} bytes")


@bp.post("")
@require_scope("messages:write")
def create_campaign() -> Any:
    _bound_size()
    key = _key()
    payload = spec_from_query(request.args.to_dict()) if _is_csv() else _json_body()
    if _is_csv() and "recipients" in payload:
        raise Problem(400, "invalid", "a CSV upload's recipients are its rows")
    try:
        spec = CampaignSpec.model_validate(payload)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    if not _is_csv() and spec.recipients is None:
        spec = spec.model_copy(update={"recipients": []})
    tenant: Tenant = g.tenant
    session = request_session()
    try:
        campaign, created = open_campaign(session, tenant, spec, key)
    except CampaignConflict as exc:
        raise Problem(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a campaign with other fields",
            extra={"campaign_id": exc.campaign_id},
        ) from None
    except TemplateProblem as exc:
        raise Problem(
            422,
            "validation_failed",
            "the template cannot be used",
            errors=[p.as_dict() for p in exc.problems],
        ) from None
    except NoRoute as exc:
        errors = (
            [{"field": exc.field, "code": exc.reason, "message": exc.detail}] if exc.field else None
        )
        raise Problem(422, exc.reason, exc.detail, errors=errors) from None
    campaign_id = campaign.id
    session.commit()
    uploaded, checked = _upload(tenant, campaign, spec.recipients, created, replay=not created)
    started = finish(
        get_db(),
        tenant.id,
        campaign_id,
        uploaded,
        checked,
        created=created,
        start=spec.start,
        actor=g.actor,
        expansions=expansions_for(_settings(), uploaded.added),
    )
    upload_view = uploaded.as_dict(checked)
    if spec.start and checked.error_count:
        problem = Problem(
            422,
            "rows_invalid",
            (
                "1 row has errors"
                if checked.error_count == 1
                else f"{checked.error_count} rows have errors"
            )
            + ": the campaign is kept as a draft; "
            "add the corrected rows and start it",
            errors=upload_view["errors"],
            extra={"campaign_id": campaign_id, "upload": upload_view},
        )
        raise problem
    return _answer(campaign_id, upload_view, 202 if started else 201 if created else 200)


@bp.post("/<campaign_id>/recipients")
@require_scope("messages:write")
def add_to_campaign(campaign_id: str) -> Any:
    _bound_size()
    campaign = _load(campaign_id)
    recipients = None
    if not _is_csv():
        payload = _json_body()
        unknown = sorted(set(payload) - {"recipients"})
        if unknown or "recipients" not in payload:
            raise Problem(
                422,
                "validation_failed",
                'the body is {"recipients": [...]}',
                errors=[
                    {
                        "field": unknown[0] if unknown else "recipients",
                        "code": "invalid",
                        "message": "expected only recipients",
                    }
                ],
            )
        recipients = payload["recipients"]
    uploaded, checked = _upload(g.tenant, campaign, recipients, created=False)
    session = request_session()
    locked = session.get(Campaign, campaign_id, with_for_update=True)
    assert locked is not None
    if uploaded.added and locked.status in ("running", "completed"):
        locked.status = "running"
        locked.finished_at = None
        owe_expansion(session, campaign_id)
    session.commit()
    return _answer(campaign_id, uploaded.as_dict(checked), 200)


def _control(campaign_id: str, action: str) -> Any:
    campaign = _load(campaign_id, lock=True)
    try:
        done = control(request_session(), campaign, action, g.actor)
    except NotAllowed as exc:
        raise Problem(
            409,
            "not_allowed",
            str(exc),
            extra={"campaign_status": exc.status},
        ) from None
    request_session().commit()
    body, _, headers = _answer(campaign_id, None, 200)
    body["changed"] = {"messages": done.messages, "changed": done.changed}
    return body, 200, headers


@bp.post("/<campaign_id>/start")
@require_scope("messages:write")
def start_campaign(campaign_id: str) -> Any:
    return _control(campaign_id, "start")


@bp.post("/<campaign_id>/pause")
@require_scope("messages:write")
def pause_campaign(campaign_id: str) -> Any:
    return _control(campaign_id, "pause")


@bp.post("/<campaign_id>/resume")
@require_scope("messages:write")
def resume_campaign(campaign_id: str) -> Any:
    return _control(campaign_id, "resume")


@bp.post("/<campaign_id>/cancel")
@require_scope("messages:write")
def cancel_campaign(campaign_id: str) -> Any:
    return _control(campaign_id, "cancel")


@bp.get("/<campaign_id>")
@require_scope("messages:read")
def get_campaign(campaign_id: str) -> Any:
    campaign = _load(campaign_id)
    return progress.view(campaign, progress.counts(request_session(), campaign))


def _limit() -> int:
    try:
        limit = int(request.args.get("limit", "50"))
        if not 1 <= limit <= 500:
            raise ValueError
    except ValueError:
        raise Problem(
            422,
            "validation_failed",
            "bad query parameters",
            errors=[{"field": "limit", "code": "invalid", "message": "must be 1 to 500"}],
        ) from None
    return limit


def _cursor(decode_to: type[int] | type[str]) -> Any:
    cursor = request.args.get("cursor")
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        value = decode_to(text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Problem(400, "bad_cursor", "cursor is not one this API returned") from None
    if isinstance(value, str) and not is_id(value, "cmp"):
        raise Problem(400, "bad_cursor", "cursor is not one this API returned")
    if isinstance(value, int) and not 0 < value < 2**63:
        raise Problem(400, "bad_cursor", "cursor is not one this API returned")
    return value


def _encode(value: object) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


@bp.get("")
@require_scope("messages:read")
def list_campaigns() -> Any:
    limit = _limit()
    query = select(Campaign).where(Campaign.tenant_id == g.tenant_id)
    status = request.args.get("status")
    if status is not None:
        if status not in STATUSES:
            raise Problem(
                422,
                "validation_failed",
                "bad query parameters",
                errors=[{"field": "status", "code": "invalid", "message": "not a campaign status"}],
            )
        query = query.where(Campaign.status == status)
    after = _cursor(str)
    if after is not None:
        query = query.where(Campaign.id < after)
    rows = list(request_session().scalars(query.order_by(Campaign.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    return {
        "data": [progress.view(c) for c in page],
        "next_cursor": _encode(page[-1].id) if len(rows) > limit else None,
    }


@bp.get("/<campaign_id>/recipients")
@require_scope("messages:read")
def list_recipients(campaign_id: str) -> Any:
    """Each recipient in the order it was accepted: its number, reference, state and message."""
    campaign = _load(campaign_id)
    limit = _limit()
    query = select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign.id)
    state = request.args.get("state")
    if state is not None:
        if state not in ("pending", "made", "skipped"):
            raise Problem(
                422,
                "validation_failed",
                "bad query parameters",
                errors=[
                    {"field": "state", "code": "invalid", "message": "pending, made or skipped"}
                ],
            )
        query = query.where(CampaignRecipient.state == state)
    after = _cursor(int)
    if after is not None:
        query = query.where(CampaignRecipient.id > after)
    rows = list(request_session().scalars(query.order_by(CampaignRecipient.id).limit(limit + 1)))
    page = rows[:limit]
    return {
        "data": [
            {
                "to": r.phone,
                "reference": r.reference,
                "state": r.state,
                "reason": r.reason,
                "message_id": r.message_id,
            }
            for r in page
        ],
        "next_cursor": _encode(page[-1].id) if len(rows) > limit else None,
    }
