"""Set when the worker begins to shut down: drains stop taking new batches and hand on."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery.signals import worker_shutting_down
from celery.worker import state as worker_state
from celery.worker.worker import WorkController

log = logging.getLogger(__name__)

stopping = threading.Event()


@worker_shutting_down.connect
def _on_shutdown(**_kwargs: Any) -> None:
    stopping.set()


def _soft_shutdown_until_idle(self: Any) -> None:
    """Celery's soft shutdown, ended as soon as no task is running.

    Celery sleeps the whole ``worker_soft_shutdown_timeout`` whenever a task was running at
    the signal, even one that finishes a moment later: 20 s, then the cold shutdown, which
    under load came close to Heroku's 30 s before SIGKILL. Here the wait ends when the last
    task does, and never later than the timeout.
    """
    timeout = float(self.app.conf.worker_soft_shutdown_timeout or 0)
    if timeout <= 0 or not worker_state.active_requests:
        return
    log.warning("soft shutdown: waiting up to %.0f s for the running tasks", timeout)
    deadline = time.monotonic() + timeout
    while worker_state.active_requests and time.monotonic() < deadline:
        time.sleep(0.1)


WorkController.wait_for_soft_shutdown = _soft_shutdown_until_idle
