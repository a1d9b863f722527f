"""The receipts target: signed Twilio status callbacks, applied by a real Celery worker.

Seeds N ``accepted`` messages on a Twilio account, then POSTs one signed
``delivered`` callback per message through gunicorn while a worker (the
Procfile's, on the intake queue) applies them. Reports receipts *applied* per
second: from the first request until the last message reads ``delivered``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from sqlalchemy import func, insert, select, update

from app.domain.ids import new_id
from app.infra.db import make_database
from app.messaging.contacts import get_or_create_contact
from app.models import InboxItem, Message
from app.providers import webhook_url
from app.security.crypto import Keyring, install_keyring
from config import load_settings
from scripts.bench.lib.loadgen import HttpRequest, RequestFactory
from scripts.fake_twilio import sign

RECIPIENT = "+12025550100"


@dataclass
class ReceiptsPlan:
    account_id: str
    tenant_id: str
    auth_token: str
    count: int
    sids: list[str]


def provider_sid(run_id: str, n: int) -> str:
    return f"SM{run_id}{n:024x}"


def seed_accepted(env: dict[str, str], plan: ReceiptsPlan, run_id: str) -> None:
    """Insert ``plan.count`` accepted messages in one transaction (Core, batched)."""
    settings = load_settings(env)
    install_keyring(Keyring.from_keys(settings.encryption_keys, settings.blind_index_key))
    db = make_database(settings)
    now = datetime.now(UTC)
    try:
        with db.session() as session:
            contact = get_or_create_contact(session, plan.tenant_id, RECIPIENT)
            rows = [
                {
                    "id": new_id("msg"),
                    "tenant_id": plan.tenant_id,
                    "direction": "outbound",
                    "channel": "sms",
                    "channels": ["sms"],
                    "account_id": plan.account_id,
                    "contact_id": contact.id,
                    "priority": "normal",
                    "status": "accepted",
                    "attempts": 1,
                    "throttles": 0,
                    "provider_message_id": provider_sid(run_id, n),
                    "segments": 1,
                    "encoding": "GSM-7",
                    "quiet_hours": "respect",
                    "metadata": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(plan.count)
            ]
            for start in range(0, len(rows), 2000):
                session.execute(insert(Message), rows[start : start + 2000])
        plan.sids = [provider_sid(run_id, n) for n in range(plan.count)]
    finally:
        db.engine.dispose()


def receipts_factory(base_url: str, plan: ReceiptsPlan) -> RequestFactory:
    path = webhook_url("", "twilio", plan.account_id)
    signed_url = base_url + path

    def receipt(n: int) -> HttpRequest:
        params = {
            "MessageSid": plan.sids[n % plan.count],
            "SmsSid": plan.sids[n % plan.count],
            "MessageStatus": "delivered",
            "AccountSid": "AC" + "0" * 32,
            "From": "+12025550199",
            "To": RECIPIENT,
            "ApiVersion": "2010-04-01",
        }
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(plan.auth_token, signed_url, params),
        }
        return HttpRequest("POST", path, urlencode(params).encode(), headers)

    return receipt


def delivered(env: dict[str, str], plan: ReceiptsPlan) -> int:
    settings = load_settings(env)
    db = make_database(settings)
    try:
        with db.session() as session:
            query = select(func.count()).select_from(Message)
            return int(
                session.scalar(
                    query.where(Message.tenant_id == plan.tenant_id, Message.status == "delivered")
                )
                or 0
            )
    finally:
        db.engine.dispose()


def clear_intake_queue(redis_url: str, prefix: str) -> int:
    """Drop what earlier targets left on the intake queue, so the worker measures receipts only."""
    import redis

    with redis.Redis.from_url(redis_url) as client:
        left = int(client.llen(prefix + "intake"))
        client.delete(prefix + "intake")
    return left


def settle_earlier_callbacks(env: dict[str, str]) -> int:
    """Mark the earlier targets' callbacks processed (they are for messages nobody sent,
    so a worker would only defer them), so that the receipts target's worker applies its
    receipts alone. The rows stay, for the storage check. How many were marked."""
    settings = load_settings(env)
    db = make_database(settings)
    try:
        with db.engine.begin() as conn:
            marked = conn.execute(
                update(InboxItem)
                .where(InboxItem.processed_at.is_(None))
                .values(processed_at=func.now(), result="bench_skipped")
            )
            return int(marked.rowcount or 0)
    finally:
        db.engine.dispose()


def wait_applied(env: dict[str, str], plan: ReceiptsPlan, timeout: float) -> float | None:
    """Seconds (monotonic) at which every seeded message read delivered; None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if delivered(env, plan) >= plan.count:
            return time.monotonic()
        time.sleep(0.1)
    return None


def validator_cost_us(samples: int = 2000) -> float:
    """CPU microseconds twilio's ``RequestValidator`` takes to check one status callback
    (what the Twilio webhook pays per request before anything of ours runs)."""
    from twilio.request_validator import RequestValidator

    from app.providers.twilio import FormParams

    url = "https://switchboard.example/webhooks/twilio/acc_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    params = {
        "MessageSid": "SM" + "0" * 32,
        "SmsSid": "SM" + "0" * 32,
        "MessageStatus": "delivered",
        "AccountSid": "AC" + "0" * 32,
        "From": "+12025550199",
        "To": RECIPIENT,
        "ApiVersion": "2010-04-01",
    }
    token = "0" * 32
    signature = sign(token, url, params)
    form = FormParams.parse(urlencode(params))
    validator = RequestValidator(token)
    assert validator.validate(url, form, signature)
    started = time.process_time()
    for _ in range(samples):
        RequestValidator(token).validate(url, form, signature)
    return 1e6 * (time.process_time() - started) / samples
