"""``switchboard crm``: CRM connections; and re-driving dead-lettered CRM syncs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from app.cli.base import app_session, emit, json_option, main


def redrive_syncs(
    ids: tuple[str, ...], tenant_id: str | None, dry_run: bool, as_json: bool
) -> None:
    from app.crm.syncs import redrive_dead

    if not all(i.isdigit() for i in ids):
        raise click.BadParameter("sync ids are numbers", param_hint="--id")
    with app_session() as (session, _settings):
        done = redrive_dead(session, [int(i) for i in ids] or None, tenant_id, dry_run)
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "syncs": done}))
        return
    for d in done:
        click.echo(f"sync {d['id']}  {d['tenant_id']}  -> {d['action']}")
    click.echo(f"{len(done)} sync(s){' (dry run: nothing changed)' if dry_run else ''}")


def limit_options(command: Callable[..., None]) -> Callable[..., None]:
    options = [
        click.option(
            "--plan",
            default=None,
            type=click.Choice(["starter", "professional", "enterprise", "default"]),
            help="hubspot: the account's plan, which sets the default limits (starter).",
        ),
        click.option(
            "--calls", type=int, default=None, help="Calls per window (HubSpot: 100/190)."
        ),
        click.option("--window-seconds", type=float, default=None, help="The window (10 s)."),
        click.option("--searches-per-second", type=float, default=None, help="HubSpot: 5."),
        click.option("--daily", type=int, default=None, help="The CRM's daily allowance."),
        click.option(
            "--daily-share",
            type=float,
            default=None,
            help="The part of the daily allowance this connection may use (default 0.5).",
        ),
        click.option(
            "--batch-seconds",
            type=float,
            default=None,
            help="How long a short batch waits for more (1 s; Salesforce 2 s).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _print_budget(view: dict[str, Any]) -> str:
    limits = view["limits"]
    lines = [
        f"{view['connection_id']}  {view['kind']}  plan {view['plan']}",
        f"  calls {limits['calls'] or '-'} per {limits['window_seconds']:g} s, searches "
        f"{limits['searches_per_second'] or '-'}/s, daily {limits['daily'] or '-'} "
        f"(share {limits['daily_share']:g}), batches of {limits['batch_size']} "
        f"gathered over {limits['batch_seconds']:g} s",
    ]
    if view["waiting_until"]:
        lines.append(f"  waits on its budget ({view['reason']}) until {view['waiting_until']}")
    return "\n".join(lines)


@main.group()
def crm() -> None:
    """CRM connections and their API budgets."""


@crm.command("list")
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's connections.")
@json_option
def crm_list(tenant_id: str | None, as_json: bool) -> None:
    """Every active connection's budget, and whether it waits on it (and until when)."""
    from sqlalchemy import select

    from app.crm.syncs import budget_view
    from app.models import CrmConnection

    with app_session() as (session, _settings):
        query = select(CrmConnection).where(CrmConnection.active.is_(True))
        if tenant_id is not None:
            query = query.where(CrmConnection.tenant_id == tenant_id)
        views = [budget_view(c) for c in session.scalars(query.order_by(CrmConnection.created_at))]
    if as_json:
        click.echo(json.dumps({"connections": views}))
        return
    for view in views:
        click.echo(_print_budget(view))
    click.echo(f"{len(views)} connection(s)")


@crm.command("limits")
@click.option("--connection", "connection_id", required=True)
@limit_options
@json_option
def crm_limits(connection_id: str, as_json: bool, **given: Any) -> None:
    """Change a connection's plan or limits (what the CRM stated still caps them)."""
    from app.crm.connections import InvalidConnection, set_limits
    from app.crm.syncs import budget_view
    from app.models import CrmConnection

    with app_session() as (session, _settings):
        connection = session.get(CrmConnection, connection_id)
        if connection is None:
            raise click.BadParameter("no such connection", param_hint="--connection")
        try:
            set_limits(session, connection, given, actor="cli")
        except InvalidConnection as exc:
            raise click.BadParameter(
                str(exc), param_hint=f"--{exc.field.replace('_', '-')}"
            ) from None
        session.flush()
        view = budget_view(connection)
    emit(as_json, view, _print_budget(view))


@crm.command("connect")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--kind", required=True, type=click.Choice(["hubspot", "salesforce", "webhook"]))
@click.option("--token", default=None, help="hubspot, salesforce: the access token.")
@click.option("--base-url", default=None, help="hubspot: the API (default api.hubapi.com).")
@click.option("--instance-url", default=None, help="salesforce: https://yours.my.salesforce.com")
@click.option("--url", default=None, help="webhook: where to POST the signed events.")
@click.option("--secret", default=None, help="webhook: whsec_... (Standard Webhooks).")
@limit_options
@json_option
def crm_connect(tenant_id: str, kind: str, as_json: bool, **given: str | None) -> None:
    """Connect a tenant to a CRM (credentials are stored encrypted).

    Its API budget comes from the plan (HubSpot: starter, professional, enterprise) and
    can be lowered or raised per limit; the CRM's own answers correct it."""
    from app.crm.connections import InvalidConnection, connect
    from app.models import Tenant

    with app_session() as (session, _settings):
        if session.get(Tenant, tenant_id) is None:
            raise click.BadParameter("no such tenant", param_hint="--tenant")
        try:
            connection_id = connect(session, tenant_id, kind, given).id
        except InvalidConnection as exc:
            raise click.BadParameter(
                str(exc), param_hint=f"--{exc.field.replace('_', '-')}"
            ) from None
    emit(as_json, {"id": connection_id}, f"CRM connection {connection_id}")
