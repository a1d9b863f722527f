"""Fixtures shared by the integration and end-to-end tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.infra.db import Database
from config import Settings, load_settings
from tests.factories import TenantCtx, make_tenant_ctx
from tests.support.backends import Backend, create_backend, destroy_backend


def pytest_report_header(config: pytest.Config) -> str:
    from tests.support.backends import choose_kind

    broker = os.environ.get(
        "SWITCHBOARD_TEST_BROKER", "redis" if choose_kind() == "postgres" else "sqla"
    )
    return f"switchboard test backend: {choose_kind()}, broker: {broker}"


@pytest.fixture(autouse=True)
def _the_process_keyring_is_restored() -> Iterator[None]:
    """A test that builds an app (or a worker app) with other keys must not leave this process
    encrypting with them: a later test's rows would be unreadable by its own pipeline."""
    from app.security import crypto

    saved = crypto._keyring
    yield
    crypto._keyring = saved


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """A fresh database (and Redis key prefix) for this run, migrated with Alembic."""
    made = create_backend(tmp_path_factory.mktemp("backend"))
    try:
        yield made
    finally:
        destroy_backend(made)


@pytest.fixture(scope="session")
def settings(backend: Backend) -> Settings:
    """Settings for in-process apps, read the same way the processes read them."""
    return load_settings({**backend.env, "PUBLIC_BASE_URL": "http://127.0.0.1:9"})


@pytest.fixture(scope="session")
def app(settings: Settings) -> Flask:
    """The Flask app, in-process, against the run's database and broker."""
    return create_app({"settings": settings, "TESTING": True})


@pytest.fixture(scope="session")
def db(app: Flask) -> Database:
    """The app's database handle."""
    database: Database = app.extensions["switchboard.db"]
    return database


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for the in-process app."""
    return app.test_client()


@pytest.fixture
def ctx(db: Database) -> TenantCtx:
    """A fresh tenant with an API key and a sandbox account; tests are isolated by tenant."""
    return make_tenant_ctx(db)


@pytest.fixture
def other_ctx(db: Database) -> TenantCtx:
    """A second tenant, to prove one tenant never sees another's data."""
    return make_tenant_ctx(db)


# The files that take longest (see the ten slowest at the end of a run) start first: with a file
# to a worker, a long file started last is the whole run's tail (longest-processing-time first).
LONG_FIRST = (
    "tests/e2e/",
    "tests/integration/ops/test_cli.py",
    "tests/integration/campaigns/test_campaigns_cli.py",
    "tests/integration/api/test_openapi.py",
    "tests/integration/content/test_templates_api.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    from tests.support.backends import choose_kind

    # A stable sort: within each group the collection order stays as it was.
    items.sort(key=lambda item: not item.nodeid.startswith(LONG_FIRST))
    if choose_kind() == "postgres":
        return
    skip = pytest.mark.skip(reason="needs real Postgres and Redis (embedded backend in use)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
