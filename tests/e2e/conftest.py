"""End-to-end fixtures: a backend of their own, so the live worker never races other tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from app import create_app
from app.db import Database
from config import Settings, load_settings
from tests.factories import TenantCtx, make_tenant_ctx
from tests.support.backends import Backend, create_backend, destroy_backend
from tests.support.processes import Pipeline, start_pipeline


@pytest.fixture(scope="session")
def e2e_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """A database and broker namespace used only by the end-to-end tests."""
    made = create_backend(tmp_path_factory.mktemp("e2e-backend"))
    try:
        yield made
    finally:
        destroy_backend(made)


@pytest.fixture(scope="session")
def pipeline(e2e_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """Real web (gunicorn), worker and beat processes, as the Procfile runs them."""
    running = start_pipeline(e2e_backend, tmp_path_factory.mktemp("pipeline-logs"))
    try:
        yield running
    finally:
        running.stop_all()


@pytest.fixture(scope="session")
def settings(e2e_backend: Backend, pipeline: Pipeline) -> Settings:
    """Settings matching the running pipeline's."""
    return load_settings({**e2e_backend.env, "PUBLIC_BASE_URL": pipeline.base_url})


@pytest.fixture(scope="session")
def app(settings: Settings) -> Flask:
    """An in-process app on the pipeline's database and broker."""
    return create_app({"settings": settings, "TESTING": True})


@pytest.fixture(scope="session")
def db(app: Flask) -> Database:
    """The pipeline's database."""
    database: Database = app.extensions["switchboard.db"]
    return database


@pytest.fixture
def ctx(db: Database) -> TenantCtx:
    """A fresh tenant with a key and a sandbox account, in the pipeline's database."""
    return make_tenant_ctx(db)
