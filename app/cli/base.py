"""The ``switchboard`` console script's group and what every command shares."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from sqlalchemy.orm import Session

from config import ConfigError


@contextmanager
def app_session() -> Iterator[tuple[Session, Any]]:
    from app import create_app

    try:
        flask_app = create_app()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    db = flask_app.extensions["switchboard.db"]
    with flask_app.app_context(), db.session() as session:
        session.info["db"] = db
        yield session, flask_app.extensions["switchboard.settings"]


def emit(as_json: bool, data: dict[str, Any], human: str) -> None:
    click.echo(json.dumps(data) if as_json else human)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.group()
def main() -> None:
    """Switchboard: the messaging pipeline between business systems and providers."""
