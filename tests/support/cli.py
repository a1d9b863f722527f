"""Running the ``switchboard`` console script as a subprocess against the test backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.backends import ROOT, Backend

__all__ = ["ROOT", "SWITCHBOARD", "run", "run_json"]

SWITCHBOARD = str(Path(sys.executable).parent / "switchboard")


def run(backend: Backend, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**backend.process_env(), "PUBLIC_BASE_URL": "https://sb.example.com"}
    proc = subprocess.run(
        [SWITCHBOARD, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def run_json(backend: Backend, command: str) -> dict[str, Any]:
    out = run(backend, *command.split(), "--json").stdout
    data: dict[str, Any] = json.loads(out)  # exactly one JSON object on stdout
    return data
