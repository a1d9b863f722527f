"""Prometheus metrics: what every process counts, and what /metrics reads at scrape time.

Counters and histograms are incremented where the work happens (web and workers).
With ``PROMETHEUS_MULTIPROC_DIR`` set (``make run`` sets it), prometheus-client's
multiprocess mode writes each process's samples to that directory and /metrics merges
them: the gunicorn workers' and the Celery workers' figures reach the one endpoint.
Without it, /metrics shows this process's samples only.

Transitions are counted when their transaction commits (a rolled-back one never
happened); the gauges are read from the database at scrape time (``app.reports``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.domain.ids import CROCKFORD
from app.models import MessageEvent

# Our metrics live in their own registry: the default one also carries the process
# collectors, which multiprocess mode cannot merge.
REGISTRY = CollectorRegistry(auto_describe=True)

INTENTS = Counter(
    "switchboard_intents",
    "Send intents answered by POST /v1/messages, by result.",
    ["result"],
    registry=REGISTRY,
)
TRANSITIONS = Counter(
    "switchboard_transitions",
    "Message state transitions applied (committed), by target status and reason.",
    ["status", "reason"],
    registry=REGISTRY,
)
PROVIDER_CALLS = Counter(
    "switchboard_provider_calls",
    "Send calls to a provider, by provider and outcome (accepted, or the error's kind).",
    ["provider", "outcome"],
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "switchboard_webhooks",
    "Provider webhooks received, by provider and outcome (the HTTP answer's class).",
    ["provider", "outcome"],
    registry=REGISTRY,
)
CRM_CALLS = Counter(
    "switchboard_crm_calls",
    "HTTP calls to a CRM, by CRM kind and outcome (the answer's status class, or the "
    "transport failure).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 7200, 21600)
INTENT_TO_ACCEPTED = Histogram(
    "switchboard_intent_to_accepted_seconds",
    "From the send intent (the message's creation) to the provider's acceptance.",
    buckets=_SECONDS,
    registry=REGISTRY,
)
ACCEPTED_TO_DELIVERED = Histogram(
    "switchboard_accepted_to_delivered_seconds",
    "From the provider's acceptance to the delivery receipt.",
    buckets=_SECONDS,
    registry=REGISTRY,
)

_PENDING = "switchboard.metrics.transitions"
_ALIKE = "switchboard.metrics.alike"
_DECODE = {c: i for i, c in enumerate(CROCKFORD)}


def created_at_of(message_id: str) -> datetime | None:
    """When a message was created, read from its id (48 bits of milliseconds lead it)."""
    body = message_id.partition("_")[2]
    if len(body) != 26:
        return None
    value = 0
    for char in body[:10]:  # the top 50 of its 130 bits: the 48 of the time (and 2 zeros)
        if char not in _DECODE:
            return None
        value = (value << 5) | _DECODE[char]
    return datetime.fromtimestamp(value / 1000, UTC)


@dataclass(frozen=True)
class Applied:
    """One applied transition, as the metrics count it."""

    status: str
    reason: str | None
    message_id: str
    at: datetime
    # For a delivery: when the provider accepted the message (None: unknown).
    accepted_at: datetime | None = None


def count_transitions(session: Session, moves: Iterable[Applied]) -> None:
    """Count these applied transitions when ``session`` commits (never if it rolls back)."""
    session.info.setdefault(_PENDING, []).extend(moves)


def count_alike(session: Session, status: str, reason: str | None, count: int) -> None:
    """Count ``count`` applied transitions alike (to ``status`` for ``reason``) when
    ``session`` commits: a batch of new messages, counted without an object each. Only for
    statuses that feed no latency histogram (not ``accepted`` nor ``delivered``)."""
    if status in ("accepted", "delivered"):
        raise ValueError(f"{status} is timed per message: count it with count_transitions")
    if count:
        session.info.setdefault(_ALIKE, []).append((status, reason or "", count))


def count_now(moves: Iterable[Applied]) -> None:
    """Count transitions already committed (a path that commits outside a Session)."""
    for move in moves:
        TRANSITIONS.labels(move.status, move.reason or "").inc()
        if move.status == "accepted":
            created = created_at_of(move.message_id)
            if created is not None:
                INTENT_TO_ACCEPTED.observe(max(0.0, (move.at - created).total_seconds()))
        elif move.status == "delivered" and move.accepted_at is not None:
            ACCEPTED_TO_DELIVERED.observe(max(0.0, (move.at - move.accepted_at).total_seconds()))


def accepted_times(session: Session, message_ids: Collection[str]) -> dict[str, datetime]:
    """When the provider accepted each of these messages (one query, by the events)."""
    if not message_ids:
        return {}
    rows = session.execute(
        select(MessageEvent.message_id, func.min(MessageEvent.created_at))
        .where(
            MessageEvent.message_id.in_(sorted(message_ids)),
            MessageEvent.to_status == "accepted",
            MessageEvent.outcome == "applied",
        )
        .group_by(MessageEvent.message_id)
    ).all()
    return {message_id: at for message_id, at in rows}


def _flush(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        count_now(pending)
    for status, reason, count in session.info.pop(_ALIKE, ()):
        TRANSITIONS.labels(status, reason).inc(count)


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_ALIKE, None)


def install_metrics_hook(factory: sessionmaker[Session]) -> None:
    """Call once per sessionmaker (the app factory does)."""
    event.listen(factory, "after_commit", _flush)
    event.listen(factory, "after_rollback", _forget)
