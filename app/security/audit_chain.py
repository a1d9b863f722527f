"""The audit chain's rules: canonical form, hashing, checkpoint signatures, verification.

This module imports nothing of Switchboard's: ``switchboard audit export`` copies it,
as ``verify.py``, beside the exported chain, so an auditor can check the export with
Python and the ``cryptography`` package alone::

    python verify.py EXPORT_DIR

Each chain (one per tenant, and ``system`` for what no tenant owns) is a sequence of
events. An event's hash is SHA-256 over the previous event's hash and the event's
canonical JSON; its position is proven by that link, not by its ``seq`` column. A
checkpoint signs (Ed25519) a chain's head: its seq and hash at a moment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = "0" * 64
# The event fields the hash covers (with the previous hash). Not ``id`` nor ``seq``: a
# row's place is proven by its link, so a reorder shows as a reorder, not as an edit.
HASHED = ("chain", "actor", "action", "target", "ids", "change", "at")


def canonical(value: Any) -> str:
    """One JSON text per value: sorted keys, no spaces, ASCII only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def timestamp(at: datetime) -> str:
    """A UTC instant as the chain writes it (microseconds, ``Z``)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hashed_body(event: Mapping[str, Any]) -> str:
    """What an event's hash covers, besides the previous hash."""
    return canonical({name: event[name] for name in HASHED})


def event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    return hashlib.sha256(f"{prev_hash}\n{hashed_body(event)}".encode()).hexdigest()


def checkpoint_message(chain: str, seq: int, head: str, at: str) -> bytes:
    return canonical({"chain": chain, "seq": seq, "hash": head, "at": at}).encode()


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode()


def key_id(public_text: str) -> str:
    return hashlib.sha256(public_text.encode()).hexdigest()[:16]


def sign_checkpoint(
    private: Ed25519PrivateKey, chain: str, seq: int, head: str, at: str
) -> tuple[str, str]:
    """(key id, signature) for a checkpoint of ``chain`` at ``seq``."""
    signature = private.sign(checkpoint_message(chain, seq, head, at))
    kid = key_id(public_key_text(private.public_key()))
    return kid, base64.urlsafe_b64encode(signature).decode()


def load_public_keys(texts: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    """Key id -> key, from url-safe base64 raw Ed25519 public keys."""
    keys = {}
    for text in texts:
        raw = base64.urlsafe_b64decode(text.encode())
        keys[key_id(text)] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a chain: ``kind`` is ``edited``, ``deleted``, ``reordered``,
    ``broken_link`` or ``forged_checkpoint``."""

    chain: str
    kind: str
    seq: int | None
    detail: str
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "kind": self.kind,
            "seq": self.seq,
            "id": self.id,
            "detail": self.detail,
        }


@dataclass
class ChainReport:
    chain: str
    events: int = 0
    checkpoints: int = 0
    head_seq: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "ok": self.ok,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "head_seq": self.head_seq,
            "problems": [p.as_dict() for p in self.problems],
        }


def verify_chain(
    chain: str,
    events: Iterable[Mapping[str, Any]],
    checkpoints: Iterable[Mapping[str, Any]],
    public_keys: Mapping[str, Ed25519PublicKey],
    head: Mapping[str, Any] | None = None,
    after: tuple[int, str] = (0, GENESIS),
) -> ChainReport:
    """Check one chain. ``events`` come in ``seq`` order, each with ``id``, ``seq``,
    ``prev_hash``, ``hash`` and the HASHED fields; ``checkpoints`` each with ``id``,
    ``seq``, ``hash``, ``at``, ``key_id`` and ``signature``; ``head`` (optional) is the
    writers' own ``{seq, hash}``. ``after`` is the seq and hash of the event just before
    the first given (to check only what follows a checkpoint).

    Names each problem: an event whose content no longer matches its hash (``edited``);
    seqs that are missing (``deleted``); an event linked to one that is not just before it,
    or whose id is out of order (``reordered``); a link to nothing in the chain
    (``broken_link``: an earlier row was rewritten with a recomputed hash, or removed and
    renumbered); a checkpoint no known key signed (``forged_checkpoint``); and a chain that
    no longer matches what a genuine checkpoint signed (``edited``, the whole prefix).
    """
    report = ChainReport(chain)
    seq_of: dict[str, int] = {}
    hash_at: dict[int, str] = {}
    unlinked: list[tuple[int, int, str]] = []
    prev_seq, prev_hash = after
    prev_id = 0
    for event in events:
        seq, row_id = int(event["seq"]), int(event["id"])
        report.events += 1
        if event_hash(event["prev_hash"], event) != event["hash"]:
            report.problems.append(
                Problem(chain, "edited", seq, "its content does not match its hash", row_id)
            )
        if seq > prev_seq + 1:
            missing = f"{prev_seq + 1}" if seq == prev_seq + 2 else f"{prev_seq + 1}-{seq - 1}"
            report.problems.append(Problem(chain, "deleted", prev_seq + 1, f"seq {missing}"))
        elif event["prev_hash"] != prev_hash:
            unlinked.append((seq, row_id, event["prev_hash"]))
        if row_id < prev_id:
            report.problems.append(
                Problem(chain, "reordered", seq, "its id is older than the one before", row_id)
            )
        seq_of[event["hash"]] = seq
        hash_at[seq] = event["hash"]
        prev_hash, prev_seq, prev_id = event["hash"], seq, row_id
    report.head_seq = prev_seq
    for seq, row_id, linked in unlinked:
        if linked in seq_of:
            detail = f"it follows seq {seq_of[linked]}, not seq {seq - 1}"
            report.problems.append(Problem(chain, "reordered", seq, detail, row_id))
        elif linked == GENESIS:
            report.problems.append(
                Problem(chain, "reordered", seq, "it was the first event", row_id)
            )
        else:
            detail = "it follows an event that is no longer in the chain"
            report.problems.append(Problem(chain, "broken_link", seq, detail, row_id))
    if head is not None and int(head["seq"]) > prev_seq:
        report.problems.append(
            Problem(chain, "deleted", prev_seq + 1, f"seq {prev_seq + 1}-{head['seq']} (the tail)")
        )
    _check_checkpoints(report, checkpoints, public_keys, hash_at, prev_seq)
    return report


def _check_checkpoints(
    report: ChainReport,
    checkpoints: Iterable[Mapping[str, Any]],
    public_keys: Mapping[str, Ed25519PublicKey],
    hash_at: Mapping[int, str],
    last_seq: int,
) -> None:
    chain = report.chain
    for cp in checkpoints:
        report.checkpoints += 1
        seq, cp_id = int(cp["seq"]), int(cp["id"])
        key = public_keys.get(cp["key_id"])
        message = checkpoint_message(chain, seq, cp["hash"], cp["at"])
        try:
            if key is None:
                raise InvalidSignature
            key.verify(base64.urlsafe_b64decode(cp["signature"].encode()), message)
        except (InvalidSignature, ValueError):
            why = "unknown signing key" if key is None else "its signature does not verify"
            report.problems.append(
                Problem(chain, "forged_checkpoint", seq, f"checkpoint {cp_id}: {why}", cp_id)
            )
            continue
        if seq > last_seq:
            report.problems.append(
                Problem(chain, "deleted", last_seq + 1, f"checkpoint {cp_id} signed seq {seq}")
            )
        elif seq in hash_at and hash_at[seq] != cp["hash"]:
            report.problems.append(
                Problem(
                    chain,
                    "edited",
                    seq,
                    f"the chain up to here differs from what checkpoint {cp_id} signed",
                )
            )


def verify_export(directory: Path) -> list[ChainReport]:
    """Verify an export written by ``switchboard audit export``."""
    keys = load_public_keys(json.loads((directory / "public_keys.json").read_text()))
    events: dict[str, list[dict[str, Any]]] = {}
    for line in (directory / "events.jsonl").read_text().splitlines():
        if line.strip():
            event = json.loads(line)
            events.setdefault(event["chain"], []).append(event)
    checkpoints: dict[str, list[dict[str, Any]]] = {}
    for line in (directory / "checkpoints.jsonl").read_text().splitlines():
        if line.strip():
            cp = json.loads(line)
            checkpoints.setdefault(cp["chain"], []).append(cp)
    reports = []
    for chain in sorted(set(events) | set(checkpoints)):
        rows = sorted(events.get(chain, []), key=lambda e: int(e["seq"]))
        reports.append(verify_chain(chain, rows, checkpoints.get(chain, []), keys))
    return reports


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python verify.py EXPORT_DIR", file=sys.stderr)
        return 2
    reports = verify_export(Path(argv[1]))
    for report in reports:
        state = "holds" if report.ok else "BROKEN"
        print(f"{report.chain}: {state} ({report.events} events, {report.checkpoints} checkpoints)")
        for problem in report.problems:
            print(f"  {problem.kind} at seq {problem.seq}: {problem.detail}")
    return 0 if reports and all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
