"""``switchboard rules``: routing rules for inbound messages."""

from __future__ import annotations

import click

from app.cli.base import app_session, emit, json_option, main


@main.group()
def rules() -> None:
    """Routing rules for inbound messages, evaluated in order."""


@rules.command("add")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--name", required=True)
@click.option(
    "--match",
    "match_",
    required=True,
    type=click.Choice(["known_contact", "unknown_sender", "keywords", "area_code", "any"]),
)
@click.option("--values", default="", help="keywords: words or phrases; area_code: 212,+44161.")
@click.option(
    "--action",
    required=True,
    type=click.Choice(["route_activity", "create_lead", "tag", "escalate", "assign_owner"]),
)
@click.option("--target", default=None, help="The tag, escalation queue or owner.")
@click.option("--final", is_flag=True, help="Stop evaluating later rules when this one fires.")
@json_option
def rules_add(
    tenant_id: str,
    name: str,
    match_: str,
    values: str,
    action: str,
    target: str | None,
    final: bool,
    as_json: bool,
) -> None:
    """Append a rule (it is evaluated after the existing ones)."""
    from app.messaging.conversations.rules import InvalidRule, RuleSpec, add_rule, rule_view
    from app.models import Tenant

    spec = RuleSpec(
        name, match_, action, tuple(v for v in values.split(",") if v.strip()), target, final
    )
    with app_session() as (session, _settings):
        if session.get(Tenant, tenant_id) is None:
            raise click.BadParameter("no such tenant", param_hint="--tenant")
        try:
            view = rule_view(add_rule(session, tenant_id, spec))
        except InvalidRule as exc:
            raise click.BadParameter(str(exc), param_hint=f"--{exc.field}") from None
    emit(as_json, view, f"rule {view['id']} at position {view['position']}")


@rules.command("list")
@click.option("--tenant", "tenant_id", required=True)
@json_option
def rules_list(tenant_id: str, as_json: bool) -> None:
    """The tenant's rules, in evaluation order."""
    from app.messaging.conversations.rules import list_rules, rule_view

    with app_session() as (session, _settings):
        views = [rule_view(r) for r in list_rules(session, tenant_id)]
    human = "\n".join(
        f"{v['position']:>3} {v['id']} {v['name']}: {v['match']} {v['values']} -> "
        f"{v['action']} {v['target'] or ''}"
        for v in views
    )
    emit(as_json, {"rules": views}, human or "no rules (the default routing applies)")


@rules.command("remove")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--id", "rule_id", required=True)
@json_option
def rules_remove(tenant_id: str, rule_id: str, as_json: bool) -> None:
    """Remove one rule."""
    from app.models import RoutingRule

    with app_session() as (session, _settings):
        rule = session.get(RoutingRule, rule_id)
        if rule is None or rule.tenant_id != tenant_id:
            raise click.BadParameter("no such rule for this tenant", param_hint="--id")
        session.delete(rule)
    emit(as_json, {"id": rule_id, "removed": True}, f"removed {rule_id}")
