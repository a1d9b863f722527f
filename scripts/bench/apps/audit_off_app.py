"""The web app with audit writes turned off: the baseline of scripts/bench/audit.py only.

Not a setting of Switchboard's (the chain cannot be switched off); the benchmark serves
this factory beside the real one to measure what the audit writes cost.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from app import create_app as real_create_app
from app.security import audit


def create_app() -> Flask:
    def skip(*_args: Any, **_kwargs: Any) -> None:
        return None

    audit.append = skip  # type: ignore[assignment]
    return real_create_app()
