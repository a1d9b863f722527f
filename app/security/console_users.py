"""Console users: argon2id password hashes, roles, and lockout after repeated failures.

No Flask here: the console's views (app.console) and the CLI both use it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.models import ConsoleAction, ConsoleUser
from app.models.access import ROLES
from app.security import audit

HASHER = PasswordHasher()  # argon2id with the library's current defaults (RFC 9106)
# Verified against when the username is unknown, so both answers take the same time.
_DUMMY_HASH = HASHER.hash("switchboard: no such user")
USERNAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,100}$")
MIN_PASSWORD = 12
# What each role may do, lowest first: every role has the rights of those before it.
RANK = {role: n for n, role in enumerate(ROLES)}


class UserError(ValueError):
    pass


def can(role: str, needed: str) -> bool:
    return RANK.get(role, -1) >= RANK[needed]


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise UserError("a password may have at most 1024 characters")


def create_user(session: Session, username: str, password: str, role: str) -> ConsoleUser:
    if not USERNAME.match(username):
        raise UserError("a username is 1 to 100 of letters, digits and _ . @ + -")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    check_password(password)
    if session.scalar(select(ConsoleUser.id).where(ConsoleUser.username == username)):
        raise UserError(f"a console user named {username!r} exists")
    user = ConsoleUser(username=username, password_hash=HASHER.hash(password), role=role)
    session.add(user)
    session.flush()
    record(session, "cli", "user_create", "console_user", [user.id], {"role": role})
    return user


def set_disabled(session: Session, username: str, disabled: bool) -> ConsoleUser:
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
    if user is None:
        raise UserError(f"no console user named {username!r}")
    user.disabled_at = utcnow() if disabled else None
    if disabled:
        end_sessions(user)
    else:
        user.failed_logins, user.locked_until = 0, None
    action = "user_disable" if disabled else "user_enable"
    record(session, "cli", action, "console_user", [user.id], {})
    return user


def end_sessions(user: ConsoleUser) -> None:
    """Every session this user has open stops opening the console at its next request."""
    user.session_epoch = (user.session_epoch or 0) + 1


def set_password(session: Session, username: str, password: str, *, actor: str) -> ConsoleUser:
    """A new password (checked as at creation); every session of the user ends."""
    check_password(password)
    user = session.scalar(
        select(ConsoleUser).where(ConsoleUser.username == username).with_for_update()
    )
    if user is None:
        raise UserError(f"no console user named {username!r}")
    user.password_hash = HASHER.hash(password)
    user.failed_logins, user.locked_until = 0, None
    end_sessions(user)
    record(session, actor, "password_change", "console_user", [user.id], {})
    return user


def sign_out(session: Session, user_id: str) -> None:
    """End every session of the user (this browser's, and any copy of its cookie)."""
    user = session.get(ConsoleUser, user_id, with_for_update=True)
    if user is None:
        return
    end_sessions(user)
    record(session, user.username, "logout", "console_user", [user.id], {})


@dataclass(frozen=True)
class SignIn:
    user: ConsoleUser | None
    # ok | bad_credentials | locked | disabled
    result: str


def sign_in(
    session: Session, username: str, password: str, *, max_failures: int, lockout: timedelta
) -> SignIn:
    """Check a sign-in. Failures count up; at ``max_failures`` in a row the user is locked
    out for ``lockout`` (even the right password is refused until then). Recorded."""
    now = utcnow()
    user = (
        session.scalar(
            select(ConsoleUser).where(ConsoleUser.username == username).with_for_update()
        )
        if USERNAME.match(username)  # no lookup the database must refuse (a NUL, say)
        else None
    )
    if user is None:
        with contextlib.suppress(VerificationError):
            HASHER.verify(_DUMMY_HASH, password)
        typed = username[:100].replace("\x00", "\ufffd")  # recorded as typed, but storable
        record(session, typed, "login_failed", "console_user", [], {"why": "unknown"})
        return SignIn(None, "bad_credentials")
    if user.disabled_at is not None:
        record(
            session, user.username, "login_failed", "console_user", [user.id], {"why": "disabled"}
        )
        return SignIn(None, "disabled")
    if user.locked_until is not None and user.locked_until > now:
        _failed(session, user, "locked")
        return SignIn(None, "locked")
    try:
        HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        why = "bad_password"
        if user.failed_logins >= max_failures:
            user.locked_until = now + lockout
            user.failed_logins = 0
            why = "locked_out"
        _failed(session, user, why)
        return SignIn(None, "locked" if why == "locked_out" else "bad_credentials")
    if HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = HASHER.hash(password)
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    record(session, user.username, "login", "console_user", [user.id], {})
    return SignIn(user, "ok")


def _failed(session: Session, user: ConsoleUser, why: str) -> None:
    record(session, user.username, "login_failed", "console_user", [user.id], {"why": why})


def record(
    session: Session,
    username: str,
    action: str,
    target: str,
    ids: list[Any],
    detail: dict[str, Any],
) -> ConsoleAction:
    """Append one action to the record and to the audit chain (committed with the
    caller's transaction). Console users belong to no tenant: the system chain."""
    row = ConsoleAction(username=username, action=action, target=target, ids=ids, detail=detail)
    session.add(row)
    audit.append(
        session,
        tenant_id=None,
        actor=f"console:{username}",
        action=f"console.{action}",
        target=target,
        ids=ids,
        change=detail,
    )
    return row


def recent_actions(session: Session, limit: int = 100) -> list[ConsoleAction]:
    return list(
        session.scalars(select(ConsoleAction).order_by(ConsoleAction.id.desc()).limit(limit))
    )
