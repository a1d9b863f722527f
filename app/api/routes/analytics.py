"""GET /v1/analytics: delivery figures for the key's tenant, by hour or by day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from flask import Blueprint, g, request

from app.api.auth import require_scope
from app.api.errors import Problem
from app.api.session import request_session
from app.domain.channels import CHANNELS
from app.reports import analytics
from app.reports.analytics import GROUPS, Bucket

bp = Blueprint("analytics", __name__, url_prefix="/v1/analytics")


def _bad(field: str, message: str) -> Problem:
    return Problem(
        422,
        "validation_failed",
        "bad parameters",
        errors=[{"field": field, "code": "invalid", "message": message}],
    )


def parse_time(field: str, raw: str | None, default: datetime) -> datetime:
    if raw is None or raw == "":
        return default
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise _bad(field, "an ISO 8601 time, like 2026-11-28T00:00:00Z") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@bp.get("")
@require_scope("messages:read")
def figures() -> Any:
    now = datetime.now(UTC)
    bucket = request.args.get("bucket", "day")
    if bucket not in ("hour", "day"):
        raise _bad("bucket", "hour or day")
    default_span = timedelta(days=7) if bucket == "day" else timedelta(hours=24)
    end = parse_time("end", request.args.get("end"), now)
    start = parse_time("start", request.args.get("start"), end - default_span)
    by = tuple(part for part in request.args.get("by", "").split(",") if part)
    if any(part not in GROUPS for part in by) or len(set(by)) != len(by):
        raise _bad("by", f"a comma-separated subset of {', '.join(GROUPS)}")
    channel = request.args.get("channel")
    if channel is not None and channel not in CHANNELS:
        raise _bad("channel", f"one of {', '.join(CHANNELS)}")
    try:
        rows = analytics.query(
            request_session(),
            tenant_id=g.tenant_id,
            start=start,
            end=end,
            bucket=cast(Bucket, bucket),
            by=by,
            account_id=request.args.get("account_id"),
            channel=channel,
            campaign_id=request.args.get("campaign_id"),
        )
    except ValueError as exc:
        raise _bad("start", str(exc)) from None
    return {
        "tenant_id": g.tenant_id,
        "bucket": bucket,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "rows": rows,
    }
