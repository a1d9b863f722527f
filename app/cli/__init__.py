"""The ``switchboard`` console script (contract): every command takes --json.

One module per family of commands; importing them attaches them to ``main``.
"""

from app.cli import (  # noqa: F401  (registers the commands)
    campaigns,
    console,
    crm,
    ops,
    rules,
    templates,
    tenants,
    trust,
)
from app.cli.base import main

__all__ = ["main"]
