"""The floor: the least a durable JSON intake endpoint can do on this stack.

One POST endpoint parses the JSON body, INSERTs one row and COMMITs (SQLAlchemy
pool, psycopg2), then LPUSHes to Redis. The benchmark serves it with the same
gunicorn configuration as Switchboard, so the gap between the two is the cost
of Switchboard's own per-request work.

Run: ``gunicorn -c config/gunicorn.py "scripts.bench.apps.floor_app:create_app()"``
from the repository root, with the same environment as the web process
(DATABASE_URL, REDIS_URL, ...). The table must exist (``SCHEMA_SQL``).
"""

from __future__ import annotations

import json
from typing import Any

import redis
from flask import Flask, request
from sqlalchemy import create_engine, text

from config import load_settings

TABLE = "bench_floor"
REDIS_KEY = "bench.floor"
SCHEMA_SQL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    "id BIGSERIAL PRIMARY KEY, "
    "payload JSONB NOT NULL, "
    "created_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)
_INSERT = text(f"INSERT INTO {TABLE} (payload) VALUES (CAST(:payload AS JSONB)) RETURNING id")  # noqa: S608


def create_app() -> Flask:
    settings = load_settings()
    redis_url = settings.redis_url or settings.broker_url
    if settings.is_sqlite or not redis_url.startswith(("redis://", "rediss://")):
        raise RuntimeError("the floor app needs a Postgres DATABASE_URL and a Redis REDIS_URL")
    # Same pool size as the app's engine (app/infra/db.py), without its extras.
    engine = create_engine(settings.database_url, pool_size=5, max_overflow=10, pool_timeout=5)
    queue = redis.Redis.from_url(redis_url)
    key = f"{settings.broker_keyprefix or ''}{REDIS_KEY}"

    app = Flask(__name__)

    @app.post("/floor")
    def floor() -> Any:
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            return {"error": "the body must be a JSON object"}, 400
        with engine.begin() as conn:
            row_id = conn.execute(_INSERT, {"payload": json.dumps(payload)}).scalar_one()
        queue.lpush(key, row_id)
        return {"id": row_id}, 202

    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    return app
