"""`PORT=... make run`, then the demo from a second terminal that sets nothing: a newcomer who
moved the port because 5000 was taken still sees every message settle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.backends import ROOT
from tests.support.processes import BIN, free_port

pytestmark = pytest.mark.e2e
UNSET = ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "PUBLIC_BASE_URL", "PORT")


def clean_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """A terminal's environment on the embedded default: no URLs, no port, our venv first."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    return {
        **env,
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "SWITCHBOARD_VAR_DIR": str(var_dir),
        "PROMETHEUS_MULTIPROC_DIR": str(var_dir / "prometheus"),
        **extra,
    }


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """`scripts/run` (what `make run` runs) with only PORT set, stopped as Ctrl-C would."""
    port, var_dir = free_port(), tmp_path / "var"
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "run")],
        cwd=ROOT,
        env=clean_env(var_dir, PORT=str(port)),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            raise AssertionError((tmp_path / "run.log").read_text())
        yield port, var_dir
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_the_demo_settles_when_only_port_was_changed(make_run: tuple[int, Path]) -> None:
    port, var_dir = make_run
    second_terminal = clean_env(var_dir)  # no PORT, no PUBLIC_BASE_URL
    tenant = subprocess.run(
        [str(BIN / "switchboard"), "tenants", "create", "--name", "Port", "--json"],
        cwd=ROOT, env=second_terminal, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    account = subprocess.run(
        [
            str(BIN / "switchboard"), "accounts", "create", "--json",
            "--tenant", json.loads(tenant.stdout)["id"], "--provider", "sandbox",
            "--channels", "sms", "--sender", "+12025550199",
        ],
        cwd=ROOT, env=second_terminal, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(account.stdout)["webhook_url"].startswith(f"http://127.0.0.1:{port}/")
    demo = subprocess.run(
        [str(BIN / "switchboard"), "demo", "--json", "--timeout", "60"],
        cwd=ROOT, env=second_terminal, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    statuses = {phone: m["status"] for phone, m in json.loads(demo.stdout)["messages"].items()}
    assert statuses == {
        "+12025550100": "delivered",
        "+12025550001": "failed",
        "+12025550002": "undelivered",
        "+12025550003": "delivered",
        "+12025550004": "delivered",
    }
