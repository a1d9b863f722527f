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
    """A session on the configured database, with everything a commit sets off (the outbox,
    CRM syncs, metrics) wired as in the web and the workers, but no Flask app: a command
    starts in half the time."""
    from app import build_core
    from config import load_settings

    try:
        core = build_core(load_settings())
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    with core.db.session() as session:
        session.info["db"] = core.db
        yield session, core.settings


def emit(as_json: bool, data: dict[str, Any], human: str) -> None:
    click.echo(json.dumps(data) if as_json else human)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.group()
def main() -> None:
    """Switchboard: the messaging pipeline between business systems and providers."""
