"""Set when the worker begins to shut down: drains stop taking new batches and hand on."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any

from celery.signals import worker_shutting_down
from celery.worker import state as worker_state
from celery.worker.worker import WorkController

log = logging.getLogger(__name__)

stopping = threading.Event()


# Heroku sends SIGKILL 30 s after SIGTERM. Whatever still holds the process after the
# running tasks have finished (seen: a broker connection's close under RabbitMQ, after
# "Cold shutdown"), it leaves within EXIT_GRACE of them, and never later than EXIT_DEADLINE
# after the signal. Nothing is lost by it: a task's work is committed before it returns,
# and an outbox row not yet published is published by beat's relay.
EXIT_GRACE = 5.0
EXIT_DEADLINE = 28.0


def _leave(why: str) -> None:
    log.warning("shutdown still not done %s: leaving now (the relay has any unpublished row)", why)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(0)


def _exit_later(seconds: float, why: str) -> None:
    """Only in a worker that is shutting down (the signal armed it), never in a test."""
    if not stopping.is_set():
        return
    timer = threading.Timer(seconds, _leave, args=(why,))
    timer.daemon = True
    timer.start()


@worker_shutting_down.connect
def _on_shutdown(**_kwargs: Any) -> None:
    stopping.set()
    _exit_later(EXIT_DEADLINE, f"{EXIT_DEADLINE:.0f} s after the signal")


def _soft_shutdown_until_idle(self: Any) -> None:
    """Celery's soft shutdown, ended as soon as no task is running.

    Celery sleeps the whole ``worker_soft_shutdown_timeout`` whenever a task was running at
    the signal, even one that finishes a moment later: 20 s, then the cold shutdown, which
    under load came close to Heroku's 30 s before SIGKILL. Here the wait ends when the last
    task does, and never later than the timeout.
    """
    timeout = float(self.app.conf.worker_soft_shutdown_timeout or 0)
    if timeout > 0 and worker_state.active_requests:
        log.warning("soft shutdown: waiting up to %.0f s for the running tasks", timeout)
        deadline = time.monotonic() + timeout
        while worker_state.active_requests and time.monotonic() < deadline:
            time.sleep(0.1)
    _exit_later(EXIT_GRACE, f"{EXIT_GRACE:.0f} s after the last running task")


WorkController.wait_for_soft_shutdown = _soft_shutdown_until_idle
