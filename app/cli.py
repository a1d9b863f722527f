"""The ``switchboard`` console script (contract): every command takes --json."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import click
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from app.providers import PROVIDERS
from config import ConfigError


@contextmanager
def _session() -> Iterator[tuple[Session, Any]]:
    from app import create_app

    try:
        flask_app = create_app()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    db = flask_app.extensions["switchboard.db"]
    with flask_app.app_context(), db.session() as session:
        session.info["db"] = db
        yield session, flask_app.extensions["switchboard.settings"]


def _emit(as_json: bool, data: dict[str, Any], human: str) -> None:
    click.echo(json.dumps(data) if as_json else human)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.group()
def main() -> None:
    """Switchboard: the messaging pipeline between business systems and providers."""


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
    _emit(as_json, {"status": "ok"}, "schema is at head")


def _alembic_ini() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parent.parent / "alembic.ini")


@main.group()
def tenants() -> None:
    """Tenants."""


def _quiet_hours(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from app.messaging.quiet_hours import validate

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
    from app.messaging.keywords import validate_words

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
    as_json: bool,
) -> None:
    """Create a tenant."""
    from app.models import Tenant

    with _session() as (session, _settings):
        tenant = Tenant(
            name=name,
            timezone=tz,
            quiet_hours=quiet_hours or None,
            allow_quiet_hours_override=allow_quiet_hours_override,
            urgent_bypasses_quiet_hours=urgent_bypasses_quiet_hours,
            consent_policy=consent_policy,
            api_rate_per_second=api_rate_limit,
            api_rate_burst=api_burst,
            keywords={},
            auto_replies={},
        )
        session.add(tenant)
        session.flush()
        tenant_id = tenant.id
    _emit(as_json, {"id": tenant_id}, f"tenant {tenant_id}")


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
@json_option
def tenants_update(tenant_id: str, as_json: bool, **changes: Any) -> None:
    """Change a tenant's time zone, quiet hours, consent policy, keywords or auto-replies."""
    from app.models import Tenant

    with _session() as (session, _settings):
        tenant = session.get(Tenant, tenant_id)
        if tenant is None:
            raise click.BadParameter("no such tenant", param_hint="--tenant")
        if changes["tz"] is not None:
            tenant.timezone = changes["tz"]
        if changes["quiet_hours"] is not None:
            tenant.quiet_hours = changes["quiet_hours"] or None
        for flag in ("allow_quiet_hours_override", "urgent_bypasses_quiet_hours", "consent_policy"):
            if changes[flag] is not None:
                setattr(tenant, flag, changes[flag])
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
    _emit(as_json, view, json.dumps(view, indent=2))


def _tenant_view(tenant: Any) -> dict[str, Any]:
    from app.messaging.keywords import DEFAULT_KEYWORDS, keyword_lists, reply_text

    lists = keyword_lists(tenant.keywords)
    return {
        "id": tenant.id,
        "timezone": tenant.timezone,
        "quiet_hours": tenant.quiet_hours,
        "allow_quiet_hours_override": tenant.allow_quiet_hours_override,
        "urgent_bypasses_quiet_hours": tenant.urgent_bypasses_quiet_hours,
        "consent_policy": tenant.consent_policy,
        "keywords": {k.value: sorted(lists[k]) for k in DEFAULT_KEYWORDS},
        "auto_replies": {k.value: reply_text(k, tenant.auto_replies) for k in DEFAULT_KEYWORDS},
    }


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
    with _session() as (session, _settings):
        if session.get(Tenant, tenant_id) is None:
            raise click.ClickException(f"no tenant {tenant_id}")
        row = ApiKey(tenant_id=tenant_id, key_hash=hash_api_key(key), scopes=scope_list)
        session.add(row)
        session.flush()
        key_id = row.id
    _emit(as_json, {"id": key_id, "key": key}, f"key {key_id}: {key}\n(shown only this once)")


@keys.command("generate")
@json_option
def keys_generate(as_json: bool) -> None:
    """Print a new Fernet key for ENCRYPTION_KEYS or BLIND_INDEX_KEY."""
    key = Fernet.generate_key().decode()
    _emit(as_json, {"key": key}, key)


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
    from app.messaging.channels import CHANNELS
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
    with _session() as (session, settings):
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
    _emit(
        as_json, {"id": account_id, "webhook_url": url}, f"account {account_id}\nwebhook URL: {url}"
    )


def _duration(_ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    from app.messaging.stuck import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


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
    from app.messaging.rules import InvalidRule, RuleSpec, add_rule, rule_view
    from app.models import Tenant

    spec = RuleSpec(
        name, match_, action, tuple(v for v in values.split(",") if v.strip()), target, final
    )
    with _session() as (session, _settings):
        if session.get(Tenant, tenant_id) is None:
            raise click.BadParameter("no such tenant", param_hint="--tenant")
        try:
            view = rule_view(add_rule(session, tenant_id, spec))
        except InvalidRule as exc:
            raise click.BadParameter(str(exc), param_hint=f"--{exc.field}") from None
    _emit(as_json, view, f"rule {view['id']} at position {view['position']}")


@rules.command("list")
@click.option("--tenant", "tenant_id", required=True)
@json_option
def rules_list(tenant_id: str, as_json: bool) -> None:
    """The tenant's rules, in evaluation order."""
    from app.messaging.rules import list_rules, rule_view

    with _session() as (session, _settings):
        views = [rule_view(r) for r in list_rules(session, tenant_id)]
    human = "\n".join(
        f"{v['position']:>3} {v['id']} {v['name']}: {v['match']} {v['values']} -> "
        f"{v['action']} {v['target'] or ''}"
        for v in views
    )
    _emit(as_json, {"rules": views}, human or "no rules (the default routing applies)")


@rules.command("remove")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--id", "rule_id", required=True)
@json_option
def rules_remove(tenant_id: str, rule_id: str, as_json: bool) -> None:
    """Remove one rule."""
    from app.models import RoutingRule

    with _session() as (session, _settings):
        rule = session.get(RoutingRule, rule_id)
        if rule is None or rule.tenant_id != tenant_id:
            raise click.BadParameter("no such rule for this tenant", param_hint="--id")
        session.delete(rule)
    _emit(as_json, {"id": rule_id, "removed": True}, f"removed {rule_id}")


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
    from app.crm.syncs import stuck_syncs
    from app.messaging.stuck import Window, stuck_report

    with _session() as (session, settings):
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
    from app.messaging.reconcile import redrive, select_ids
    from app.messaging.states import Status
    from app.messaging.stuck import WHY

    if syncs:
        _redrive_syncs(ids, tenant_id, dry_run, as_json)
        return

    if bool(ids) == bool(status):
        raise click.UsageError("give --id ID..., or --status S --older-than D")
    if status is not None and (status not in WHY or older_than is None):
        raise click.UsageError(f"--status takes one of {', '.join(WHY)}, with --older-than")
    with _session() as (session, _settings):
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


def _redrive_syncs(
    ids: tuple[str, ...], tenant_id: str | None, dry_run: bool, as_json: bool
) -> None:
    from app.crm.syncs import redrive_dead

    if not all(i.isdigit() for i in ids):
        raise click.BadParameter("sync ids are numbers", param_hint="--id")
    with _session() as (session, _settings):
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

    with _session() as (session, _settings):
        if session.get(Tenant, tenant_id) is None:
            raise click.BadParameter("no such tenant", param_hint="--tenant")
        try:
            connection_id = connect(session, tenant_id, kind, given).id
        except InvalidConnection as exc:
            raise click.BadParameter(
                str(exc), param_hint=f"--{exc.field.replace('_', '-')}"
            ) from None
    _emit(as_json, {"id": connection_id}, f"CRM connection {connection_id}")


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
    with _session() as (session, settings):
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
