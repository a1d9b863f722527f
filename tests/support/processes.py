"""Starting the real processes of the Procfile (web, worker, beat) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from app.domain.queues import QueueNames
from tests.support.backends import ROOT, Backend

BIN = Path(sys.executable).parent
METRICS_TOKEN = "e2e-metrics-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pipeline:
    base_url: str
    env: dict[str, str]
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, name: str) -> None:
        """kill -9 the process and everything it started."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def logs(self, tail: int = 60) -> str:
        out = []
        for path in sorted(self.log_dir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def start_web(self) -> None:
        self.start("web", [str(BIN / "gunicorn"), "-c", "config/gunicorn.py", "app:create_app()"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass  # not listening yet, or still importing the app
            time.sleep(0.2)
        raise RuntimeError("web did not start:\n" + self.logs())

    def start_worker(
        self, name: str = "worker", queues: list[str] | None = None, pool: str = "threads"
    ) -> None:
        """A worker as the Procfile runs it (SIGTERM remapped), on every queue unless told."""
        self.start(
            name,
            [
                "env",
                "REMAP_SIGTERM=SIGQUIT",
                str(BIN / "celery"),
                "-A",
                "workers.main",
                "worker",
                "-Q",
                ",".join(queues or QueueNames.all()),
                "--pool",
                pool,
                "--concurrency",
                "4",
                "--hostname",
                f"{name}@%h",
                "--loglevel",
                "INFO",
            ],
        )

    def start_beat(self) -> None:
        self.start(
            "beat", [str(BIN / "celery"), "-A", "workers.main", "beat", "--loglevel", "INFO"]
        )


def start_pipeline(
    backend: Backend, log_dir: Path, extra_env: dict[str, str] | None = None
) -> Pipeline:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    # Every process writes its metrics here; the web's /metrics merges them (as make run).
    metrics_dir = log_dir / "prometheus"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **backend.process_env(),
        "PORT": str(port),
        "PUBLIC_BASE_URL": base_url,
        "WEB_CONCURRENCY": "2",
        "PYTHONUNBUFFERED": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "METRICS_TOKEN": METRICS_TOKEN,
        **(extra_env or {}),
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(base_url, env, log_dir)
    try:
        pipeline.start_web()
        pipeline.start_worker()
        pipeline.start_beat()
    except BaseException:
        pipeline.stop_all()
        raise
    return pipeline
