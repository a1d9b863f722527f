"""What goes in one CRM batch, and what waits its turn (no database, no CRM)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from app.crm.base import CrmHeldBack, CrmRetryable, SyncResult
from app.crm.batches import _in_turn, in_order


def sync(n: int, contact: str, action: str = "log_message", message: str | None = None) -> Any:
    return SimpleNamespace(id=n, contact_id=contact, action=action, message_id=message)


def test_a_contacts_syncs_go_together_in_order_but_one_activity_write_per_message() -> None:
    rows = [
        sync(1, "a", message="m1"),
        sync(2, "a", "routing", "m1"),  # the same message's routing outcome: goes along
        sync(3, "b", message="m2"),
        sync(4, "a", message="m1"),  # a later status of m1: waits for m1's activity id
        sync(5, "a", "opt_out"),  # behind it, so waits too
        sync(6, "b", "opt_out"),
    ]
    assert [s.id for s in in_order(rows)] == [1, 2, 3, 6]


def test_after_a_contacts_write_fails_its_later_ones_wait_untried() -> None:
    done = SyncResult({"id": "1", "type": "contact"})
    down = CrmRetryable("HTTP 503")
    kept = _in_turn(["a", "a", "b", "a"], [down, down, done, done])
    assert kept[0] is down and kept[2] is done
    assert isinstance(kept[1], CrmHeldBack)
    assert kept[3] is done  # it went (a success is kept: the CRM has it)
