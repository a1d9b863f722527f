"""Recording a provider's answer rides out a short database outage (the send is not repeated)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from app.messaging.dispatch import batch as dispatch
from app.providers.base import SendResult


def flaky(failures: int, calls: list[int]) -> Any:
    def record_outcome(*_args: Any) -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise OperationalError("UPDATE messages", {}, Exception("server closed the connection"))
        return "accepted"

    return record_outcome


def test_outcome_is_recorded_after_transient_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(dispatch, "record_outcome", flaky(2, calls))
    monkeypatch.setattr(dispatch.time, "sleep", lambda _s: None)
    result = dispatch._record_with_retries(None, None, "msg_x", SendResult("P1"), "sandbox")  # type: ignore[arg-type]
    assert (result, len(calls)) == ("accepted", 3)


def test_a_long_outage_gives_up_and_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    slept: list[float] = []
    monkeypatch.setattr(dispatch, "record_outcome", flaky(99, calls))
    monkeypatch.setattr(dispatch.time, "sleep", slept.append)
    with pytest.raises(OperationalError):
        dispatch._record_with_retries(None, None, "msg_x", SendResult("P1"), "sandbox")  # type: ignore[arg-type]
    assert len(calls) == len(dispatch.RECORD_RETRY_DELAYS) + 1
    assert slept == list(dispatch.RECORD_RETRY_DELAYS)
