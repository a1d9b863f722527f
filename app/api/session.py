"""The request-scoped database session (Flask side only: the domain never imports this)."""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session

from app.infra.db import Database


def get_db() -> Database:
    db: Database = current_app.extensions["switchboard.db"]
    return db


def request_session() -> Session:
    """The session of the current request, closed at teardown."""
    if "db_session" not in g:
        g.db_session = get_db().sessionmaker()
    session: Session = g.db_session
    return session


def close_request_session(_exc: BaseException | None = None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()
