"""Maintenance ticks stay out of the INFO log; everything else, and every warning, stays in."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from config import load_settings
from workers.beat import beat_schedule
from workers.quiet_logs import MAINTENANCE, QuietTicks


def record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_tick_lines_are_dropped_and_the_rest_kept() -> None:
    quiet = QuietTicks()
    tick = "Task %s[%s] succeeded in %ss: %s"
    assert not quiet.filter(
        record("celery.app.trace", logging.INFO, tick, "relay_outbox", "i", 0.01, 0)
    )
    assert not quiet.filter(
        record(
            "celery.worker.strategy", logging.INFO, "Task %s[%s] received", "expire_messages", "i"
        )
    )
    assert not quiet.filter(
        record(
            "celery.beat",
            logging.INFO,
            "Scheduler: Sending due task %s (%s)",
            "reconcile",
            "reconcile_stuck_messages",
        )
    )
    assert quiet.filter(
        record("celery.app.trace", logging.INFO, tick, "dispatch_message", "i", 0.2, "accepted")
    )
    assert quiet.filter(record("celery.app.trace", logging.ERROR, "Task %s raised", "relay_outbox"))
    assert quiet.filter(record("workers.maintenance", logging.INFO, "outbox relayed"))


def test_every_beat_job_is_a_maintenance_task(tmp_path: Path) -> None:
    schedule = beat_schedule(load_settings({"SWITCHBOARD_VAR_DIR": str(tmp_path)}))
    assert {entry["task"] for entry in schedule.values()} == MAINTENANCE


def test_every_task_has_an_explicit_stable_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.infra.broker import TaskNames

    for name in ("DATABASE_URL", "REDIS_URL", "BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SWITCHBOARD_VAR_DIR", str(tmp_path))
    from workers.celery_app import create_worker_app

    celery_app = create_worker_app()

    ours = {name for name in celery_app.tasks if not name.startswith("celery.")}
    names = {v for k, v in vars(TaskNames).items() if k.isupper()}
    assert ours == names
