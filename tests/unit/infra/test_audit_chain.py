"""The audit chain's rules on their own: hashing, signatures, and what verify names."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.security.audit_chain import (
    GENESIS,
    HASHED,
    event_hash,
    load_public_keys,
    public_key_text,
    sign_checkpoint,
    verify_chain,
)

KEY = Ed25519PrivateKey.generate()
TRUSTED = load_public_keys([public_key_text(KEY.public_key())])


def chain(n: int, name: str = "ten_A") -> list[dict[str, Any]]:
    events, prev = [], GENESIS
    for i in range(1, n + 1):
        event: dict[str, Any] = {
            "id": i * 10,
            "seq": i,
            "chain": name,
            "actor": "cli",
            "action": "consent.opted_out",
            "target": "contact",
            "ids": [f"con_{i}"],
            "change": {"n": i},
            "at": f"2026-11-28T10:00:{i:02d}.000000Z",
            "prev_hash": prev,
        }
        event["hash"] = event_hash(prev, event)
        prev = event["hash"]
        events.append(event)
    return events


def checkpoint(
    events: list[dict[str, Any]], seq: int, key: Ed25519PrivateKey = KEY
) -> dict[str, Any]:
    at = "2026-11-28T11:00:00.000000Z"
    head = events[seq - 1]["hash"]
    kid, signature = sign_checkpoint(key, "ten_A", seq, head, at)
    return {"id": seq, "seq": seq, "hash": head, "at": at, "key_id": kid, "signature": signature}


def problems(
    events: list[dict[str, Any]], cps: list[dict[str, Any]] | None = None, **kw: Any
) -> list[tuple[str, int | None]]:
    report = verify_chain("ten_A", events, cps or [], TRUSTED, **kw)
    return sorted((p.kind, p.seq) for p in report.problems)


def test_an_intact_chain_with_a_checkpoint_holds() -> None:
    events = chain(6)
    report = verify_chain("ten_A", events, [checkpoint(events, 4)], TRUSTED, head={"seq": 6})
    assert report.ok and report.events == 6 and report.checkpoints == 1 and report.head_seq == 6


@pytest.mark.parametrize("field", HASHED)
def test_every_hashed_field_is_covered(field: str) -> None:
    events = chain(3)
    events[1][field] = (
        ["changed"]
        if isinstance(events[1][field], list)
        else {"x": 1}
        if isinstance(events[1][field], dict)
        else "changed"
    )
    assert ("edited", 2) in problems(events)


def test_a_gap_is_a_deletion_named_by_its_seqs() -> None:
    events = chain(6)
    del events[2:4]
    report = verify_chain("ten_A", events, [], TRUSTED)
    assert [(p.kind, p.seq, p.detail) for p in report.problems] == [("deleted", 3, "seq 3-4")]


def test_a_swap_is_a_reorder_not_an_edit() -> None:
    events = chain(5)
    events[1]["seq"], events[2]["seq"] = 3, 2
    events.sort(key=lambda e: e["seq"])
    kinds = {k for k, _ in problems(events)}
    assert kinds == {"reordered"}


def test_a_renumbered_deletion_is_a_broken_link() -> None:
    events = chain(4)
    del events[1]
    for e in events[1:]:
        e["seq"] -= 1
    assert problems(events) == [("broken_link", 2)]


def test_a_rewritten_prefix_is_caught_by_its_checkpoint() -> None:
    events = chain(4)
    cp = checkpoint(events, 4)
    events[0]["change"] = {"n": 99}
    prev = GENESIS
    for e in events:
        e["prev_hash"] = prev
        e["hash"] = event_hash(prev, e)
        prev = e["hash"]
    assert problems(events, [cp]) == [("edited", 4)]


def test_forged_and_foreign_checkpoints_are_named() -> None:
    events = chain(3)
    foreign = checkpoint(events, 2, Ed25519PrivateKey.generate())
    forged = {**checkpoint(events, 3), "hash": "f" * 64}
    assert problems(events, [foreign, forged]) == [
        ("forged_checkpoint", 2),
        ("forged_checkpoint", 3),
    ]


def test_a_truncated_tail_is_found_by_the_head_and_the_checkpoint() -> None:
    events = chain(5)
    cp = checkpoint(events, 5)
    assert problems(events[:3], [cp], head={"seq": 5}) == [("deleted", 4), ("deleted", 4)]


def test_a_partial_walk_starts_after_a_checkpoint() -> None:
    events = chain(5)
    report = verify_chain("ten_A", events[3:], [], TRUSTED, after=(3, events[2]["hash"]))
    assert report.ok
    assert not verify_chain("ten_A", events[3:], [], TRUSTED, after=(3, GENESIS)).ok
