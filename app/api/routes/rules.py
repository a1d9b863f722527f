"""/v1/routing-rules: the tenant's routing rules for inbound messages, in evaluation order."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g
from sqlalchemy import select

from app.api.auth import require_scope
from app.api.bodies import parse_body
from app.api.errors import Problem
from app.api.schemas import RoutingRuleIn
from app.api.session import request_session
from app.domain.ids import is_id
from app.messaging.conversations.rules import InvalidRule, RuleSpec, add_rule, list_rules, rule_view
from app.models import RoutingRule

bp = Blueprint("routing_rules", __name__, url_prefix="/v1/routing-rules")


def _invalid(field: str, message: str) -> Problem:
    return Problem(
        422,
        "validation_failed",
        "bad routing rule",
        errors=[{"field": field, "code": "invalid", "message": message}],
    )


@bp.get("")
@require_scope("admin")
def list_() -> Any:
    return {"data": [rule_view(r) for r in list_rules(request_session(), g.tenant_id)]}


@bp.post("")
@require_scope("admin")
def create() -> Any:
    body = parse_body(RoutingRuleIn)
    spec = RuleSpec(body.name, body.match, body.action, tuple(body.values), body.target, body.final)
    session = request_session()
    try:
        rule = add_rule(session, g.tenant_id, spec)
    except InvalidRule as exc:
        raise _invalid(exc.field, str(exc)) from None
    session.commit()
    return rule_view(rule), 201


@bp.delete("/<rule_id>")
@require_scope("admin")
def remove(rule_id: str) -> Any:
    session = request_session()
    rule = (
        session.scalar(
            select(RoutingRule).where(
                RoutingRule.id == rule_id, RoutingRule.tenant_id == g.tenant_id
            )
        )
        if is_id(rule_id, "rul")
        else None
    )
    if rule is None:
        raise Problem(404, "not_found", "no routing rule with this id")
    session.delete(rule)
    session.commit()
    return "", 204
