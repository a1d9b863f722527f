"""The operator's commands: schema, keys, accounts, stuck work and redrive, demo, Flower."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click
from cryptography.fernet import Fernet

from app.cli.base import app_session, emit, json_option, main
from app.cli.crm import redrive_syncs
from app.providers import PROVIDERS
from app.security import audit
from config import ConfigError


@main.group()
def db() -> None:
    """Schema migrations."""


@db.command("upgrade")
@json_option
def db_upgrade(as_json: bool) -> None:
    """Migrate the schema to the latest revision (the release phase)."""
    from alembic import command
    from alembic.config import Config

    from config import load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    cfg = Config(_alembic_ini())
    cfg.attributes["url"] = settings.database_url
    command.upgrade(cfg, "head")
    emit(as_json, {"status": "ok"}, "schema is at head")


def _alembic_ini() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[2] / "alembic.ini")


@main.group()
def keys() -> None:
    """API keys and encryption keys."""


@keys.command("create")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--scopes", default="messages:write,messages:read", show_default=True)
@json_option
def keys_create(tenant_id: str, scopes: str, as_json: bool) -> None:
    """Create an API key; it is shown only this once."""
    from app.models import ApiKey, Tenant
    from app.security.api_keys import generate_api_key, hash_api_key, parse_scopes

    try:
        scope_list = list(parse_scopes(scopes))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scopes") from None
    key = generate_api_key()
    with app_session() as (session, _settings):
        if session.get(Tenant, tenant_id) is None:
            raise click.ClickException(f"no tenant {tenant_id}")
        row = ApiKey(tenant_id=tenant_id, key_hash=hash_api_key(key), scopes=scope_list)
        session.add(row)
        session.flush()
        key_id = row.id
        audit.append(
            session,
            tenant_id=tenant_id,
            actor="cli",
            action="api_key.create",
            target="api_key",
            ids=[key_id],
            change={"scopes": scope_list},
        )
    emit(as_json, {"id": key_id, "key": key}, f"key {key_id}: {key}\n(shown only this once)")


@keys.command("revoke")
@click.argument("key_id")
@json_option
def keys_revoke(key_id: str, as_json: bool) -> None:
    """Revoke an API key; every process stops accepting it within AUTH_CACHE_SECONDS."""
    from app.domain.clock import utcnow
    from app.models import ApiKey

    with app_session() as (session, settings):
        row = session.get(ApiKey, key_id)
        if row is None:
            raise click.ClickException(f"no API key {key_id}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            audit.append(
                session,
                tenant_id=row.tenant_id,
                actor="cli",
                action="api_key.revoke",
                target="api_key",
                ids=[key_id],
            )
        revoked_at = row.revoked_at.isoformat()
        wait = settings.auth_cache_seconds
    emit(
        as_json,
        {"id": key_id, "revoked_at": revoked_at, "effective_within_seconds": wait},
        f"key {key_id} revoked; refused everywhere within {wait} s",
    )


@keys.command("generate")
@json_option
def keys_generate(as_json: bool) -> None:
    """Print a new Fernet key for ENCRYPTION_KEYS or BLIND_INDEX_KEY."""
    key = Fernet.generate_key().decode()
    emit(as_json, {"key": key}, key)


@main.group()
def accounts() -> None:
    """Channel accounts (a provider account and sender)."""


@accounts.command("create")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--provider", type=click.Choice(sorted(PROVIDERS)), required=True)
@click.option("--channels", default="sms", show_default=True)
@click.option("--sender", required=True, help="The sender address (E.164 number or id).")
@click.option("--account-sid", default=None, help="twilio: the Account SID (AC...).")
@click.option("--auth-token", default=None, help="twilio: the Auth Token (stored encrypted).")
@click.option("--messaging-service-sid", default=None, help="twilio: send through MG... instead.")
@click.option("--base-url", default=None, help="The provider's API (twilio: default Twilio's).")
@click.option("--webhook-secret", default=None, help="whsec_... (generated for sandbox).")
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="SMS segments a second this account may send (a token bucket).",
)
@click.option("--burst", type=click.FloatRange(min=1), default=None, help="Bucket size (segments).")
@json_option
def accounts_create(
    tenant_id: str,
    provider: str,
    channels: str,
    sender: str,
    account_sid: str | None,
    auth_token: str | None,
    messaging_service_sid: str | None,
    base_url: str | None,
    webhook_secret: str | None,
    rate_limit: float | None,
    burst: float | None,
    as_json: bool,
) -> None:
    """Create a channel account and print the webhook URL to give the provider."""
    from app.domain.channels import CHANNELS
    from app.models import ChannelAccount, Tenant, WebhookSecret
    from app.providers import webhook_url
    from app.providers.base import AccountOptions

    channel_list = [c.strip() for c in channels.split(",") if c.strip()]
    if not channel_list or any(c not in CHANNELS for c in channel_list):
        raise click.BadParameter(f"choose from {', '.join(CHANNELS)}", param_hint="--channels")
    adapter = PROVIDERS.get(provider)
    if adapter is None:
        raise click.ClickException(f"the {provider} provider is not available in this version")
    try:
        setup = adapter.setup_account(
            AccountOptions(
                sender=sender,
                account_sid=account_sid,
                auth_token=auth_token,
                base_url=base_url,
                messaging_service_sid=messaging_service_sid,
                webhook_secret=webhook_secret,
            )
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with app_session() as (session, settings):
        if session.get(Tenant, tenant_id) is None:
            raise click.ClickException(f"no tenant {tenant_id}")
        account = ChannelAccount(
            tenant_id=tenant_id,
            provider=provider,
            channels=channel_list,
            sender=sender,
            credentials=json.dumps(setup.credentials) if setup.credentials else None,
            rate_limit_per_second=rate_limit,
            rate_limit_burst=burst,
        )
        session.add(account)
        session.flush()
        if setup.webhook_secret is not None:
            session.add(
                WebhookSecret(
                    tenant_id=tenant_id, account_id=account.id, secret=setup.webhook_secret
                )
            )
        account_id = account.id
        url = webhook_url(settings.public_base_url, provider, account_id)
        audit.append(
            session,
            tenant_id=tenant_id,
            actor="cli",
            action="account.create",
            target="channel_account",
            ids=[account_id],
            change={
                "provider": provider,
                "channels": list(channel_list),
                "webhook_secret": setup.webhook_secret is not None,
                "rate_limit_per_second": rate_limit,
            },
        )
    emit(
        as_json, {"id": account_id, "webhook_url": url}, f"account {account_id}\nwebhook URL: {url}"
    )


def _duration(_ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    from app.messaging.recovery.stuck import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


@main.command("stuck")
@click.option(
    "--older-than",
    callback=_duration,
    default=None,
    help="One age for every state (e.g. 10m); default: each state's SLA (STUCK_SLAS).",
)
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's messages.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@json_option
def stuck(older_than: timedelta | None, tenant_id: str | None, limit: int, as_json: bool) -> None:
    """Messages stuck in a non-final state past its SLA: ids, states and ages, no PII."""
    from app.crm.syncs import stuck_syncs, waiting_connections
    from app.messaging.recovery.stuck import Window, stuck_report

    with app_session() as (session, settings):
        report = stuck_report(
            session, Window(settings.stuck_sla, older_than), tenant_id=tenant_id, limit=limit
        )
        report["syncs"] = stuck_syncs(
            session,
            timedelta(seconds=settings.crm_sync_sla_seconds),
            older_than=older_than,
            tenant_id=tenant_id,
            limit=limit,
        )
        waiting = waiting_connections(session, tenant_id)
    if as_json:
        click.echo(json.dumps(report))
        return
    total = sum(n for lanes in report["counts"].values() for n in lanes.values())
    click.echo(f"{total} stuck message(s)")
    for status, lanes in sorted(report["counts"].items()):
        click.echo(f"  {status:<11} " + ", ".join(f"{lane}: {n}" for lane, n in lanes.items()))
    if report["inbox"]["parked_receipts"]:
        click.echo(f"  parked receipts (provider id unknown): {report['inbox']['parked_receipts']}")
    for m in report["messages"]:
        last = m["last_event"] or {}
        click.echo(
            f"{m['id']}  {m['tenant_id']}  {m['status']:<10} {m['age_seconds']:>9.0f}s  "
            f"{m['reason']}  (last: {last.get('kind')} {last.get('to')} {last.get('reason') or ''})"
        )
    click.echo(f"{len(report['syncs'])} CRM sync(s) stuck or dead-lettered")
    for sy in report["syncs"]:
        click.echo(
            f"sync {sy['id']}  {sy['tenant_id']}  {sy['action']:<11} {sy['status']:<8} "
            f"{sy['age_seconds']:>9.0f}s  attempts {sy['attempts']}  {sy['reason']}"
        )
    for c in waiting:
        click.echo(
            f"CRM connection {c['connection_id']}  {c['tenant_id']}  {c['kind']} waits on its "
            f"budget ({c['reason']}) until {c['waiting_until']}"
        )


@main.command("redrive")
@click.option("--id", "ids", multiple=True, help="A message id, or with --syncs a sync id.")
@click.option("--status", default=None, help="Every message in this state...")
@click.option("--older-than", callback=_duration, default=None, help="...for longer than this.")
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's messages.")
@click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing.")
@click.option("--syncs", is_flag=True, help="Re-drive dead-lettered CRM syncs instead.")
@json_option
def redrive_command(
    ids: tuple[str, ...],
    status: str | None,
    older_than: timedelta | None,
    tenant_id: str | None,
    dry_run: bool,
    syncs: bool,
    as_json: bool,
) -> None:
    """Re-drive stuck messages safely: a possibly-sent one is checked with its provider first.

    With --syncs: put dead-lettered CRM syncs (--id N..., or all, or a --tenant's) back in line.
    """
    from app.domain.statuses import Status
    from app.messaging.recovery.reconcile import redrive, select_ids
    from app.messaging.recovery.stuck import WHY

    if syncs:
        redrive_syncs(ids, tenant_id, dry_run, as_json)
        return

    if bool(ids) == bool(status):
        raise click.UsageError("give --id ID..., or --status S --older-than D")
    if status is not None and (status not in WHY or older_than is None):
        raise click.UsageError(f"--status takes one of {', '.join(WHY)}, with --older-than")
    with app_session() as (session, _settings):
        chosen = list(ids)
        if status is not None and older_than is not None:
            chosen = select_ids(
                session, status=Status(status).value, older_than=older_than, tenant_id=tenant_id
            )
        db = session.info["db"]
    actions = [
        a.as_dict() for a in redrive(db, chosen, dry_run=dry_run, actor="cli", tenant_id=tenant_id)
    ]
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "messages": actions}))
        return
    for a in actions:
        click.echo(f"{a['id']}  {a['status']:<10} -> {a['action']}  {a['detail']}")
    click.echo(f"{len(actions)} message(s){' (dry run: nothing changed)' if dry_run else ''}")


@main.command("schema")
def schema() -> None:
    """Print the canonical event's JSON Schema (schemaVersion 1)."""
    from app.providers.canonical import canonical_event_schema

    click.echo(canonical_event_schema(), nl=False)


DEMO_RECIPIENTS = {
    "+12025550100": "accepted, sent, delivered",
    "+12025550001": "permanent error: failed",
    "+12025550002": "accepted, then undelivered",
    "+12025550003": "throttled once, then delivered",
    "+12025550004": "two retryable errors, then delivered",
}
FINAL = {"delivered", "read", "failed", "undelivered", "expired", "canceled"}


@main.command("demo")
@click.option(
    "--base-url", default=None, help="The running web process (default: PUBLIC_BASE_URL)."
)
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for outcomes.")
@json_option
def demo(base_url: str | None, timeout: float, as_json: bool) -> None:
    """Send a few sandbox messages through the running pipeline and show their timelines."""
    import requests

    from app.models import ApiKey, ChannelAccount, Tenant, WebhookSecret
    from app.providers.signing import generate_secret
    from app.security.api_keys import generate_api_key, hash_api_key

    key = generate_api_key()
    with app_session() as (session, settings):
        tenant = Tenant(name="Demo tenant")
        session.add(tenant)
        session.flush()
        account = ChannelAccount(
            tenant_id=tenant.id, provider="sandbox", channels=["sms", "mms"], sender="+12025550199"
        )
        session.add(account)
        session.flush()
        session.add(
            WebhookSecret(tenant_id=tenant.id, account_id=account.id, secret=generate_secret())
        )
        session.add(
            ApiKey(
                tenant_id=tenant.id,
                key_hash=hash_api_key(key),
                scopes=["messages:write", "messages:read"],
            )
        )
        audit.append(
            session,
            tenant_id=tenant.id,
            actor="cli",
            action="tenant.create",
            target="tenant",
            ids=[tenant.id, account.id],
            change={"demo": True, "provider": "sandbox"},
        )
        url = (base_url or settings.public_base_url).rstrip("/")
    headers = {"Authorization": f"Bearer {key}"}
    say: Callable[[str], None] = (lambda _m: None) if as_json else click.echo
    ids: dict[str, str] = {}
    try:
        for phone, expect in DEMO_RECIPIENTS.items():
            r = requests.post(
                f"{url}/v1/messages",
                json={"to": phone, "body": f"Demo: {expect}"},
                headers={**headers, "Idempotency-Key": f"demo-{tenant.id}-{phone}"},
                timeout=10,
            )
            if r.status_code not in (200, 202):
                raise click.ClickException(f"POST /v1/messages answered {r.status_code}: {r.text}")
            ids[phone] = r.json()["id"]
            say(f"sent {ids[phone]} to {phone} (expect: {expect})")
    except requests.ConnectionError:
        raise click.ClickException(f"cannot reach {url}: is the pipeline running?") from None
    deadline = time.monotonic() + timeout
    results: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(results) < len(ids):
        for phone, message_id in ids.items():
            if phone in results:
                continue
            body = requests.get(
                f"{url}/v1/messages/{message_id}", headers=headers, timeout=10
            ).json()
            if body["status"] in FINAL:
                results[phone] = body
        time.sleep(0.5)
    for phone, message_id in ids.items():
        body = (
            results.get(phone)
            or requests.get(f"{url}/v1/messages/{message_id}", headers=headers, timeout=10).json()
        )
        results[phone] = body
        say(f"\n{message_id} to {phone}: {body['status']}")
        for event in body["events"]:
            say(
                f"  {event['at']}  {event['from'] or '-':>10} -> {event['to']:<11} "
                f"{event['outcome']:<9} {event['source']:<16} {event['reason'] or ''}"
            )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "tenant_id": tenant.id,
                    "api_key": key,
                    "messages": {
                        p: {"id": b["id"], "status": b["status"]} for p, b in results.items()
                    },
                }
            )
        )
    if any(b["status"] not in FINAL for b in results.values()):
        sys.exit(1)


@main.command("flower", context_settings={"ignore_unknown_options": True})
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
def flower(extra: tuple[str, ...]) -> None:
    """Start Flower, refusing to run without FLOWER_BASIC_AUTH (user:password)."""
    import os

    from config import load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    if not settings.flower_basic_auth:
        raise click.ClickException("set FLOWER_BASIC_AUTH=user:password; Flower shows task data")
    if settings.broker_url.startswith("sqla+"):
        click.echo(
            "note: the embedded broker carries no broadcasts, so Flower will see no workers; "
            "set REDIS_URL (or BROKER_URL=amqp://...) for a useful Flower",
            err=True,
        )
    # Flower reads FLOWER_BASIC_AUTH from the environment itself, which keeps the
    # password off the command line (and out of ps).
    argv = ["celery", "-A", "workers.main", "flower", f"--port={settings.flower_port}", *extra]
    os.execvp("celery", argv)  # noqa: S606  (replace this process; no shell involved)
