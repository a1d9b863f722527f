"""The console's Campaigns pages: each campaign's progress, what holds it and why recipients
were skipped; a draft's row errors; and (operators) pause, resume and cancel."""

from __future__ import annotations

from typing import Any

from flask import abort, g, redirect, render_template, request, url_for
from sqlalchemy import select

from app.console.views import _db, _tenant_arg, _tenants, bp, require
from app.domain.ids import is_id
from app.messaging.campaigns import progress
from app.messaging.campaigns.control import NotAllowed, control
from app.models import Campaign
from app.security.console_users import can, record

ACTIONS = ("pause", "resume", "cancel", "start")


def _bar(found: dict[str, Any]) -> dict[str, int]:
    """The share (in percent) of recipients sent, waiting, skipped and not yet made."""
    total = max(1, found["recipients"]["total"])
    skipped = found["recipients"]["skipped"]
    pending = found["recipients"]["pending"]
    waiting = found["left"] - pending
    sent = total - skipped - pending - waiting
    return {
        "sent": round(100 * max(0, sent) / total),
        "waiting": round(100 * max(0, waiting) / total),
        "skipped": round(100 * skipped / total),
        "pending": round(100 * pending / total),
    }


@bp.get("/campaigns")
def campaigns_page() -> Any:
    tenant = _tenant_arg()
    status = request.args.get("status") or None
    with _db().session() as s:
        query = select(Campaign)
        if tenant is not None:
            query = query.where(Campaign.tenant_id == tenant)
        if status is not None:
            query = query.where(Campaign.status == status)
        rows = []
        for campaign in s.scalars(query.order_by(Campaign.id.desc()).limit(100)):
            found = progress.view(campaign, progress.counts(s, campaign))
            found["tenant_id"] = campaign.tenant_id
            found["bar"] = _bar(found)
            rows.append(found)
    return render_template(
        "console/campaigns.html",
        rows=rows,
        tenants=_tenants(),
        tenant=tenant,
        status=status,
    )


@bp.get("/campaigns/<campaign_id>")
def campaign_page(campaign_id: str) -> Any:
    if not is_id(campaign_id, "cmp"):
        abort(404, description="no such campaign")
    with _db().session() as s:
        campaign = s.get(Campaign, campaign_id)
        if campaign is None:
            abort(404, description="no such campaign")
        found = progress.view(campaign, progress.counts(s, campaign))
        found["tenant_id"] = campaign.tenant_id
        found["bar"] = _bar(found)
        found["row_errors"] = list(campaign.row_errors or [])
    return render_template(
        "console/campaign.html",
        c=found,
        can_act=can(g.console_user.role, "operator"),
        actions=ACTIONS,
    )


@bp.post("/campaigns/<campaign_id>/<action>")
def campaign_act(campaign_id: str, action: str) -> Any:
    require("operator")
    if action not in ACTIONS or not is_id(campaign_id, "cmp"):
        abort(404, description="no such campaign or action")
    username = g.console_user.username
    with _db().session() as s:
        campaign = s.get(Campaign, campaign_id, with_for_update=True)
        if campaign is None:
            abort(404, description="no such campaign")
        try:
            done = control(s, campaign, action, f"console:{username}")
        except NotAllowed as exc:
            abort(409, description=str(exc))
        record(
            s,
            username,
            f"campaign.{action}",
            "campaign",
            [campaign_id],
            {"messages": done.messages},
        )
        s.commit()
    return redirect(url_for("console.campaign_page", campaign_id=campaign_id))
