"""A Celery worker process for the benchmarks: started, connected, and stopped in order."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from scripts.bench.lib.common import REPO_ROOT, SetupError, find_executable


class CeleryWorker:
    """``celery -A app worker -Q queues``, with the pool given, or the settings' (WORKER_POOL)."""

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        app: str,
        queues: list[str],
        pool: str | None = None,
        concurrency: int | None = None,
    ) -> None:
        cmd = [
            find_executable("celery"), "-A", app, "worker", "-Q", ",".join(queues),
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
            "--hostname", f"{log.stem}@%h",
        ]  # fmt: skip
        if pool is not None:
            # The pool goes in the settings too: Celery reads an explicit --pool prefork as
            # "no choice" and falls back to the configured WORKER_POOL.
            env = {**env, "WORKER_POOL": pool}
            cmd += ["--pool", pool]
        if concurrency is not None:
            env = {**env, "WORKER_CONCURRENCY": str(concurrency)}
            cmd += ["--concurrency", str(concurrency)]
        self.log = log
        self.file = log.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=self.file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        time.sleep(4)  # connected and consuming before any clock starts
        if self.proc.poll() is not None:
            self.file.close()
            raise SetupError(f"the worker exited at start (log: {log})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.file.close()
