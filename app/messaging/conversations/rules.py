"""Routing rules for inbound messages: deterministic, per tenant, evaluated in order.

A rule matches on one thing:
- ``known_contact``: the sender was a contact before this message;
- ``unknown_sender``: they were not;
- ``keywords``: the text contains one of the words or phrases (whole words, any case);
- ``area_code``: the sender's number starts with one of the prefixes
  (``+1212``, or a bare ``212`` for a North American area code);
- ``any``: every message.

Every rule that matches fires, in order, until one marked ``final``. Its action is
recorded on the inbound message as an event: ``escalated`` for ``escalate``, and
``routed`` (with the action) for ``route_activity``, ``create_lead``, ``tag`` and
``assign_owner``. When no routing action fired, the default routes a known contact's
message to an activity and makes an unknown sender a lead, so every reply lands
somewhere a person will act on it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.messaging.states import record_note
from app.models import Message, RoutingRule

MATCHES = ("known_contact", "unknown_sender", "keywords", "area_code", "any")
ACTIONS = ("route_activity", "create_lead", "tag", "escalate", "assign_owner")
# Actions that say where the message goes; tags and escalations come on top of one.
_ROUTING_ACTIONS = frozenset({"route_activity", "create_lead", "assign_owner"})
_NEEDS_VALUES = frozenset({"keywords", "area_code"})
_NEEDS_TARGET = frozenset({"tag", "escalate", "assign_owner"})


class InvalidRule(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class RuleSpec:
    name: str
    match: str
    action: str
    values: tuple[str, ...] = ()
    target: str | None = None
    final: bool = False

    def validated(self) -> RuleSpec:
        if not self.name.strip() or len(self.name) > 100:
            raise InvalidRule("name", "give a name of 1 to 100 characters")
        if self.match not in MATCHES:
            raise InvalidRule("match", f"must be one of {', '.join(MATCHES)}")
        if self.action not in ACTIONS:
            raise InvalidRule("action", f"must be one of {', '.join(ACTIONS)}")
        values = tuple(v.strip() for v in self.values if v.strip())
        if self.match in _NEEDS_VALUES and not values:
            raise InvalidRule("values", f"{self.match} needs at least one value")
        if self.match == "area_code" and not all(re.fullmatch(r"\+?\d{1,8}", v) for v in values):
            raise InvalidRule("values", "area codes are digits, such as 212 or +44161")
        if self.action in _NEEDS_TARGET and not (self.target or "").strip():
            raise InvalidRule("target", f"{self.action} needs a target (a tag, queue or owner)")
        if self.target is not None and len(self.target) > 200:
            raise InvalidRule("target", "at most 200 characters")
        return RuleSpec(self.name.strip(), self.match, self.action, values, self.target, self.final)


def add_rule(session: Session, tenant_id: str, spec: RuleSpec) -> RoutingRule:
    spec = spec.validated()
    last = session.scalar(
        select(func.max(RoutingRule.position)).where(RoutingRule.tenant_id == tenant_id)
    )
    rule = RoutingRule(
        tenant_id=tenant_id,
        position=(last or 0) + 1,
        name=spec.name,
        match=spec.match,
        values=list(spec.values),
        action=spec.action,
        target=spec.target,
        final=spec.final,
    )
    session.add(rule)
    session.flush()
    return rule


def list_rules(session: Session, tenant_id: str) -> list[RoutingRule]:
    return list(
        session.scalars(
            select(RoutingRule)
            .where(RoutingRule.tenant_id == tenant_id)
            .order_by(RoutingRule.position, RoutingRule.id)
        )
    )


def rule_view(rule: RoutingRule) -> dict[str, object]:
    return {
        "id": rule.id,
        "position": rule.position,
        "name": rule.name,
        "match": rule.match,
        "values": rule.values,
        "action": rule.action,
        "target": rule.target,
        "final": rule.final,
    }


def _area_prefix(value: str) -> str:
    return value if value.startswith("+") else f"+1{value}"


def _contains_phrase(text: str, phrase: str) -> bool:
    words = [re.escape(w) for w in phrase.lower().split()]
    return bool(words) and re.search(r"\b" + r"\s+".join(words) + r"\b", text) is not None


def matches(rule: RoutingRule, text: str, phone: str, known: bool) -> bool:
    if rule.match == "any":
        return True
    if rule.match == "known_contact":
        return known
    if rule.match == "unknown_sender":
        return not known
    if rule.match == "keywords":
        lowered = text.lower()
        return any(_contains_phrase(lowered, v) for v in rule.values)
    if rule.match == "area_code":
        return any(phone.startswith(_area_prefix(v)) for v in rule.values)
    return False


def route_inbound(
    session: Session, inbound: Message, phone: str, known: bool, source: str
) -> Sequence[str]:
    """Evaluate the tenant's rules on ``inbound`` and record what fired; returns the actions."""
    fired: list[str] = []
    text = inbound.body or ""
    for rule in list_rules(session, inbound.tenant_id):
        if not matches(rule, text, phone, known):
            continue
        kind = "escalated" if rule.action == "escalate" else "routed"
        record_note(
            session,
            inbound,
            kind,
            source=source,
            reason=rule.action,
            data={
                "rule_id": rule.id,
                "rule": rule.name,
                "action": rule.action,
                "target": rule.target,
                "known_contact": known,
            },
        )
        fired.append(rule.action)
        if rule.final:
            break
    if not _ROUTING_ACTIONS.intersection(fired):
        action = "route_activity" if known else "create_lead"
        record_note(
            session,
            inbound,
            "routed",
            source=source,
            reason=action,
            data={"rule_id": None, "rule": "default", "action": action, "known_contact": known},
        )
        fired.append(action)
    return fired
