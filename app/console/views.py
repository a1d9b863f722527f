"""The console's pages. Viewers read (masked); operators and admins act; admins see
phone numbers and bodies. Every action shows a dry run first and is recorded."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError, validate_csrf
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException
from wtforms.validators import ValidationError

from app.console.actions import KINDS, parse_ids, perform
from app.console.charts import stacked_bars
from app.content import store
from app.content.store import TemplateProblem
from app.domain.ids import is_id
from app.domain.phones import InvalidPhoneNumber, to_e164
from app.infra.db import Database
from app.messaging.recovery.stuck import Window
from app.models import ConsoleUser, Contact, Message, MessageEvent, Template, Tenant
from app.reports import analytics, lists
from app.reports.overview import overview
from app.security.console_users import (
    UserError,
    can,
    recent_actions,
    set_password,
    sign_in,
    sign_out,
)
from app.security.crypto import keyring
from config import Settings

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)
OPEN = ("console.login", "console.static")
LISTS = {
    "held": ("Held messages", "message", ("release", "cancel")),
    "stuck": ("Stuck messages", "message", ("redrive", "cancel")),
    "dead_syncs": ("Dead CRM syncs", "crm_sync", ("retry_syncs",)),
    "parked_receipts": ("Parked receipts", "receipt", ("retry_receipts",)),
}


def _db() -> Database:
    db: Database = current_app.extensions["switchboard.db"]
    return db


def _settings() -> Settings:
    settings: Settings = current_app.extensions["switchboard.settings"]
    return settings


def _current_user() -> ConsoleUser | None:
    """The signed-in user, if the cookie's session is still live on the server: the user
    exists, is enabled, and has not ended its sessions since (sign-out, a password change)."""
    user_id, epoch = session.get("uid"), session.get("epoch")
    if not isinstance(user_id, str) or not isinstance(epoch, int):
        return None
    with _db().session() as s:
        user = s.get(ConsoleUser, user_id)
    if user is None or user.disabled_at is not None or user.session_epoch != epoch:
        session.clear()
        return None
    return user


@bp.before_request
def _guard() -> Any:
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError as exc:
            abort(400, description=f"the form's CSRF token is missing or wrong: {exc}")
    if request.endpoint in OPEN:
        return None
    user = _current_user()
    if user is None:
        if request.method == "POST":
            abort(401, description="sign in first")
        return redirect(url_for("console.login", next=request.full_path))
    g.console_user = user
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    )
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Any:
    if isinstance(exc, CSRFError):
        exc.code = 400
    status = exc.code or 500
    return render_template("console/error.html", status=status, message=exc.description), status


@bp.errorhandler(OperationalError)
@bp.errorhandler(PoolTimeout)
def _db_down(exc: Exception) -> Any:
    message = "The database is not answering. Nothing was changed; try again in a moment."
    return render_template("console/error.html", status=503, message=message), 503


def require(role: str) -> None:
    if not can(g.console_user.role, role):
        abort(403, description=f"this needs the {role} role")


def _tenant_arg() -> str | None:
    tenant = request.args.get("tenant") or None
    if tenant is not None and not is_id(tenant, "ten"):
        abort(400, description="tenant must be a tenant id")
    return tenant


def _tenants() -> list[tuple[str, str]]:
    with _db().session() as s:
        return [(t.id, t.name) for t in s.scalars(select(Tenant).order_by(Tenant.name))]


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    if can(g.console_user.role, "admin"):
        return phone
    return phone[:3] + "•" * max(0, len(phone) - 5) + phone[-2:]


def mask_body(body: str | None) -> str:
    if body is None:
        return ""
    if can(g.console_user.role, "admin"):
        return body
    return f"(hidden: {len(body)} characters; admins see bodies)"


# --- signing in and out ---------------------------------------------------------------


# A path under /console, of printable ASCII only (a newline would split the Location header),
# with no way out of it: no "//", no backslash, no "..".
_SAFE_NEXT = re.compile(r"/console(?:[/?#][\x21-\x7e]*)?")


def _safe_next(target: str | None) -> str:
    """Where to go after a form: ``target`` if it is a plain path under /console, else the
    overview (a crafted link never turns a correct sign-in into an error)."""
    if (
        isinstance(target, str)
        and _SAFE_NEXT.fullmatch(target)
        and "//" not in target
        and "\\" not in target
        and ".." not in target
    ):
        return target
    return url_for("console.overview_page")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    status = 200
    if request.method == "POST":
        settings = _settings()
        username = request.form.get("username", "").strip()[:100]
        password = request.form.get("password", "")[:1024]
        with _db().session() as s:
            result = sign_in(
                s,
                username,
                password,
                max_failures=settings.console_max_failures,
                lockout=timedelta(minutes=settings.console_lockout_minutes),
            )
            user_id = result.user.id if result.user else None
            epoch = result.user.session_epoch if result.user else 0
        if user_id is not None:
            session.clear()
            session.permanent = True
            session["uid"] = user_id
            session["epoch"] = epoch
            return redirect(_safe_next(request.form.get("next")))
        status = 401 if result.result == "bad_credentials" else 403
        error = {
            "bad_credentials": "Wrong username or password.",
            "locked": "Too many failed sign-ins: this user is locked out for a while.",
            "disabled": "This user is disabled.",
        }[result.result]
    return (
        render_template("console/login.html", error=error, next=request.args.get("next", "")),
        status,
    )


@bp.post("/logout")
def logout() -> Any:
    """Sign out: every session of this user ends on the server, copied cookies included."""
    with _db().session() as s:
        sign_out(s, g.console_user.id)
        s.commit()
    session.clear()
    return redirect(url_for("console.login"))


@bp.route("/password", methods=["GET", "POST"])
def password() -> Any:
    """Change one's own password: every session ends, and this browser signs in again."""
    error, status = None, 200
    if request.method == "POST":
        user: ConsoleUser = g.console_user
        current = request.form.get("current", "")[:1024]
        new, again = request.form.get("new", "")[:1024], request.form.get("again", "")[:1024]
        settings = _settings()
        with _db().session() as s:
            checked = sign_in(
                s,
                user.username,
                current,
                max_failures=settings.console_max_failures,
                lockout=timedelta(minutes=settings.console_lockout_minutes),
            )
            try:
                if checked.user is None:
                    raise UserError("the current password is wrong")
                if new != again:
                    raise UserError("the two new passwords differ")
                set_password(s, user.username, new, actor=user.username)
            except UserError as exc:
                error, status = str(exc), 422
            s.commit()
        if error is None:
            session.clear()
            return redirect(url_for("console.login", changed="1"))
    return render_template("console/password.html", error=error), status


# --- reading --------------------------------------------------------------------------


@bp.get("/")
def overview_page() -> Any:
    tenant = _tenant_arg()
    settings = _settings()
    with _db().session() as s:
        found = overview(
            s,
            Window(settings.stuck_sla),
            current_app.extensions["switchboard.limiter"],
            tenant_id=tenant,
        )
    return render_template(
        "console/overview.html", o=found, tenant=tenant, tenants=_tenants(), now=found.at
    )


@bp.get("/messages")
def find_messages() -> Any:
    query = request.args.get("q", "").strip()
    tenant = _tenant_arg()
    found: list[Message] = []
    error = None
    if query:
        if is_id(query, "msg"):
            return redirect(url_for("console.message_page", message_id=query))
        try:
            phone = to_e164(query)
        except InvalidPhoneNumber:
            error = "Give a message id (msg_...) or a phone number."
        else:
            index = keyring().blind_index(phone)
            with _db().session() as s:
                contacts = select(Contact.id).where(Contact.phone_index == index)
                if tenant is not None:
                    contacts = contacts.where(Contact.tenant_id == tenant)
                found = list(
                    s.scalars(
                        select(Message)
                        .where(Message.contact_id.in_(contacts))
                        .order_by(Message.id.desc())
                        .limit(100)
                    )
                )
            if not found:
                error = "No messages to or from that number."
    return render_template(
        "console/find.html", q=query, messages=found, error=error, mask_phone=mask_phone
    )


@bp.get("/messages/<message_id>")
def message_page(message_id: str) -> Any:
    if not is_id(message_id, "msg"):
        abort(404, description="no such message")
    with _db().session() as s:
        message = s.get(Message, message_id)
        if message is None:
            abort(404, description="no such message")
        contact = s.get(Contact, message.contact_id)
        events = list(
            s.scalars(
                select(MessageEvent)
                .where(MessageEvent.message_id == message_id)
                .order_by(MessageEvent.id)
            )
        )
    return render_template(
        "console/message.html",
        m=message,
        phone=mask_phone(contact.phone if contact else None),
        body=mask_body(message.body),
        events=events,
        can_act=can(g.console_user.role, "operator"),
    )


@bp.get("/lists/<name>")
def list_page(name: str) -> Any:
    if name not in LISTS:
        abort(404, description="no such list")
    title, target, actions = LISTS[name]
    tenant = _tenant_arg()
    with _db().session() as s:
        if name == "held":
            rows = lists.held_messages(s, tenant_id=tenant, reason=request.args.get("reason"))
        elif name == "stuck":
            rows = lists.stuck_messages(s, Window(_settings().stuck_sla), tenant_id=tenant)
        elif name == "dead_syncs":
            rows = lists.dead_syncs(s, tenant_id=tenant)
        else:
            rows = lists.parked_receipts(s, tenant_id=tenant)
    return render_template(
        "console/list.html",
        name=name,
        title=title,
        target=target,
        rows=rows,
        actions=[KINDS[a] for a in actions],
        can_act=can(g.console_user.role, "operator"),
        tenant=tenant,
        tenants=_tenants(),
    )


@bp.get("/analytics")
def analytics_page() -> Any:
    tenant = _tenant_arg()
    days = request.args.get("days", "14")
    span = int(days) if days.isdigit() and 1 <= int(days) <= 90 else 14
    bucket: analytics.Bucket = "hour" if span <= 2 else "day"
    end = datetime.now(UTC)
    start = analytics.hour_of(end - timedelta(days=span))
    if bucket == "day":
        start = start.replace(hour=0)
    with _db().session() as s:
        rows = analytics.query(s, tenant_id=tenant, start=start, end=end, bucket=bucket)
    # Every period of the range on the axis, those without traffic at zero.
    step = timedelta(days=1) if bucket == "day" else timedelta(hours=1)
    by_period = {r["period"]: r for r in rows}
    periods = []
    moment = start
    while moment < end:
        periods.append(moment.isoformat())
        moment += step
    labels = [p[5:10] if bucket == "day" else p[11:16] for p in periods]

    def series(name: str) -> list[float]:
        return [by_period[p][name] if p in by_period else 0 for p in periods]

    chart = stacked_bars(
        labels,
        [
            ("delivered", "#2e7d32", series("delivered")),
            ("failed", "#c62828", series("failed")),
            ("undelivered", "#ef6c00", series("undelivered")),
        ],
        f"Outcomes per {bucket}",
    )
    replies = stacked_bars(
        labels,
        [
            ("replies", "#1565c0", series("replies")),
            ("opt-outs", "#6a1b9a", series("opt_outs")),
        ],
        f"Replies and opt-outs per {bucket}",
    )
    return render_template(
        "console/analytics.html",
        rows=rows,
        chart=chart,
        replies=replies,
        tenant=tenant,
        tenants=_tenants(),
        days=span,
        bucket=bucket,
    )


@bp.route("/templates", methods=["GET", "POST"])
def templates_page() -> Any:
    """Templates by tenant, and a preview with its price: the API's preview, on a form."""
    tenant = _tenant_arg()
    with _db().session() as s:
        query = select(Template).where(Template.archived_at.is_(None))
        if tenant is not None:
            query = query.where(Template.tenant_id == tenant)
        found = [
            (t.id, t.tenant_id, t.name, t.latest_version)
            for t in s.scalars(query.order_by(Template.tenant_id, Template.name).limit(500))
        ]
    chosen = request.values.get("template", "")
    variables = request.form.get("variables", "{}")
    locale = request.form.get("locale") or None
    preview: dict[str, Any] | None = None
    problems: list[str] = []
    if request.method == "POST" and chosen:
        try:
            given = json.loads(variables)
        except ValueError as exc:
            problems.append(f"variables: not JSON ({exc})")
            given = None
        with _db().session() as s:
            template = s.get(Template, chosen) if is_id(chosen, "tpl") else None
            if template is None:
                abort(404, description="no such template")
            if given is not None:
                try:
                    version = store.version_of(s, template, None)
                    preview = store.preview(version, given, locale, _settings().public_base_url)
                except TemplateProblem as exc:
                    problems += [f"{p.field}: {p.message}" for p in exc.problems]
    return render_template(
        "console/templates.html",
        found=found,
        chosen=chosen,
        variables=variables,
        locale=locale or "",
        preview=preview,
        problems=problems,
        tenant=tenant,
        tenants=_tenants(),
    )


@bp.get("/audit")
def audit_page() -> Any:
    with _db().session() as s:
        actions = recent_actions(s, 200)
    return render_template("console/audit.html", actions=actions)


# --- acting ---------------------------------------------------------------------------


@bp.post("/actions/<name>")
def act(name: str) -> Any:
    require("operator")
    kind = KINDS.get(name)
    if kind is None:
        abort(404, description="no such action")
    try:
        ids = parse_ids(kind, request.form.getlist("ids"))
    except ValueError as exc:
        abort(400, description=f"ids: {exc}")
    back = _safe_next(request.form.get("back"))
    confirmed = request.form.get("confirm") == "yes"
    results = perform(_db(), kind, ids, g.console_user.username, dry_run=not confirmed)
    return render_template(
        "console/confirm.html" if not confirmed else "console/done.html",
        kind=kind,
        ids=ids,
        results=results,
        back=back,
    )
