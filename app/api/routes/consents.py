"""/v1/consents: append a consent record, and read a number's current state and history."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import Blueprint, g, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.api.auth import require_scope
from app.api.bodies import json_object
from app.api.errors import Problem, validation_problem
from app.api.representations import iso
from app.api.session import request_session
from app.domain.phones import InvalidPhoneNumber, to_e164
from app.messaging.compliance.consent import (
    CONSENT_CHANNELS,
    current_state,
    history,
    record_consent,
)
from app.messaging.contacts import get_or_create_contact
from app.messaging.intake.intents import E164
from app.models import ConsentRecord
from app.security.crypto import keyring

bp = Blueprint("consents", __name__, url_prefix="/v1/consents")


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: E164
    channel: Literal["sms", "mms", "rcs", "all"] = "all"
    status: Literal["opted_in", "opted_out"]
    source: Literal["api", "import"] = "api"
    evidence: Annotated[str, Field(max_length=200)] | None = None
    jurisdiction: Annotated[str, Field(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")] | None = None


def phone_arg() -> str:
    """The ``phone`` query parameter in E.164 (a ``+`` sent unencoded arrives as a space)."""
    raw = request.args.get("phone", "")
    if raw.startswith(" ") and raw[1:2].isdigit():
        raw = "+" + raw[1:]
    try:
        return to_e164(raw.strip())
    except InvalidPhoneNumber as exc:
        raise Problem(
            422,
            "validation_failed",
            "give ?phone= in E.164 form (encode the + as %2B)",
            errors=[{"field": "phone", "code": "invalid", "message": str(exc)}],
        ) from None


def record_view(record: ConsentRecord) -> dict[str, Any]:
    return {
        "channel": record.channel,
        "status": record.status,
        "source": record.source,
        "jurisdiction": record.jurisdiction,
        "evidence": record.evidence,
        "at": iso(record.created_at),
    }


def consents_view(tenant_id: str, phone: str) -> dict[str, Any]:
    session = request_session()
    indexes = keyring().blind_indexes(phone)
    current: dict[str, Any] = {}
    for channel in CONSENT_CHANNELS[:-1]:
        state = current_state(session, tenant_id, indexes, channel)
        current[channel] = {
            "status": state.status,
            "since": iso(state.since),
            "source": state.source,
        }
    return {
        "phone": phone,
        "current": current,
        "history": [record_view(r) for r in history(session, tenant_id, indexes)],
    }


@bp.post("")
@require_scope("consents:write")
def create_consent() -> Any:
    try:
        data = ConsentIn.model_validate(json_object())
    except ValidationError as exc:
        raise validation_problem(exc) from None
    session = request_session()
    contact = get_or_create_contact(session, g.tenant_id, data.phone)
    record_consent(
        session,
        contact,
        channel=data.channel,
        status=data.status,
        source=data.source,
        evidence=data.evidence,
        jurisdiction=data.jurisdiction,
    )
    session.commit()
    return consents_view(g.tenant_id, data.phone), 201


@bp.get("")
@require_scope("consents:read")
def get_consents() -> Any:
    return consents_view(g.tenant_id, phone_arg())
