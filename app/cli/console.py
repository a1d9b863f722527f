"""``switchboard console-users ...`` and ``switchboard analytics ...``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import cast

import click
from sqlalchemy import select

from app.cli.base import app_session, emit, json_option, main
from app.models.access import ROLES


@main.group("console-users")
def console_users() -> None:
    """People who sign in to /console (viewer, operator, admin)."""


@console_users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (scripts)."
)
@json_option
def users_create(username: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Create a console user; the password is asked for (twice) unless --password-stdin."""
    from app.security.console_users import UserError, create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with app_session() as (session, _):
        try:
            user = create_user(session, username, password, role)
        except UserError as exc:
            raise click.ClickException(str(exc)) from None
        data = {"id": user.id, "username": user.username, "role": user.role}
    emit(as_json, data, f"created console user {username} ({role})")


def _set_disabled(username: str, disabled: bool, as_json: bool) -> None:
    from app.security.console_users import UserError, set_disabled

    with app_session() as (session, _):
        try:
            user = set_disabled(session, username, disabled)
        except UserError as exc:
            raise click.ClickException(str(exc)) from None
        data = {"id": user.id, "username": user.username, "disabled": disabled}
    emit(as_json, data, f"{'disabled' if disabled else 'enabled'} console user {username}")


@console_users.command("disable")
@click.argument("username")
@json_option
def users_disable(username: str, as_json: bool) -> None:
    """Disable a console user: every session of theirs ends at once."""
    _set_disabled(username, True, as_json)


@console_users.command("enable")
@click.argument("username")
@json_option
def users_enable(username: str, as_json: bool) -> None:
    """Enable a console user again (and clear a lockout)."""
    _set_disabled(username, False, as_json)


@console_users.command("set-password")
@click.argument("username")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (scripts)."
)
@json_option
def users_set_password(username: str, password_stdin: bool, as_json: bool) -> None:
    """Set a console user's password: every session of that user ends at once."""
    from app.security.console_users import UserError, set_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    with app_session() as (session, _):
        try:
            user = set_password(session, username, password, actor="cli")
        except UserError as exc:
            raise click.ClickException(str(exc)) from None
        data = {"id": user.id, "username": user.username, "sessions_ended": True}
    emit(as_json, data, f"new password for {username}; every session of theirs has ended")


@console_users.command("list")
@json_option
def users_list(as_json: bool) -> None:
    from app.models import ConsoleUser

    with app_session() as (session, _):
        users = [
            {
                "username": u.username,
                "role": u.role,
                "disabled": u.disabled_at is not None,
                "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            }
            for u in session.scalars(select(ConsoleUser).order_by(ConsoleUser.username))
        ]
    human = "\n".join(
        f"{u['username']:<24} {u['role']:<9} {'disabled' if u['disabled'] else ''}" for u in users
    )
    emit(as_json, {"users": users}, human or "no console users")


@main.group("analytics", invoke_without_command=True)
@click.option("--tenant", "tenant_id", default=None, help="One tenant (default: all).")
@click.option("--bucket", type=click.Choice(["hour", "day"]), default="day")
@click.option("--days", type=click.IntRange(1, 92), default=7, help="How far back.")
@click.option("--by", default="", help="Group by: a comma-separated subset of account,channel.")
@json_option
@click.pass_context
def analytics_cmd(
    ctx: click.Context, tenant_id: str | None, bucket: str, days: int, by: str, as_json: bool
) -> None:
    """Delivery figures (from the hourly rollup): sent, delivered, failed, undelivered,
    time to delivered, replies, opt-outs."""
    if ctx.invoked_subcommand is not None:
        return
    from app.reports import analytics

    groups = tuple(part for part in by.split(",") if part)
    if any(g not in analytics.GROUPS for g in groups):
        raise click.BadParameter(f"a subset of {', '.join(analytics.GROUPS)}", param_hint="--by")
    end = datetime.now(UTC)
    start = analytics.hour_of(end - timedelta(days=days))
    with app_session() as (session, _):
        rows = analytics.query(
            session,
            tenant_id=tenant_id,
            start=start,
            end=end,
            bucket=cast(analytics.Bucket, bucket),
            by=groups,
        )
    lines = [
        f"{'period':<26} {'sent':>7} {'deliv':>7} {'failed':>7} {'undeliv':>7} "
        f"{'p50 s':>7} {'p95 s':>7} {'replies':>7} {'opt-outs':>8}"
    ]
    for r in rows:
        t = r["time_to_delivered"]
        lines.append(
            f"{r['period']:<26} {r['sent']:>7} {r['delivered']:>7} {r['failed']:>7} "
            f"{r['undelivered']:>7} {t['p50_seconds'] if t['p50_seconds'] is not None else '-':>7} "
            f"{t['p95_seconds'] if t['p95_seconds'] is not None else '-':>7} "
            f"{r['replies']:>7} {r['opt_outs']:>8}"
        )
    emit(as_json, {"bucket": bucket, "rows": rows}, "\n".join(lines))


@analytics_cmd.command("rollup")
@click.option("--hours", type=click.IntRange(1, 24 * 92), default=3)
@json_option
def analytics_rollup(hours: int, as_json: bool) -> None:
    """Recompute the rollup for the last N hours (beat does the last few every minute)."""
    from app.reports.analytics import rollup

    with app_session() as (session, _):
        written = rollup(session, hours=hours)
    emit(as_json, {"hours": hours, "rows": written}, f"rolled up {hours} h: {written} rows")
