"""/v1/contacts: a contact's stored time zone, and the data subject's export and erasure."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from app.api.auth import require_scope
from app.api.bodies import parse_body
from app.api.errors import Problem
from app.api.representations import iso, message_view
from app.api.routes.consents import phone_arg, record_view
from app.api.schemas import LocaleIn, TimezoneIn
from app.api.session import request_session
from app.messaging.compliance.data_subjects import collect, erase, record_export
from app.messaging.contacts import get_or_create_contact

bp = Blueprint("contacts", __name__, url_prefix="/v1/contacts")


@bp.put("/timezone")
@require_scope("messages:write")
def set_timezone() -> Any:
    """Store the contact's own time zone (it wins over the one guessed from the number)."""
    phone = phone_arg()
    name = parse_body(TimezoneIn).timezone
    session = request_session()
    contact = get_or_create_contact(session, g.tenant_id, phone)
    contact.timezone = name
    session.commit()
    return {"id": contact.id, "phone": phone, "timezone": name}


@bp.put("/locale")
@require_scope("messages:write")
def set_locale() -> Any:
    """Store the contact's preferred locale (templates use it when a send names none)."""
    phone = phone_arg()
    tag = parse_body(LocaleIn).locale
    session = request_session()
    contact = get_or_create_contact(session, g.tenant_id, phone)
    contact.locale = tag
    session.commit()
    return {"id": contact.id, "phone": phone, "locale": tag}


@bp.get("/export")
@require_scope("admin")
def export() -> Any:
    phone = phone_arg()
    session = request_session()
    found = collect(session, g.tenant_id, phone)
    contact = found.contact
    body = {
        "phone": phone,
        "found": found.found,
        "contact": None
        if contact is None
        else {
            "id": contact.id,
            "phone": contact.phone,
            "timezone": contact.timezone,
            "locale": contact.locale,
            "crm_refs": contact.crm_refs,
            "created_at": iso(contact.created_at),
        },
        "consents": [record_view(r) for r in found.consents],
        # An opt-out kept (as a keyed hash only) after an erasure, so it is still honoured.
        "suppressed": found.suppressed,
        "messages": [message_view(m, phone, found.events.get(m.id, [])) for m in found.messages],
    }
    record_export(session, g.tenant_id, phone, found, actor=g.actor)
    session.commit()
    return body


@bp.delete("")
@require_scope("admin")
def erase_contact() -> Any:
    phone = phone_arg()
    session = request_session()
    erasure = erase(session, g.tenant_id, phone, requested_by=g.api_key_id)
    if erasure is None:
        raise Problem(404, "not_found", "nothing is held about this number")
    session.commit()
    return {
        "erasure_id": erasure.id,
        "erased_at": iso(erasure.erased_at),
        "counts": erasure.counts,
    }
