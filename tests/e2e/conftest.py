"""End-to-end fixtures: a backend of their own, so the live worker never races other tests."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.infra.db import Database
from config import Settings, load_settings
from scripts.fake_twilio import FakeTwilio
from tests.factories import TenantCtx, make_tenant_ctx
from tests.support.backends import Backend, create_backend, destroy_backend
from tests.support.processes import BIN, Pipeline, start_pipeline


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


@dataclass
class Run:
    """A pipeline of a test's own, its backend, and its database from this process."""

    backend: Backend
    pipeline: Pipeline
    db: Database

    def cli(self, *args: str) -> dict[str, Any]:
        out = subprocess.run(
            [str(BIN / "switchboard"), *args, "--json"],
            env=self.pipeline.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        data: dict[str, Any] = json.loads(out)
        return data


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    """Start a pipeline on a backend of its own; everything is stopped and dropped after."""
    made: list[tuple[Backend, Pipeline]] = []

    def start(**env: str) -> Run:
        backend = create_backend(tmp_path / f"b{len(made)}")
        pipeline = start_pipeline(backend, tmp_path / f"logs{len(made)}", env)
        made.append((backend, pipeline))
        settings = load_settings({**backend.env, **env, "PUBLIC_BASE_URL": pipeline.base_url})
        app = create_app({"settings": settings, "TESTING": True})
        return Run(backend, pipeline, app.extensions["switchboard.db"])

    yield start
    for backend, pipeline in made:
        pipeline.stop_all()
        destroy_backend(backend)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    """A fake Twilio on a free port, calling back at once."""
    server = FakeTwilio(callback_delay=0).start()
    yield server
    server.stop()
