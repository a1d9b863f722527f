"""Exception text in our logs is redacted: database errors quote the values they failed on."""

from __future__ import annotations

import logging
import sys

from config.logging import KeyValueFormatter


def test_exception_text_is_redacted_but_the_timestamp_and_message_stay() -> None:
    formatter = KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        raise RuntimeError(
            "null value in column\nDETAIL:  Failing row contains (hello there, +12025550100).\n"
            "[SQL: INSERT INTO t VALUES (%(a)s)]\n[parameters: {'a': 'meet at noon'}]"
        )
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "send failed", None, None)
        record.exc_info = sys.exc_info()
        record.message_id = "msg_01ABC"
    line = formatter.format(record)
    for secret in ("hello there", "+12025550100", "meet at noon"):
        assert secret not in line
    assert "send failed" in line and "RuntimeError" in line and '"message_id": "msg_01ABC"' in line
    assert line[:4].isdigit() and "[SQL: INSERT INTO t VALUES (%(a)s)]" in line
