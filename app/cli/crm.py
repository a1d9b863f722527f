"""``switchboard crm``: CRM connections; and re-driving dead-lettered CRM syncs."""

from __future__ import annotations

import json

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


@main.group()
def crm() -> None:
    """CRM connections."""


@crm.command("connect")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--kind", required=True, type=click.Choice(["hubspot", "salesforce", "webhook"]))
@click.option("--token", default=None, help="hubspot, salesforce: the access token.")
@click.option("--base-url", default=None, help="hubspot: the API (default api.hubapi.com).")
@click.option("--instance-url", default=None, help="salesforce: https://yours.my.salesforce.com")
@click.option("--url", default=None, help="webhook: where to POST the signed events.")
@click.option("--secret", default=None, help="webhook: whsec_... (Standard Webhooks).")
@json_option
def crm_connect(tenant_id: str, kind: str, as_json: bool, **given: str | None) -> None:
    """Connect a tenant to a CRM (credentials are stored encrypted)."""
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
