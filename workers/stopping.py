"""Set when the worker begins to shut down: drains stop taking new batches and hand on."""

from __future__ import annotations

import threading
from typing import Any

from celery.signals import worker_shutting_down

stopping = threading.Event()


@worker_shutting_down.connect
def _on_shutdown(**_kwargs: Any) -> None:
    stopping.set()
