"""`switchboard keys rotate` while messages flow: nothing fails to decrypt, and afterwards
the old key is removed and everything still reads."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from cryptography.fernet import Fernet
from flask.testing import FlaskClient
from sqlalchemy import select

from app.infra.db import Database
from app.models import Contact, KeyRotation, WebhookSecret
from app.security import rotation
from app.security.crypto import Keyring, install_keyring, keyring
from config import Settings
from tests.factories import TenantCtx
from tests.support.backends import ROOT, Backend
from tests.support.cli import SWITCHBOARD


def send(client: FlaskClient, ctx: TenantCtx) -> tuple[str, str]:
    body = f"rotation-{uuid.uuid4()}"
    r = client.post("/v1/messages", json={"to": "+12025550100", "body": body}, headers=ctx.headers)
    assert r.status_code == 202, r.get_json()
    return str(r.get_json()["id"]), body


def body_of(client: FlaskClient, ctx: TenantCtx, message_id: str) -> str | None:
    r = client.get(f"/v1/messages/{message_id}", headers=ctx.headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    value: str | None = r.get_json()["body"]
    return value


UseKeys = Callable[[tuple[str, ...]], Keyring]


@pytest.fixture
def use_keys(db: Database, settings: Settings) -> Iterator[UseKeys]:
    """Installs a keyring in this process; afterwards, the whole database goes back under
    the suite's own key (the later tests, and their worker processes, read with it)."""
    original = keyring()
    seen: list[str] = []

    def use(keys: tuple[str, ...]) -> Keyring:
        seen.extend(k for k in keys if k not in seen)
        ring = Keyring.from_keys(keys, settings.blind_index_key)
        install_keyring(ring)
        return ring

    yield use
    back = use((*settings.encryption_keys, *seen))
    with db.session() as s:
        for target in rotation.encrypted_columns():
            rotation.rotate_column(s, back, target, restart=True)
    install_keyring(original)


def test_rotation_under_load_then_the_old_key_is_removed(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    backend: Backend,
    ctx: TenantCtx,
    use_keys: UseKeys,
) -> None:
    old_keys = settings.encryption_keys
    new_key = Fernet.generate_key().decode()
    before = [send(client, ctx) for _ in range(40)]

    # Deploy the new key first (every process: it encrypts, the old one still decrypts).
    both = use_keys((new_key, *old_keys))
    stop = threading.Event()
    during: list[tuple[str, str]] = []
    failures: list[str] = []

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            try:
                during.append(send(client, ctx))
                old_id, old_body = before[n % len(before)]
                if body_of(client, ctx, old_id) != old_body:
                    failures.append(f"{old_id} read back wrong")
                new_id, new_body = during[-1]
                if body_of(client, ctx, new_id) != new_body:
                    failures.append(f"{new_id} read back wrong")
            except Exception as exc:
                failures.append(repr(exc))
            n += 1

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        env = {**backend.process_env(), "ENCRYPTION_KEYS": f"{new_key},{','.join(old_keys)}"}
        proc = subprocess.run(
            [SWITCHBOARD, "keys", "rotate", "--batch", "25", "--restart", "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        stop.set()
        worker.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert failures == [] and len(during) >= 3
    assert report["rotated"]["messages.body"] >= len(before)
    assert "messages.body" in proc.stderr  # the progress bar, one per column
    # What the traffic wrote meanwhile was under the new key already: nothing needs the old.
    with db.session() as s:
        usage = rotation.scan(s, both).as_dict()
    assert usage["old_key_needed"] == 0
    assert usage["removable"] == list(both.fingerprints[1:])

    # Remove the old key: everything still reads.
    use_keys((new_key,))
    for message_id, body in before + during:
        assert body_of(client, ctx, message_id) == body
    with db.session() as s:
        phones = set(s.scalars(select(Contact.phone).where(Contact.tenant_id == ctx.tenant_id)))
        secret = s.scalar(
            select(WebhookSecret.secret).where(WebhookSecret.account_id == ctx.account_id)
        )
    assert phones == {"+12025550100"} and secret == ctx.secret


def test_an_interrupted_rotation_resumes_where_it_stopped(
    client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx, use_keys: UseKeys
) -> None:
    for _ in range(30):
        send(client, ctx)
    new_key = Fernet.generate_key().decode()
    ring = use_keys((new_key, *settings.encryption_keys))
    (target,) = [t for t in rotation.encrypted_columns() if t.name == "messages.body"]

    def crash(_n: int) -> None:
        raise KeyboardInterrupt

    with db.session() as s, pytest.raises(KeyboardInterrupt):
        rotation.rotate_column(s, ring, target, batch=10, restart=True, progress=crash)
    with db.session() as s:
        state = s.get(KeyRotation, ("messages", "body"))
        assert state is not None and state.last_id is not None and state.finished_at is None
        first = state.rotated
    assert first > 0
    with db.session() as s:
        rest = rotation.rotate_column(s, ring, target, batch=10)
        state = s.get(KeyRotation, ("messages", "body"))
        assert state is not None and state.finished_at is not None
        assert state.rotated == first + rest.rotated
        assert rotation.scan(s, ring).columns["messages.body"][1] == 0
