"""The transactional outbox.

``enqueue`` writes an outbox row in the caller's transaction. Once that
transaction commits, the task is published. If the broker is down the row
stays, and the ``relay_outbox`` beat job publishes it later. Tasks are
idempotent, so a row published twice (a relay racing the hook) is harmless.

The rows the broker took are deleted in batches by a background thread a
fraction of a second later (``PublishedRows``), not one DELETE and COMMIT per
request: a crash in between only leaves rows the relay publishes again. The
request hot paths do not publish at all: they hand their committed rows to a
publisher thread (``Handoff``), so that a request never waits on the broker.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from celery import Celery
from sqlalchemy import delete, event, inspect, select
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.infra.db import Database
from app.infra.wakes import Wakes
from app.models import OutboxRow

log = logging.getLogger(__name__)
_PENDING = "switchboard.outbox.pending"


def enqueue(
    session: Session, task_name: str, args: Sequence[str], queue: str, wake: str | None = None
) -> OutboxRow:
    """Owe a task: it is published only if, and after, this transaction commits.

    ``wake`` makes it a coalescing wake-up (``app.infra.wakes``): not published while another
    with the same key and queue waits. Rows the relay publishes later always go.
    """
    row = OutboxRow(task_name=task_name, queue=queue, args=list(args))
    session.add(row)
    session.info.setdefault(_PENDING, []).append((row, wake))
    return row


DELETE_CHUNK = 1000


class PublishedRows:
    """Ids of outbox rows the broker took, deleted together every ``interval`` seconds.

    One per process and database: a forked child (a prefork worker) starts afresh.
    A failed delete keeps the ids for the next round (up to ``limit``; past it they
    are dropped, and the relay republishes those rows, harmlessly).
    """

    def __init__(self, db: Database, interval: float = 0.2, limit: int = 100_000) -> None:
        self.db = db
        self.interval = interval
        self.limit = limit
        self._reset()
        atexit.register(self.flush, quiet=True)

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._ids: list[int] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0

    def add(self, ids: Sequence[int]) -> None:
        if self._pid != os.getpid():
            self._reset()
        with self._lock:
            self._ids.extend(ids)
            if len(self._ids) > self.limit:
                del self._ids[: len(self._ids) - self.limit]
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="outbox-deleter", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            # After a failed delete, wait longer each time (up to 5 s) while the database is away.
            self._wake.wait(min(5.0, self.interval * 2**self._failures))
            self._wake.clear()
            self.flush()

    def flush(self, quiet: bool = False) -> int:
        """Delete the rows published so far; how many ids were handed to the DELETE."""
        if self._pid != os.getpid():
            return 0
        with self._lock:
            ids, self._ids = self._ids, []
        if not ids:
            return 0
        try:
            with self.db.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Losing this delete in a crash only means a harmless republish: no fsync.
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                for start in range(0, len(ids), DELETE_CHUNK):  # SQLite caps bound variables
                    chunk = ids[start : start + DELETE_CHUNK]
                    conn.execute(delete(OutboxRow).where(OutboxRow.id.in_(chunk)))
        except Exception as exc:  # published but not deleted: retried next round
            if not quiet and self._failures == 0:
                log.warning("outbox rows published but not deleted", extra={"error": str(exc)})
            self._failures = min(self._failures + 1, 8)
            with self._lock:
                self._ids[:0] = ids[-self.limit :]
            return 0
        self._failures = 0
        return len(ids)


class Publishable(Protocol):
    """An outbox row as far as publishing it goes: ``OutboxRow``, or a ``Written`` row."""

    @property
    def id(self) -> int: ...
    @property
    def task_name(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def args(self) -> list[Any]: ...


@dataclass(frozen=True)
class Written:
    """An outbox row written by a statement of its own, outside the ORM (a hot path)."""

    id: int
    task_name: str
    queue: str
    args: list[Any]


def publish_rows(
    celery: Celery,
    published_rows: PublishedRows,
    rows: Sequence[tuple[Publishable, str | None]],
    wakes: Wakes | None = None,
) -> int:
    """Publish rows in order, and owe the deletion of the ones the broker took.

    A coalescing wake (``app.infra.wakes``) goes once per key in a batch, and not at all while
    one with its key waits in the broker: that one does the work of every row committed
    before it runs, and every row here is. The batch's flags are asked in one round trip.
    Stops at the first failure: the rest stay for the relay."""
    keys = list(dict.fromkeys((row.queue, wake) for row, wake in rows if wake is not None))
    owed = set(keys) if wakes is None else wakes.to_publish(keys)
    published: list[int] = []
    try:
        for row, wake in rows:
            key = None if wake is None else (row.queue, wake)
            if key is None or key in owed:
                celery.send_task(row.task_name, args=row.args, queue=row.queue)
                owed.discard(key)  # the batch's later rows with this key are covered
            published.append(row.id)
    except Exception as exc:  # any broker failure: the relay will try again
        if wakes is not None:
            for queue, wake in owed:  # flags set for wakes that never went: let the next go
                wakes.clear(queue, wake)
        log.warning(
            "outbox publish failed; rows left for the relay",
            extra={"error": type(exc).__name__, "left": len(rows) - len(published)},
        )
    if published:
        published_rows.add(published)
    return len(published)


Row = tuple[Publishable, str | None]


class Handoff:
    """Committed rows published from a thread of their own: the request that wrote them
    answers without waiting on the broker or on Redis.

    Rows handed over while the thread was busy go out together (``publish_rows``): one
    round trip for their wakes' flags, and one wake per key. A row never published (the
    process died first, the broker is down) stays in the outbox, and the relay publishes
    it after ``OUTBOX_RELAY_GRACE``. One per process: a forked child starts afresh.
    """

    def __init__(self, publish: Callable[[Sequence[Row]], int], limit: int = 100_000) -> None:
        self._publish = publish
        self.limit = limit
        self._reset()
        atexit.register(self.flush)

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._rows: list[Row] = []
        self._busy = 0
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, rows: Sequence[Row]) -> None:
        if self._pid != os.getpid():
            self._reset()
        with self._lock:
            self._rows.extend(rows)
            if len(self._rows) > self.limit:  # the broker is far behind: the relay has them
                dropped = len(self._rows) - self.limit
                del self._rows[:dropped]
                log.warning("outbox handoff full; rows left for the relay", extra={"left": dropped})
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="outbox-publisher", daemon=True
                )
                self._thread.start()
        self._ready.set()

    def _run(self) -> None:
        while True:
            self._ready.wait()
            self._ready.clear()
            self.flush()

    def flush(self) -> int:
        """Publish what was handed over so far; how many rows the broker took."""
        if self._pid != os.getpid():
            return 0
        with self._lock:
            rows, self._rows = self._rows, []
            if not rows:
                return 0
            self._busy += 1
        try:
            return self._publish(rows)
        except Exception:  # never lose the thread: the rows stay for the relay
            log.exception("outbox handoff failed; rows left for the relay")
            return 0
        finally:
            with self._lock:
                self._busy -= 1
                self._settled.notify_all()

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until every row handed over so far was tried; False on timeout."""
        if self._pid != os.getpid():
            return True
        with self._settled:
            return self._settled.wait_for(lambda: not self._rows and not self._busy, timeout)


@dataclass(frozen=True)
class Outbox:
    """Publishes committed outbox rows; one per process and database (``install_outbox``)."""

    celery: Celery
    published_rows: PublishedRows
    wakes: Wakes | None = None
    handoff: Handoff = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "handoff", Handoff(self.publish))

    def publish(self, rows: Sequence[Row]) -> int:
        """Publish rows already committed (``publish_rows``); the relay covers a failure."""
        return publish_rows(self.celery, self.published_rows, rows, self.wakes)

    def publish_soon(self, rows: Sequence[Row]) -> None:
        """Hand committed rows to this process's publisher thread (the request hot paths)."""
        self.handoff.add(rows)


def install_outbox(db: Database, celery: Celery, wakes: Wakes | None = None) -> Outbox:
    """Publish a session's outbox rows after it commits; forget them if it rolls back.

    Returns the publisher, for the hot paths that write their rows outside a Session."""
    outbox = Outbox(celery, PublishedRows(db), wakes)

    def after_commit(session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint was released: the rows are not committed until the outer one
        rows = session.info.pop(_PENDING, None)
        if rows:
            outbox.publish(rows)

    def after_rollback(session: Session) -> None:
        if session.in_nested_transaction():
            # A savepoint rolled back: forget only the rows written inside it.
            pending = session.info.get(_PENDING, [])
            session.info[_PENDING] = [(r, w) for r, w in pending if inspect(r).persistent]
            return
        session.info.pop(_PENDING, None)

    event.listen(db.sessionmaker, "after_commit", after_commit)
    event.listen(db.sessionmaker, "after_rollback", after_rollback)
    return outbox


def relay(celery: Celery, db: Database, grace: timedelta, batch: int = 500) -> int:
    """Publish rows left behind (older than ``grace``). Safe when two relays overlap.

    Locking: rows are claimed with ``FOR UPDATE SKIP LOCKED`` on Postgres; on
    SQLite the IMMEDIATE transaction serializes relays.
    """
    cutoff = utcnow() - grace
    total = 0
    while True:
        with db.session() as session:
            rows = list(
                session.scalars(
                    select(OutboxRow)
                    .where(OutboxRow.created_at <= cutoff)
                    .order_by(OutboxRow.id)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            )
            if not rows:
                return total
            sent: list[int] = []
            for row in rows:
                try:
                    celery.send_task(row.task_name, args=row.args, queue=row.queue)
                except Exception as exc:
                    log.warning("outbox relay: broker unavailable", extra={"error": str(exc)})
                    for r in rows[len(sent) :]:
                        r.attempts += 1
                    session.execute(delete(OutboxRow).where(OutboxRow.id.in_(sent)))
                    return total + len(sent)
                sent.append(row.id)
            session.execute(delete(OutboxRow).where(OutboxRow.id.in_(sent)))
            total += len(sent)
            if len(rows) < batch:
                return total
