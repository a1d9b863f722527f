"""Logging set-up shared by web and workers: one line per record, with structured extras."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

REDACTED = "[redacted]"
PHONE = re.compile(r"\+?\d[\d\s().-]{7,}\d")
# SQLAlchemy error messages quote the bound parameters, which may hold message data.
SQL_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\s*(\(Background|$))", re.DOTALL)
# Postgres DETAIL lines quote row and key values ("Failing row contains (...)").
PG_DETAIL = re.compile(r"DETAIL:[^\n]*")


def redact_text(text: str) -> str:
    """Remove what may be PII from free text: phone numbers, SQL parameters, row values."""
    text = SQL_PARAMETERS.sub(f"[parameters: {REDACTED}]", text)
    text = PG_DETAIL.sub(f"DETAIL: {REDACTED}", text)
    return PHONE.sub(REDACTED, text)


# "data" is what Celery attaches to its own task-trace records; it repeats the message.
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "data"}


class KeyValueFormatter(logging.Formatter):
    """Render ``extra={...}`` fields after the message as JSON, so logs stay greppable.

    Exception text is redacted: database errors quote the values they failed on.
    """

    def formatException(self, ei: Any) -> str:
        return redact_text(super().formatException(ei))

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras: dict[str, Any] = {
            k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")
        }
        if extras:
            return f"{base} {json.dumps(extras, default=str, sort_keys=True)}"
        return base


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if getattr(root, "_switchboard_configured", False):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root._switchboard_configured = True  # type: ignore[attr-defined]
