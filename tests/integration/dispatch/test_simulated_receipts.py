"""The sandbox plays the carrier for a dispatched batch: its receipts owed a task per batch
of sends (not a task a message), and posted signed to our own webhook over real HTTP."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from werkzeug.serving import make_server

import workers.webhooks as webhooks
from app.infra.db import Database, make_database
from app.infra.outbox import Outbox
from app.infra.ratelimit import DatabaseLimiter
from app.messaging.dispatch.batch import drain_lane
from app.messaging.dispatch.outcomes import RECEIPTS_PER_TASK
from app.messaging.dispatch.simulation import receipt_targets
from app.models import InboxItem
from config import Settings
from tests.factories import make_tenant_ctx
from tests.integration.dispatch.test_batch_dispatch import clear_lane, seed

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FailOnce:
    """The app, except that its ``n``-th webhook POST answers 503 (the first time only)."""

    def __init__(self, app: Wsgi, n: int) -> None:
        self.app, self.n, self.seen, self.lock = app, n, 0, threading.Lock()

    def __call__(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        with self.lock:
            self.seen += 1
            fail = self.seen == self.n
        if fail:
            start("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"down for a moment"]
        return self.app(environ, start)


@pytest.fixture
def webhook_server(app: Flask) -> Iterator[tuple[str, FailOnce]]:
    """The in-process app on a real port: the sandbox posts its receipts to it."""
    wrapped = FailOnce(app.wsgi_app, n=5)
    server = make_server("127.0.0.1", 0, wrapped, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", wrapped
    server.shutdown()
    thread.join(timeout=10)


def test_a_batch_owes_its_receipts_a_task_per_fifty_sends_and_each_is_posted_once(
    app: Flask,
    db: Database,
    settings: Settings,
    webhook_server: tuple[str, FailOnce],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_lane(db, settings, "normal")
    ctx = make_tenant_ctx(db)  # a sandbox account
    ids = seed(db, ctx, [f"+1202555{7100 + n:04d}" for n in range(120)])
    owed: list[list[str]] = []
    publish = Outbox.publish

    def watched(outbox: Outbox, rows: Any) -> int:  # what each commit owed, as it publishes
        owed.extend(list(r.args) for r, _ in rows if r.task_name == "sandbox_emit_receipts")
        return publish(outbox, rows)

    monkeypatch.setattr(Outbox, "publish", watched)
    big = dataclasses.replace(settings, dispatch_batch_size=200)
    assert drain_lane(db, big, DatabaseLimiter(), "normal") == (120, False)
    mine = [chunk for chunk in owed if set(chunk) <= set(ids)]
    assert sorted(len(c) for c in mine) == [20, RECEIPTS_PER_TASK, RECEIPTS_PER_TASK]
    assert sorted(m for c in mine for m in c) == sorted(ids)

    # One chunk played against the real webhook; its fifth POST (the third message's first
    # receipt) is refused: the retry carries the messages not yet done, and only those.
    base, server = webhook_server
    monkeypatch.setattr(
        webhooks, "settings", lambda: dataclasses.replace(settings, public_base_url=base)
    )
    retried: list[tuple[str, ...]] = []

    class Retry(Exception):
        pass

    def retry(*, args: list[str], exc: Exception, countdown: float) -> Exception:
        assert 0 < countdown <= 4
        retried.append(tuple(args))
        return Retry()

    task = webhooks.emit_simulated_receipts
    monkeypatch.setattr(task, "retry", retry)
    chunk = next(c for c in mine if len(c) == RECEIPTS_PER_TASK)
    with app.app_context():
        with pytest.raises(Retry):
            task.run(*chunk)
        assert retried == [tuple(chunk[2:])]
        assert task.run(*retried[0]) == 2 * (RECEIPTS_PER_TASK - 2)
    with db.session() as s:
        stored = s.scalar(
            select(func.count())
            .select_from(InboxItem)
            .where(InboxItem.account_id == ctx.account_id)
        )
    assert stored == 2 * RECEIPTS_PER_TASK  # sent and delivered for each, none twice
    assert server.seen == 2 * RECEIPTS_PER_TASK + 1  # the refused POST, then the rest once
    # A task with one id, as they were queued before batches, is still taken.
    other = next(c for c in mine if c != chunk)[0]
    with app.app_context():
        assert task.run(other) == 2


def test_the_database_away_retries_the_whole_batch(
    app: Flask, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real connection to a port nothing listens on (the database gone), not a stub.
    gone = make_database(
        dataclasses.replace(settings, database_url="postgresql+psycopg2://x@127.0.0.1:9/none")
    )
    monkeypatch.setattr(webhooks, "db", lambda: gone)
    retried: list[list[str]] = []

    class Retry(Exception):
        pass

    def retry(*, args: list[str], exc: Exception, countdown: float) -> Exception:
        assert isinstance(exc, OperationalError) and 0 < countdown <= 4
        retried.append(args)
        return Retry()

    monkeypatch.setattr(webhooks.emit_simulated_receipts, "retry", retry)
    with app.app_context(), pytest.raises(Retry):
        webhooks.emit_simulated_receipts.run("msg_a", "msg_b")
    assert retried == [["msg_a", "msg_b"]]
    gone.engine.dispose()


def test_targets_leave_out_what_there_is_nothing_to_simulate_for(
    db: Database, settings: Settings
) -> None:
    clear_lane(db, settings, "normal")
    ctx = make_tenant_ctx(db)
    ids = seed(db, ctx, ["+12025557202", "+12025557203"])
    assert drain_lane(db, settings, DatabaseLimiter(), "normal") == (2, False)
    queued = seed(db, ctx, ["+12025557201"])  # not sent yet: no provider id
    with db.session() as s:
        found = receipt_targets(s, "http://127.0.0.1:9", [*ids, "msg_gone", *queued])
    assert set(found) == set(ids)
    provider, target = found[ids[0]]
    assert provider.name == "sandbox" and target.to == "+12025557202"
    assert target.url == f"http://127.0.0.1:9/webhooks/sandbox/{ctx.account_id}"
    assert target.secret == ctx.secret
    clear_lane(db, settings, "normal")
