"""Which queued messages of a lane a dispatch batch takes: shared fairly between tenants.

A lane is one queue, but one tenant's flood must not delay another tenant's message. So a
batch is shared between the tenants that have due work in the lane, in proportion to
their ``dispatch_weight`` (default 1; ``switchboard tenants update --dispatch-weight``),
each getting at least one place: a weighted round robin whose quantum is the batch. A
tenant that leaves part of its share unused leaves it to the next batch, which the drain
claims at once. Within a tenant, messages go oldest first.

Locking: the chosen rows are locked ``FOR UPDATE SKIP LOCKED`` in the same statement that
picks them (Postgres), so concurrent batches never wait for, nor take, each other's rows.
SQLite has no row locks: its IMMEDIATE transaction serializes claims instead.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, bindparam, select, text
from sqlalchemy.orm import Session

from app.domain.statuses import Status
from app.models import Message

# More tenants than this with work in one lane take turns across batches (a rotating window).
MAX_TENANTS = 500

# Loose index scan over ix_messages_queued_lane: one index probe per tenant with queued
# work, however many messages each has queued.
_TENANTS_WITH_WORK = text(
    """
    WITH RECURSIVE t(tenant_id) AS (
        SELECT min(tenant_id) FROM messages WHERE status = 'queued' AND priority = :lane
        UNION ALL
        SELECT (
            SELECT min(m.tenant_id) FROM messages m
            WHERE m.status = 'queued' AND m.priority = :lane AND m.tenant_id > t.tenant_id
        )
        FROM t WHERE t.tenant_id IS NOT NULL
    )
    SELECT t.tenant_id, tenants.dispatch_weight
    FROM t JOIN tenants ON tenants.id = t.tenant_id
    LIMIT :limit
    """
)

# Each tenant's share, locked in the statement that picks it. The shares come as two arrays,
# so the statement has one shape (and one cached plan) whatever the number of tenants.
_FAIR_CLAIM = text(
    """
    SELECT picked.id
    FROM unnest(CAST(:tenants AS varchar[]), CAST(:quotas AS integer[])) AS share(tenant_id, quota)
    CROSS JOIN LATERAL (
        SELECT m.id FROM messages m
        WHERE m.status = 'queued' AND m.priority = :lane AND m.tenant_id = share.tenant_id
        ORDER BY m.id
        LIMIT share.quota
        FOR UPDATE SKIP LOCKED
    ) AS picked
    """
)

_turn = itertools.count()


def tenants_with_work(session: Session, lane: str) -> list[tuple[str, int]]:
    """(tenant id, weight) for every tenant with queued messages in ``lane``."""
    rows = session.execute(_TENANTS_WITH_WORK, {"lane": lane, "limit": MAX_TENANTS})
    return [(str(t), max(1, int(w or 1))) for t, w in rows]


def shares(tenants: Sequence[tuple[str, int]], size: int, turn: int) -> list[tuple[str, int]]:
    """Each tenant's places in a batch of ``size``: by weight, at least one each.

    With more tenants than places, a window starting at ``turn`` takes them in turn.
    """
    if not tenants or size <= 0:
        return []
    start = turn % len(tenants)
    ordered = list(tenants[start:]) + list(tenants[:start])
    if len(ordered) > size:
        ordered = ordered[:size]
    total = sum(w for _, w in ordered)
    return [(tenant, max(1, math.floor(size * w / total))) for tenant, w in ordered]


def claim_fair(session: Session, lane: str, size: int) -> list[str]:
    """Lock and return up to about ``size`` queued ids of ``lane``, shared between tenants."""
    allotted = shares(tenants_with_work(session, lane), size, next(_turn))
    if not allotted:
        return []
    if session.get_bind().dialect.name != "postgresql":
        ids: list[str] = []
        for tenant_id, quota in allotted:
            query = _queued(lane).where(Message.tenant_id == tenant_id).limit(quota)
            ids += [str(i) for i in session.scalars(query)]
        return ids
    params = {
        "lane": lane,
        "tenants": [t for t, _ in allotted],
        "quotas": [q for _, q in allotted],
    }
    return [str(i) for i in session.scalars(_FAIR_CLAIM, params)]


def claim_fifo(session: Session, lane: str, size: int) -> list[str]:
    """Oldest first whatever the tenant: the baseline the fairness benchmark compares with."""
    return list(session.scalars(_queued(lane).order_by(None).order_by(Message.id).limit(size)))


def _queued(lane: str) -> Select[Any]:
    return (
        select(Message.id)
        .where(Message.status == Status.QUEUED.value, Message.priority == bindparam("lane", lane))
        .order_by(Message.id)
        .with_for_update(skip_locked=True)
    )
