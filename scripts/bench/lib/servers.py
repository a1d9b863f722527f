"""Starting and stopping the gunicorn servers under test."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import requests

from scripts.bench.lib.common import GUNICORN_CONFIG, REPO_ROOT, SetupError, say

ERROR_LINE = re.compile(r"Traceback|\[ERROR\]|\[CRITICAL\]| ERROR | CRITICAL |WORKER TIMEOUT")
# Which app each server runs, and the path that answers 200 once it is ready.
APPS = {
    "floor": ("scripts.bench.apps.floor_app:create_app()", "/healthz"),
    "app": ("app:create_app()", "/readyz"),
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One gunicorn master (and its workers) serving ``app_spec`` with config/gunicorn.py."""

    def __init__(
        self, name: str, app_spec: str, ready_path: str, env: dict[str, str], log_dir: Path
    ) -> None:
        self.name = name
        self.app_spec = app_spec
        self.ready_path = ready_path
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.access_log = log_dir / f"{name}.access.log"
        self.error_log = log_dir / f"{name}.error.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = False
        self._files: list[IO[bytes]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float) -> None:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            GUNICORN_CONFIG,
            # The config binds 0.0.0.0:$PORT; the benchmark stays on loopback. (It also
            # disables gunicorn 27's per-user control socket, which masters would share.)
            "--bind",
            f"127.0.0.1:{self.port}",
            self.app_spec,
        ]
        out = self.access_log.open("ab")  # appended: a server restarts for each run
        err = self.error_log.open("ab")
        self._files = [out, err]
        self.started = True
        say(
            f"  starting {self.name} server on {self.base_url}: gunicorn -c {GUNICORN_CONFIG} "
            f"{self.app_spec!r}"
        )
        # A session of its own, so a Ctrl-C in the terminal reaches only this script,
        # which then stops the server in order.
        self.proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=self.env, stdout=out, stderr=err, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise SetupError(
                    f"{self.name} server exited with {code} while starting "
                    f"(log: {self.error_log})\n{self.log_tail()}"
                )
            try:
                answer = requests.get(self.base_url + self.ready_path, timeout=2)
                if answer.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise SetupError(
            f"{self.name} server was not ready within {timeout:.0f} s "
            f"(log: {self.error_log})\n{self.log_tail()}"
        )

    def stop(self) -> None:
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # gunicorn: graceful shutdown
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    say(f"  {self.name} server did not stop; killing its process group")
                    # The group this script created for it: the master and its workers.
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            self.proc = None
        for handle in self._files:
            handle.close()
        self._files = []

    def _log_lines(self) -> list[str] | None:
        try:
            return self.error_log.read_text(errors="replace").splitlines()
        except OSError:
            return None

    def log_tail(self, lines: int = 12) -> str:
        """The first lines that look like errors (the cause), then the last lines."""
        content = self._log_lines()
        if content is None:
            return "(no log)"
        notable = [line for line in content if "[INFO]" not in line][:lines]
        shown = notable or content[-lines:]
        return "\n".join(f"    {line}" for line in shown)

    def error_lines(self) -> list[str]:
        return [line for line in self._log_lines() or [] if ERROR_LINE.search(line)]


def make_servers(
    env: dict[str, str], log_dir: Path, cleanups: contextlib.ExitStack
) -> dict[str, Server]:
    """The floor and app servers, not started yet; ``cleanups`` stops whichever did start."""
    servers = {
        name: Server(name, app_spec, ready_path, env, log_dir)
        for name, (app_spec, ready_path) in APPS.items()
    }
    for server in servers.values():
        cleanups.callback(server.stop)
    return servers


@contextlib.contextmanager
def pipeline(env: dict[str, str], log_path: Path, timeout: float = 60) -> Iterator[int]:
    """``scripts/run`` (what ``make run`` starts: web, workers, beat) until the block ends.

    Yields its process group id once ``/readyz`` answers 200 on ``env["PORT"]``; the
    group is stopped with SIGTERM (SIGKILL after 40 s) on the way out, also on error.
    """
    base = f"http://127.0.0.1:{env['PORT']}"
    with log_path.open("wb") as log:
        say(f"  starting scripts/run on {base} (log: {log_path})")
        proc = subprocess.Popen(
            [str(Path(REPO_ROOT) / "scripts" / "run")],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                if proc.poll() is not None:
                    raise SetupError(f"scripts/run exited with {proc.returncode} ({log_path})")
                if time.monotonic() > deadline:
                    raise SetupError(f"the pipeline was not ready within {timeout:.0f} s")
                time.sleep(0.2)
            yield proc.pid
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
