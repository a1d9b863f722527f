"""Webhook dedupe outlives providers' retries (72 h at least), then beat purges processed rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from sqlalchemy import select, update

from app.infra.db import Database
from app.messaging.receipts.inbox import purge_processed, store_callback
from app.models import ChannelAccount, InboxItem
from config import ConfigError, Settings, load_settings
from tests.factories import TenantCtx


def store(db: Database, ctx: TenantCtx, key: str, processed: bool) -> bool:
    with db.session() as s:
        account = s.get(ChannelAccount, ctx.account_id)
        assert account is not None
        new = store_callback(s, account, "sandbox", key, "{}")
        if processed:
            s.flush()
            s.execute(
                update(InboxItem)
                .where(InboxItem.account_id == ctx.account_id, InboxItem.dedupe_key == key)
                .values(processed_at=datetime.now(UTC), result="status:applied")
            )
    return new


def keys(db: Database, ctx: TenantCtx) -> set[str]:
    with db.session() as s:
        found = s.scalars(
            select(InboxItem.dedupe_key).where(InboxItem.account_id == ctx.account_id)
        )
        return set(found)


def test_processed_rows_stay_duplicates_for_the_retention_then_are_purged(
    db: Database, ctx: TenantCtx, settings: Settings
) -> None:
    retention = timedelta(hours=settings.webhook_dedupe_hours)
    start = datetime.now(UTC)
    with freeze_time(start):
        assert store(db, ctx, "old", processed=True)
        assert store(db, ctx, "parked", processed=False)
    with freeze_time(start + timedelta(hours=72)):
        assert not store(db, ctx, "old", processed=True)  # still a duplicate after 72 h
        purge_processed(db, retention)
        assert keys(db, ctx) == {"old", "parked"}
    with freeze_time(start + retention + timedelta(minutes=1)):
        assert store(db, ctx, "fresh", processed=True)
        purge_processed(db, retention)
        # The processed old row goes; a parked one is never purged; a fresh one stays.
        assert keys(db, ctx) == {"parked", "fresh"}


def test_the_dedupe_retention_cannot_be_set_below_72_hours(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WEBHOOK_DEDUPE_HOURS"):
        load_settings({"WEBHOOK_DEDUPE_HOURS": "24", "SWITCHBOARD_VAR_DIR": str(tmp_path)})


def test_beat_runs_the_purge(tmp_path: Path) -> None:
    from workers.beat import beat_schedule

    schedule = beat_schedule(load_settings({"SWITCHBOARD_VAR_DIR": str(tmp_path)}))
    assert schedule["purge-inbox"]["task"] == "purge_inbox"
    assert schedule["purge-inbox"]["options"]["queue"] == "maintenance"
