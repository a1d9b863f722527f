"""The worker's soft shutdown ends when its last task does, never later than the timeout."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from celery.worker import state
from celery.worker.worker import WorkController

import workers.stopping  # noqa: F401  (installs the soft shutdown)


class _Request:
    """A running task, as the worker's state holds it (weakly)."""


def _worker(timeout: float) -> SimpleNamespace:
    conf = SimpleNamespace(worker_soft_shutdown_timeout=timeout)
    return SimpleNamespace(app=SimpleNamespace(conf=conf))


def test_it_ends_when_the_running_task_does() -> None:
    request = _Request()
    state.active_requests.add(request)  # type: ignore[arg-type]
    done = threading.Timer(0.3, lambda: state.active_requests.discard(request))  # type: ignore[arg-type]
    done.start()
    started = time.monotonic()
    WorkController.wait_for_soft_shutdown(_worker(20.0))  # type: ignore[arg-type]
    assert 0.25 < time.monotonic() - started < 2.0  # not the 20 s Celery itself would sleep


def test_it_never_waits_past_the_timeout_nor_when_idle() -> None:
    request = _Request()
    state.active_requests.add(request)  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        WorkController.wait_for_soft_shutdown(_worker(0.5))  # type: ignore[arg-type]
        assert 0.45 < time.monotonic() - started < 2.0
    finally:
        state.active_requests.discard(request)  # type: ignore[arg-type]
    started = time.monotonic()
    WorkController.wait_for_soft_shutdown(_worker(20.0))  # type: ignore[arg-type]
    assert time.monotonic() - started < 0.1
