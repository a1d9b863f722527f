"""`switchboard demo` against the running pipeline: what a newcomer sees after `make run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.backends import ROOT
from tests.support.processes import Pipeline


def test_demo_sends_and_every_message_settles_as_the_sandbox_says(pipeline: Pipeline) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "switchboard"), "demo", "--json", "--timeout", "60"],
        cwd=ROOT,
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + pipeline.logs()
    result = json.loads(proc.stdout)
    statuses = {phone: m["status"] for phone, m in result["messages"].items()}
    assert statuses == {
        "+12025550100": "delivered",
        "+12025550001": "failed",
        "+12025550002": "undelivered",
        "+12025550003": "delivered",
        "+12025550004": "delivered",
    }
