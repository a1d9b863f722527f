"""Sampling a server under load with py-spy, and reading the samples back as a short summary.

``--profile DIR`` on the web benchmark records each target's measured phase
(gunicorn master and workers, ``--subprocesses``) into ``DIR/<target>.txt`` in
py-spy's collapsed-stack format, and prints where the samples fell: by the
project's own frames and by the libraries underneath them.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from scripts.bench.lib.common import say

# Frames are "function (package/module.py:line)", the path relative to sys.path:
# the first part names the library, or the project's own package.
_PROJECT = ("app", "workers", "config", "scripts")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"  # the virtualenv's, when not on PATH
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def recording(pid: int, out: Path, seconds: float) -> Iterator[None]:
    """Sample ``pid`` and its children for ``seconds`` (or until the block ends)."""
    exe = py_spy()
    if exe is None:
        say("  py-spy is not installed: no profile")
        yield
        return
    cmd = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--format",
        "raw",
        "--rate",
        "200",
        "--duration",
        str(max(1, round(seconds))),
        "--nonblocking",
        "--gil",  # only the thread holding the GIL: CPU, not threads queued for it
        "--output",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        try:
            proc.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _bucket(frame: str) -> str:
    location = frame.rpartition("(")[2].split(":")[0]
    first = location.split("/")[0] if "/" in location else "stdlib"
    if first in _PROJECT:
        return location.removesuffix(".py").replace("/", ".")
    return first


def _idle(frames: list[str]) -> bool:
    """A worker thread waiting for work, not serving it."""
    leaf = frames[-1]
    return any(w in leaf for w in ("select", "poll", "wait", "_wait_for_tstate_lock", "accept"))


def summarize(path: Path, top: int = 8) -> list[str]:
    """Where busy samples fell: the library of the innermost frame, and project functions."""
    if not path.exists():
        return [f"no samples in {path}"]
    by_leaf: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames or _idle(frames):
            continue
        total += count
        leaf = _bucket(frames[-1])
        by_leaf["project" if leaf.split(".")[0] in _PROJECT else leaf] += count
        functions = set()
        for frame in frames:
            bucket = _bucket(frame)
            if bucket.split(".")[0] in _PROJECT:
                functions.add(f"{bucket}:{frame.split(' (')[0]}")
        for function in functions:
            by_function[function] += count
    if total == 0:
        return [f"no busy samples in {path}"]
    lines = [f"{total} busy samples; own time by library (innermost frame):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_leaf.most_common(top)]
    lines.append("project functions (inclusive):")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_function.most_common(top * 2)]
    return lines
