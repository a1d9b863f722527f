"""What every part of the benchmark shares: paths, the set-up error, progress messages."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
GUNICORN_CONFIG = "config/gunicorn.py"


class SetupError(RuntimeError):
    """The benchmark could not prepare its database, Redis, accounts or servers."""


def say(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the table or the JSON document."""
    print(message, file=sys.stderr, flush=True)


def find_executable(name: str) -> str:
    """``name`` next to this interpreter (a virtualenv's bin), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SetupError(f"cannot find the {name!r} executable next to {sys.executable} or on PATH")
    return found
