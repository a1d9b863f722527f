"""/v1/messages: send intents, reading one with its timeline, listing, cancelling."""

from __future__ import annotations

import base64
import binascii
import math
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.api.auth import require_scope
from app.api.bodies import json_object
from app.api.errors import Problem, validation_problem
from app.api.representations import message_view
from app.api.session import get_db, request_session
from app.content.sending import FromTemplate, prepare
from app.content.store import TemplateProblem
from app.domain.ids import is_id
from app.domain.statuses import CANCELABLE, Status
from app.infra.broker import TaskNames
from app.infra.outbox import Outbox, Written
from app.infra.ratelimit import Rate, RateLimiter
from app.messaging.intake.accept import (
    IdempotencyConflict,
    PolicyRefused,
    accept_intent,
    find_by_idempotency_key,
    replay_or_conflict,
)
from app.messaging.intake.intents import SendIntent, request_hash
from app.messaging.intake.routing import NoRoute
from app.messaging.intake.statement import NewMessage, accept_fast
from app.messaging.states import apply_transition
from app.models import Contact, Message, MessageEvent, Tenant
from app.observability.metrics import INTENTS
from config import Settings

bp = Blueprint("messages", __name__, url_prefix="/v1/messages")
# What POST /v1/messages answered, as the intents counter names it.
INTENT_RESULTS = {
    202: "accepted",
    200: "replayed",
    409: "conflict",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


@bp.after_request
def _count(response: Response) -> Response:
    if request.endpoint == "messages.create_message":
        INTENTS.labels(INTENT_RESULTS.get(response.status_code, "rejected")).inc()
    return response


MAX_IDEMPOTENCY_KEY = 255


def _settings() -> Settings:
    settings: Settings = current_app.extensions["switchboard.settings"]
    return settings


def _conflict(message_id: str) -> Problem:
    return Problem(
        409,
        "idempotency_key_reused",
        "this Idempotency-Key was used with a different payload",
        extra={"message_id": message_id},
    )


def _check_api_rate(session: Session, tenant: Tenant) -> None:
    """429 with Retry-After once this tenant is over its request rate; other tenants unaffected."""
    settings = _settings()
    rate = Rate.of(
        tenant.api_rate_per_second or settings.tenant_api_rate,
        tenant.api_rate_burst or settings.tenant_api_burst,
    )
    assert rate is not None
    limiter: RateLimiter = current_app.extensions["switchboard.limiter"]
    wait = limiter.acquire(session, f"api:{tenant.id}", rate, 1, reserve=False)
    if wait > 0:
        raise Problem(
            429,
            "rate_limited",
            f"this tenant may send {rate.per_second:g} requests a second; retry after the wait",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


@bp.post("")
@require_scope("messages:write")
def create_message() -> Any:
    payload = json_object()
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise Problem(
            400,
            "bad_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
        )
    try:
        intent = SendIntent.model_validate(payload)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    session = request_session()
    tenant: Tenant = g.tenant
    _check_api_rate(session, tenant)
    digest = request_hash(payload)
    engine = get_db().engine
    template: FromTemplate | None = None
    if intent.template is not None:
        try:
            intent, template = prepare(session, tenant.id, intent, _settings().public_base_url)
        except TemplateProblem as exc:
            raise Problem(
                422,
                "validation_failed",
                "the template could not be rendered",
                errors=[p.as_dict() for p in exc.problems],
            ) from None
    if engine.dialect.name == "postgresql":
        if session.in_transaction():  # the database rate limiter's bucket: release it now
            session.commit()
        try:
            accepted = accept_fast(
                engine,
                _settings(),
                tenant,
                intent,
                idempotency_key=key,
                payload_hash=digest,
                template=template,
            )
        except IntegrityError:  # a concurrent request with the same key: the general path
            accepted = None
        if accepted is not None:
            message = accepted.message
            if accepted.outbox_id is not None:
                outbox: Outbox = current_app.extensions["switchboard.outbox"]
                row = Written(accepted.outbox_id, TaskNames.DISPATCH, accepted.lane, [message.id])
                outbox.publish_soon([(row, accepted.tenant_id)])
            return _created(message, intent.to, created=True)
    # The general path: a replay or a conflict, a refusal, no route, another zone, or SQLite.
    try:
        result = accept_intent(
            session,
            _settings(),
            tenant,
            intent,
            idempotency_key=key,
            payload_hash=digest,
            template=template,
        )
        session.commit()
    except IdempotencyConflict as exc:
        raise _conflict(exc.message_id) from None
    except PolicyRefused as exc:
        decision = exc.decision
        assert decision.reason is not None
        field = decision.field or "to"
        raise Problem(
            422,
            decision.reason,
            decision.detail,
            errors=[{"field": field, "code": decision.reason, "message": decision.detail}],
            extra={"rule": decision.rule},
        ) from None
    except NoRoute as exc:
        errors = (
            [{"field": exc.field, "code": exc.reason, "message": exc.detail}] if exc.field else None
        )
        raise Problem(422, exc.reason, exc.detail, errors=errors) from None
    except IntegrityError:
        # A concurrent request with the same key won the insert: answer as its replay.
        session.rollback()
        existing = find_by_idempotency_key(session, g.tenant_id, key) if key else None
        if existing is None:
            raise
        try:
            result = replay_or_conflict(existing, digest)
        except IdempotencyConflict as exc:
            raise _conflict(exc.message_id) from None
    return _created(result.message, intent.to, created=result.created)


def _created(message: Message | NewMessage, phone: str, *, created: bool) -> Any:
    body = message_view(message, phone)
    return body, 202 if created else 200, {"Location": f"/v1/messages/{message.id}"}


def _load(message_id: str, lock: bool = False) -> tuple[Message, str]:
    if not is_id(message_id, "msg"):  # never hand the database a malformed id (a NUL, say)
        raise Problem(404, "not_found", "no message with this id")
    query = (
        select(Message, Contact.phone)
        .join(Contact, Contact.id == Message.contact_id)
        .where(Message.id == message_id, Message.tenant_id == g.tenant_id)
    )
    if lock:
        query = query.with_for_update(of=Message)
    row = request_session().execute(query).first()
    if row is None:
        raise Problem(404, "not_found", "no message with this id")
    return row[0], row[1]


@bp.get("/<message_id>")
@require_scope("messages:read")
def get_message(message_id: str) -> Any:
    message, phone = _load(message_id)
    events = list(
        request_session().scalars(
            select(MessageEvent)
            .where(MessageEvent.message_id == message.id, MessageEvent.tenant_id == g.tenant_id)
            .order_by(MessageEvent.id)
        )
    )
    return message_view(message, phone, events)


def _decode_cursor(cursor: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not is_id(value, "msg"):
        raise Problem(400, "bad_cursor", "cursor is not one this API returned")
    return value


def _encode_cursor(message_id: str) -> str:
    return base64.urlsafe_b64encode(message_id.encode()).decode().rstrip("=")


@bp.get("")
@require_scope("messages:read")
def list_messages() -> Any:
    errors: list[dict[str, str]] = []
    query = (
        select(Message, Contact.phone)
        .join(Contact, Contact.id == Message.contact_id)
        .where(Message.tenant_id == g.tenant_id)
    )
    status = request.args.get("status")
    if status is not None:
        if status not in {s.value for s in Status}:
            errors.append({"field": "status", "code": "invalid", "message": "not a message status"})
        query = query.where(Message.status == status)
    since = request.args.get("since")
    if since is not None:
        try:
            since_dt = datetime.fromisoformat(since.replace("Z", "+00:00"))
            if since_dt.tzinfo is None:
                raise ValueError
            query = query.where(Message.created_at >= since_dt)
        except ValueError:
            errors.append(
                {"field": "since", "code": "invalid", "message": "must be RFC 3339 with a zone"}
            )
    try:
        limit = int(request.args.get("limit", "50"))
        if not 1 <= limit <= 200:
            raise ValueError
    except ValueError:
        errors.append({"field": "limit", "code": "invalid", "message": "must be 1 to 200"})
        limit = 50
    if errors:
        raise Problem(422, "validation_failed", "bad query parameters", errors=errors)
    cursor = request.args.get("cursor")
    if cursor:
        query = query.where(Message.id < _decode_cursor(cursor))
    rows = request_session().execute(query.order_by(Message.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = _encode_cursor(page[-1][0].id) if len(rows) > limit else None
    return {"data": [message_view(m, phone) for m, phone in page], "next_cursor": next_cursor}


@bp.post("/<message_id>/cancel")
@require_scope("messages:write")
def cancel_message(message_id: str) -> Any:
    session = request_session()
    message, phone = _load(message_id, lock=True)
    if message.status == Status.CANCELED:
        return message_view(message, phone)
    if Status(message.status) not in CANCELABLE:
        raise Problem(
            409,
            "not_cancelable",
            f"the message is {message.status}; only pending, scheduled or queued ones can cancel",
            extra={"message_status": message.status},
        )
    apply_transition(session, message, Status.CANCELED, source="api", reason="canceled_by_api")
    session.commit()
    return message_view(message, phone)
