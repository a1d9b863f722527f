"""``switchboard tenants``: create a tenant; change its zone, quiet hours, consent policy,
keywords and auto-replies."""

from __future__ import annotations

import json
from typing import Any

import click

from app.cli.base import app_session, emit, json_option, main
from app.security import audit


@main.group()
def tenants() -> None:
    """Tenants."""


def _quiet_hours(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from app.messaging.compliance.quiet_hours import validate

    if value is None:
        return None
    if value.strip().lower() in ("", "none"):
        return ""  # clear them
    try:
        return validate(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{exc} (21:00-08:00, or mon-fri 21:00-08:00; sat,sun 20:00-10:00)"
        ) from None


def _timezone(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {value!r}") from None
    return value


def _words(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str] | None:
    from app.messaging.compliance.keywords import validate_words

    if value is None:
        return None
    try:
        return validate_words(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


QUIET_HELP = (
    "Local quiet hours: 21:00-08:00, or per weekday 'mon-fri 21:00-08:00; sat,sun 20:00-10:00'."
)


@tenants.command("create")
@click.option("--name", required=True)
@click.option("--timezone", "tz", default="UTC", show_default=True, callback=_timezone)
@click.option("--quiet-hours", default=None, callback=_quiet_hours, help=QUIET_HELP)
@click.option("--allow-quiet-hours-override", is_flag=True)
@click.option(
    "--urgent-bypasses-quiet-hours", is_flag=True, help="Urgent sends ignore quiet hours."
)
@click.option(
    "--consent-policy",
    type=click.Choice(["opt_out", "opt_in"]),
    default="opt_out",
    show_default=True,
    help="opt_in: send only to recipients with an opt-in on record.",
)
@click.option(
    "--api-rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="POST /v1/messages a second (default TENANT_API_RATE).",
)
@click.option("--api-burst", type=click.FloatRange(min=1), default=None)
@click.option(
    "--dispatch-weight",
    type=click.IntRange(min=1, max=1000),
    default=None,
    help="Its share of a dispatch batch beside other tenants' (default 1).",
)
@json_option
def tenants_create(
    name: str,
    tz: str,
    quiet_hours: str | None,
    allow_quiet_hours_override: bool,
    urgent_bypasses_quiet_hours: bool,
    consent_policy: str,
    api_rate_limit: float | None,
    api_burst: float | None,
    dispatch_weight: int | None,
    as_json: bool,
) -> None:
    """Create a tenant."""
    from app.models import Tenant

    with app_session() as (session, _settings):
        tenant = Tenant(
            name=name,
            timezone=tz,
            quiet_hours=quiet_hours or None,
            allow_quiet_hours_override=allow_quiet_hours_override,
            urgent_bypasses_quiet_hours=urgent_bypasses_quiet_hours,
            consent_policy=consent_policy,
            api_rate_per_second=api_rate_limit,
            api_rate_burst=api_burst,
            dispatch_weight=dispatch_weight or 1,
            keywords={},
            auto_replies={},
        )
        session.add(tenant)
        session.flush()
        tenant_id = tenant.id
        audit.append(
            session,
            tenant_id=tenant_id,
            actor="cli",
            action="tenant.create",
            target="tenant",
            ids=[tenant_id],
            change=_tenant_view(tenant),
        )
    emit(as_json, {"id": tenant_id}, f"tenant {tenant_id}")


@tenants.command("update")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--timezone", "tz", default=None, callback=_timezone)
@click.option(
    "--quiet-hours", default=None, callback=_quiet_hours, help=QUIET_HELP + " none clears."
)
@click.option("--allow-quiet-hours-override/--no-allow-quiet-hours-override", default=None)
@click.option("--urgent-bypasses-quiet-hours/--no-urgent-bypasses-quiet-hours", default=None)
@click.option("--consent-policy", type=click.Choice(["opt_out", "opt_in"]), default=None)
@click.option("--opt-out-keywords", callback=_words, help="Comma-separated, e.g. STOP,END.")
@click.option("--opt-in-keywords", callback=_words, help="Comma-separated, e.g. START,YES.")
@click.option("--help-keywords", callback=_words, help="Comma-separated, e.g. HELP,INFO.")
@click.option("--opt-out-reply", default=None, help="The opt-out confirmation ('' sends none).")
@click.option("--opt-in-reply", default=None, help="The reply to an opt-in keyword.")
@click.option("--help-reply", default=None, help="The reply to a help keyword.")
@click.option(
    "--dispatch-weight",
    type=click.IntRange(min=1, max=1000),
    default=None,
    help="Its share of a dispatch batch beside other tenants' (default 1).",
)
@click.option(
    "--body-retention",
    type=click.Choice(["keep", "until_final", "none"]),
    default=None,
    help="keep bodies; remove them once final; or keep none past the send.",
)
@click.option(
    "--body-retention-days",
    type=click.IntRange(min=0, max=36500),
    default=None,
    help="With keep: remove bodies older than this many days (0: keep forever).",
)
@click.option(
    "--payload-retention-hours",
    type=click.IntRange(min=0, max=24 * 3650),
    default=None,
    help="Remove processed webhook payloads older than this (0: until the dedupe purge).",
)
@json_option
def tenants_update(tenant_id: str, as_json: bool, **changes: Any) -> None:
    """Change a tenant's time zone, quiet hours, consent policy, keywords, auto-replies,
    dispatch weight or privacy mode."""
    from app.models import Tenant

    with app_session() as (session, _settings):
        tenant = session.get(Tenant, tenant_id)
        if tenant is None:
            raise click.BadParameter("no such tenant", param_hint="--tenant")
        if changes["tz"] is not None:
            tenant.timezone = changes["tz"]
        if changes["quiet_hours"] is not None:
            tenant.quiet_hours = changes["quiet_hours"] or None
        flags = (
            "allow_quiet_hours_override",
            "urgent_bypasses_quiet_hours",
            "consent_policy",
            "dispatch_weight",
        )
        for flag in flags:
            if changes[flag] is not None:
                setattr(tenant, flag, changes[flag])
        if changes["body_retention"] is not None:
            tenant.body_retention = changes["body_retention"]
        for limit in ("body_retention_days", "payload_retention_hours"):
            if changes[limit] is not None:
                setattr(tenant, limit, changes[limit] or None)
        keywords = dict(tenant.keywords or {})
        replies = dict(tenant.auto_replies or {})
        for kind in ("opt_out", "opt_in", "help"):
            if changes[f"{kind}_keywords"] is not None:
                keywords[kind] = changes[f"{kind}_keywords"]
            if changes[f"{kind}_reply"] is not None:
                replies[kind] = changes[f"{kind}_reply"]
        tenant.keywords = keywords
        tenant.auto_replies = replies
        view = _tenant_view(tenant)
        audit.append(
            session,
            tenant_id=tenant_id,
            actor="cli",
            action="tenant.update",
            target="tenant",
            ids=[tenant_id],
            change={k: v for k, v in changes.items() if v is not None},
        )
    emit(as_json, view, json.dumps(view, indent=2))


def _tenant_view(tenant: Any) -> dict[str, Any]:
    from app.messaging.compliance.keywords import DEFAULT_KEYWORDS, keyword_lists, reply_text

    lists = keyword_lists(tenant.keywords)
    return {
        "id": tenant.id,
        "timezone": tenant.timezone,
        "quiet_hours": tenant.quiet_hours,
        "allow_quiet_hours_override": tenant.allow_quiet_hours_override,
        "urgent_bypasses_quiet_hours": tenant.urgent_bypasses_quiet_hours,
        "consent_policy": tenant.consent_policy,
        "dispatch_weight": tenant.dispatch_weight,
        "body_retention": tenant.body_retention,
        "body_retention_days": tenant.body_retention_days,
        "payload_retention_hours": tenant.payload_retention_hours,
        "keywords": {k.value: sorted(lists[k]) for k in DEFAULT_KEYWORDS},
        "auto_replies": {k.value: reply_text(k, tenant.auto_replies) for k in DEFAULT_KEYWORDS},
    }
