"""``switchboard campaigns ...``: send a CSV to a list of recipients, and follow or steer it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import IO, Any

import click

from app.cli.base import app_session, emit, json_option, main


@main.group()
def campaigns() -> None:
    """Campaigns: one CSV of recipients, each a message, tracked, paused and counted."""


tenant_option = click.option("--tenant", "tenant_id", required=True, help="The tenant's id.")


class _Counted:
    """A file read through a progress bar: each chunk read moves it."""

    def __init__(self, handle: IO[bytes], bar: Any) -> None:
        self._handle = handle
        self._bar = bar

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._bar.update(len(chunk))
        return chunk


def _tenant(session: Any, tenant_id: str) -> Any:
    from app.models import Tenant

    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise click.ClickException(f"no tenant {tenant_id}")
    return tenant


def _line(found: dict[str, Any]) -> str:
    recipients = found.get("recipients") or {}
    messages = (found.get("messages") or {}).get("by_status", {})
    done = ", ".join(f"{k} {v}" for k, v in messages.items()) or "no messages yet"
    return (
        f"{found['id']}  {found['status']:<9}  {recipients.get('total', '?')} recipients  ({done})"
    )


@campaigns.command("send")
@tenant_option
@click.option("--csv", "path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--template", default=None, help="A template's name or id (its variables: columns).")
@click.option("--body", default=None, help="Or one text for every recipient.")
@click.option("--name", default=None)
@click.option("--channels", default="sms", help="Comma-separated, in fallback order.")
@click.option("--priority", default="bulk", type=click.Choice(["urgent", "normal", "bulk"]))
@click.option("--send-at", default=None, help="RFC 3339, with a zone.")
@click.option("--rate", "rate_per_second", type=float, default=None, help="Messages a second.")
@click.option("--draft", is_flag=True, help="Check and store the rows; send nothing yet.")
@click.option("--key", "idempotency_key", default=None, help="Run it again with the same key.")
@json_option
def campaigns_send(
    tenant_id: str,
    path: str,
    template: str | None,
    body: str | None,
    name: str | None,
    channels: str,
    priority: str,
    send_at: str | None,
    rate_per_second: float | None,
    draft: bool,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Send a campaign from a CSV (a phone column, one column per template variable)."""
    from pydantic import ValidationError

    from app.content.store import TemplateProblem
    from app.messaging.campaigns import progress
    from app.messaging.campaigns.rows import FileProblem, csv_rows
    from app.messaging.campaigns.spec import CampaignSpec
    from app.messaging.campaigns.store import Bound, CampaignConflict, open_campaign
    from app.messaging.campaigns.submit import expansions_for, finish, upload
    from app.messaging.intake.routing import NoRoute

    fields: dict[str, Any] = {
        "template": template,
        "body": body,
        "name": name,
        "channels": [c.strip() for c in channels.split(",") if c.strip()],
        "priority": priority,
        "send_at": send_at,
        "rate_per_second": rate_per_second,
        "start": not draft,
    }
    try:
        spec = CampaignSpec.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'campaign'}: {e['msg']}" for e in exc.errors()
        )
        raise click.ClickException(problems) from None
    with app_session() as (session, settings):
        db = session.info["db"]
        tenant = _tenant(session, tenant_id)
        try:
            campaign, created = open_campaign(session, tenant, spec, idempotency_key)
        except (CampaignConflict, NoRoute) as exc:
            raise click.ClickException(f"refused: {exc}") from None
        except TemplateProblem as exc:
            raise click.ClickException(
                "; ".join(f"{p.field}: {p.message}" for p in exc.problems)
            ) from None
        campaign_id = campaign.id
        session.commit()
        size = os.path.getsize(path)
        with (
            open(path, "rb") as handle,
            click.progressbar(
                length=size, label="Checking and storing rows", hidden=as_json
            ) as bar,
        ):
            counted = _Counted(handle, bar)

            def source(bound: Bound, checked: Any) -> Iterator[Any]:
                return csv_rows(counted, bound.check, checked, bound.convert)  # type: ignore[arg-type]

            try:
                uploaded, checked = upload(
                    db,
                    tenant,
                    campaign_id,
                    source,
                    limit=settings.campaign_max_recipients,
                    created=created,
                    replay=not created,
                )
            except FileProblem as exc:
                where = f" (row {exc.row})" if exc.row else ""
                raise click.ClickException(f"{exc.message}{where}: nothing was stored") from None
        started = finish(
            db,
            tenant.id,
            campaign_id,
            uploaded,
            checked,
            created=created,
            start=spec.start,
            actor="cli",
            expansions=expansions_for(settings, uploaded.added),
        )
        session.expire_all()
        fresh = session.get(type(campaign), campaign_id)
        assert fresh is not None
        found = progress.view(fresh, progress.counts(session, fresh))
        found["upload"] = uploaded.as_dict(checked)
    state = "started" if started else "kept as a draft"
    errors = "\n".join(f"  row {e.row}, {e.field}: {e.message}" for e in checked.errors[:20])
    emit(
        as_json,
        found,
        f"{campaign_id}: {uploaded.added} recipients stored, {state}; "
        f"{uploaded.duplicates} duplicates, {checked.error_count} rows with errors"
        + (f"\n{errors}" if errors else ""),
    )
    if checked.error_count and not draft:
        raise SystemExit(1)


def _find(session: Any, tenant_id: str, campaign_id: str) -> Any:
    from app.models import Campaign

    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.tenant_id != tenant_id:
        raise click.ClickException(f"no campaign {campaign_id} in tenant {tenant_id}")
    return campaign


@campaigns.command("list")
@tenant_option
@click.option("--status", default=None)
@json_option
def campaigns_list(tenant_id: str, status: str | None, as_json: bool) -> None:
    """The tenant's campaigns, newest first."""
    from sqlalchemy import select

    from app.messaging.campaigns import progress
    from app.models import Campaign

    with app_session() as (session, _):
        query = select(Campaign).where(Campaign.tenant_id == tenant_id)
        if status:
            query = query.where(Campaign.status == status)
        found = [
            progress.view(c, progress.counts(session, c))
            for c in session.scalars(query.order_by(Campaign.id.desc()).limit(200))
        ]
    emit(as_json, {"campaigns": found}, "\n".join(_line(f) for f in found) or "no campaigns")


@campaigns.command("show")
@tenant_option
@click.argument("campaign_id")
@click.option("--watch", is_flag=True, help="A progress bar until every message is final.")
@json_option
def campaigns_show(tenant_id: str, campaign_id: str, watch: bool, as_json: bool) -> None:
    """One campaign's progress: counts, send rate, estimated finish, what holds it."""
    from app.messaging.campaigns import progress

    with app_session() as (session, _):
        campaign = _find(session, tenant_id, campaign_id)
        found = progress.view(campaign, progress.counts(session, campaign))
        if watch and not as_json:
            total = max(1, found["recipients"]["total"])
            with click.progressbar(length=total, label="Dispatched") as bar:
                shown = 0
                while True:
                    session.expire_all()
                    found = progress.view(campaign, progress.counts(session, campaign))
                    done = total - found["left"]
                    bar.update(max(0, done - shown))
                    shown = max(shown, done)
                    if found["left"] == 0 and found["status"] in ("completed", "canceled"):
                        break
                    time.sleep(1)
    held = ", ".join(f"{k} {v}" for k, v in found["held_by"].items()) or "nothing"
    emit(
        as_json,
        found,
        f"{_line(found)}\n  sent {found['sent_per_second']}/s, left {found['left']}, "
        f"finishes {found['estimated_finish'] or 'unknown'}; held by {held}",
    )


def _control(tenant_id: str, campaign_id: str, action: str, as_json: bool) -> None:
    from app.messaging.campaigns import progress
    from app.messaging.campaigns.control import NotAllowed, control

    with app_session() as (session, _):
        campaign = _find(session, tenant_id, campaign_id)
        session.refresh(campaign, with_for_update=True)
        try:
            done = control(session, campaign, action, "cli")
        except NotAllowed as exc:
            raise click.ClickException(str(exc)) from None
        session.commit()
        found = progress.view(campaign, progress.counts(session, campaign))
    emit(as_json, found, f"{_line(found)}  ({done.messages} messages {action}d)")


@campaigns.command("pause")
@tenant_option
@click.argument("campaign_id")
@json_option
def campaigns_pause(tenant_id: str, campaign_id: str, as_json: bool) -> None:
    """Pause: what is not yet dispatched waits."""
    _control(tenant_id, campaign_id, "pause", as_json)


@campaigns.command("resume")
@tenant_option
@click.argument("campaign_id")
@json_option
def campaigns_resume(tenant_id: str, campaign_id: str, as_json: bool) -> None:
    """Resume a paused campaign."""
    _control(tenant_id, campaign_id, "resume", as_json)


@campaigns.command("cancel")
@tenant_option
@click.argument("campaign_id")
@json_option
def campaigns_cancel(tenant_id: str, campaign_id: str, as_json: bool) -> None:
    """Cancel: what is not yet dispatched never is."""
    _control(tenant_id, campaign_id, "cancel", as_json)


@campaigns.command("start")
@tenant_option
@click.argument("campaign_id")
@json_option
def campaigns_start(tenant_id: str, campaign_id: str, as_json: bool) -> None:
    """Start a draft."""
    _control(tenant_id, campaign_id, "start", as_json)
