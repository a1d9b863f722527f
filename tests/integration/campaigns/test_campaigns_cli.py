"""``switchboard campaigns ...``: a CSV sent from a terminal, then followed and steered."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from app.infra.db import Database
from app.messaging.campaigns.expansion import expand_batch
from config import Settings
from tests.factories import make_tenant_ctx
from tests.support.backends import Backend
from tests.support.cli import run, run_json


def test_send_show_list_pause_cancel_from_the_cli(
    backend: Backend, db: Database, settings: Settings, tmp_path: Path
) -> None:
    ctx = make_tenant_ctx(db)
    csv = tmp_path / "list.csv"
    csv.write_text("phone,reference\n+12025553200,a\n+12025553201,b\n+12025553201,c\n")
    sent = json.loads(
        run(
            backend,
            "campaigns",
            "send",
            "--tenant",
            ctx.tenant_id,
            "--csv",
            str(csv),
            "--body",
            "Your order is late",
            "--name",
            "late",
            "--json",
        ).stdout
    )
    assert sent["status"] == "running"
    assert sent["upload"]["accepted"] == 2 and sent["upload"]["duplicates"] == 1
    campaign_id = sent["id"]
    assert expand_batch(db, settings, campaign_id, 500).made == 2

    with ThreadPoolExecutor(max_workers=2) as pool:  # two reads, side by side
        shown = pool.submit(
            run, backend, "campaigns", "show", "--tenant", ctx.tenant_id, campaign_id
        )
        listed = pool.submit(
            run_json, backend, f"campaigns list --tenant {ctx.tenant_id} --status completed"
        )
        human, found = shown.result().stdout, listed.result()
    assert campaign_id in human and "queued 2" in human
    assert [c["id"] for c in found["campaigns"]] == [campaign_id]
    paused = run_json(backend, f"campaigns pause --tenant {ctx.tenant_id} {campaign_id}")
    assert paused["status"] == "paused" and paused["held_by"] == {"paused": 2}
    canceled = run_json(backend, f"campaigns cancel --tenant {ctx.tenant_id} {campaign_id}")
    assert canceled["messages"]["by_status"] == {"canceled": 2}
    again = run(backend, "campaigns", "resume", "--tenant", ctx.tenant_id, campaign_id, ok=False)
    assert again.returncode != 0 and "cannot resume" in again.stderr


def test_a_bad_file_or_bad_rows_are_refused_with_their_row(
    backend: Backend, db: Database, tmp_path: Path
) -> None:
    ctx = make_tenant_ctx(db)
    unreadable = tmp_path / "bad.csv"
    unreadable.write_bytes(b"number\n+12025553200\n")
    rows = tmp_path / "rows.csv"
    rows.write_text("phone\n+12025553200\n+1202\n")

    def send(path: Path) -> Any:
        return run(
            backend, "campaigns", "send", "--tenant", ctx.tenant_id, "--csv", str(path),
            "--body", "hi", ok=False,
        )  # fmt: skip

    # Independent of each other: side by side (each is a process of its own).
    with ThreadPoolExecutor(max_workers=2) as pool:
        bad_file, bad_rows = pool.map(send, [unreadable, rows])
    assert bad_file.returncode != 0 and "no phone column" in bad_file.stderr
    assert "nothing was stored" in bad_file.stderr
    assert bad_rows.returncode == 1
    assert "kept as a draft" in bad_rows.stdout and "row 3, phone" in bad_rows.stdout
