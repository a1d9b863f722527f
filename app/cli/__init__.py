"""The ``switchboard`` console script (contract): every command takes --json.

One module per family of commands; importing them attaches them to ``main``.
"""

from app.cli import console, crm, ops, rules, templates, tenants  # noqa: F401  (registers the commands)
from app.cli.base import main

__all__ = ["main"]
