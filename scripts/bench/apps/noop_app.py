"""The baseline for the dispatch benchmark: a Celery no-op task on the same broker and settings.

Each run counts itself in Redis, so the benchmark can see when all have run.
"""

from __future__ import annotations

import redis
from celery import Celery

from app.infra.broker import create_celery
from config import load_settings

settings = load_settings()
celery_app: Celery = create_celery(settings, name="switchboard-bench-noop")
_counter = redis.Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0")
COUNTER_KEY = f"{settings.broker_keyprefix or ''}bench:noop:done"


@celery_app.task(name="bench_noop")  # type: ignore[untyped-decorator]
def bench_noop() -> None:
    _counter.incr(COUNTER_KEY)
