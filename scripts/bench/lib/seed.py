"""Seeding a Postgres database with history: messages, their events, contacts and inbox rows.

    python scripts/bench/lib/seed.py --database-url postgresql://.../db \\
        --tenant TEN --account ACC \\
        [--messages 1000000]

The rows look like a tenant's past month: every message finished (delivered,
or now and then failed or undelivered), each with the four events a real one
leaves (created, queued, accepted, delivered or its failure), spread over
``--contacts`` contacts, with one processed inbox row per message for its
receipt over the last four days (the dedupe window: older ones are purged).
Encrypted columns hold real tokens under the run's keys (one token reused: the
seeded rows are never read back for their content). Everything is generated
inside Postgres (``generate_series``), in batches, then ANALYZEd, so a million
messages take a minute or two, not an hour.

The SQL is built with f-strings from integers and constants only; every value
from outside goes in as a bound parameter.

Used by the growth benchmark and the EXPLAIN test.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, text

# The per-message event rows: (kind, from, to, outcome, reason, source, seconds after creation).
EVENTS = (
    ("transition", None, "pending", "applied", "created", "api", 0),
    ("transition", "pending", "queued", "applied", None, "api", 0),
    ("transition", "queued", "accepted", "applied", None, "provider", 1),
)
FINAL_SQL = (
    "CASE WHEN g % 50 = 0 THEN 'failed' WHEN g % 20 = 0 THEN 'undelivered' ELSE 'delivered' END"
)
SEED_PREFIX = "SEED"


def _messages_sql(first: int, last: int) -> str:
    return f"""
INSERT INTO messages (
    id, tenant_id, direction, channel, channels, account_id, contact_id, body, priority,
    status, status_reason, attempts, throttles, expires_at, provider_message_id, segments,
    encoding, quiet_hours, metadata, created_at, updated_at)
SELECT
    'msg_{SEED_PREFIX}' || lpad(g::text, 22, '0'), :tenant, 'outbound', 'sms', '["sms"]',
    :account, 'con_{SEED_PREFIX}' || lpad((g % :contacts + 1)::text, 22, '0'), :body, 'normal',
    {FINAL_SQL}, NULL, 1, 0, ts + interval '1 day', 'SM{SEED_PREFIX}' || g, 1,
    'GSM-7', 'respect', '{{}}', ts, ts + interval '5 seconds'
FROM (
    SELECT g, :start - (:span * (1 - g::float / :total)) * interval '1 second' AS ts
    FROM generate_series({first}, {last}) AS g
) AS s
"""


def _events_sql(first: int, last: int) -> str:
    rows = " UNION ALL ".join(
        f"SELECT '{kind}' AS kind, {_lit(src)} AS from_status, {_lit(dst)} AS to_status, "
        f"'{outcome}' AS outcome, {_lit(reason)} AS reason, '{source}' AS source, "
        f"{delay} AS delay"
        for kind, src, dst, outcome, reason, source, delay in EVENTS
    )
    return f"""
INSERT INTO message_events (
    tenant_id, message_id, kind, from_status, to_status, outcome, reason, source, data,
    created_at)
SELECT :tenant, m.id, e.kind, e.from_status, e.to_status, e.outcome, e.reason, e.source,
       '{{}}'::json,
       m.created_at + e.delay * interval '1 second'
FROM messages m CROSS JOIN ({rows}) AS e
WHERE m.id BETWEEN 'msg_{SEED_PREFIX}' || lpad('{first}', 22, '0')
              AND 'msg_{SEED_PREFIX}' || lpad('{last}', 22, '0')
UNION ALL
SELECT :tenant, m.id, 'transition', 'accepted', m.status, 'applied', NULL, 'provider', '{{}}'::json,
       m.updated_at
FROM messages m
WHERE m.id BETWEEN 'msg_{SEED_PREFIX}' || lpad('{first}', 22, '0')
              AND 'msg_{SEED_PREFIX}' || lpad('{last}', 22, '0')
ORDER BY 10
"""


def _inbox_sql(first: int, last: int) -> str:
    return f"""
INSERT INTO webhook_inbox (
    id, tenant_id, account_id, provider, dedupe_key, payload, received_at, processed_at,
    result, attempts)
SELECT 'inb_{SEED_PREFIX}' || lpad(g::text, 22, '0'), :tenant, :account, 'sandbox',
       'seed-' || g, :payload, ts, ts + interval '50 milliseconds', 'applied', 1
FROM (
    SELECT g, :start - (:span * (1 - g::float / :total)) * interval '1 second' AS ts
    FROM generate_series({first}, {last}) AS g
) AS s
"""


def _lit(value: str | None) -> str:
    return "NULL" if value is None else f"'{value}'"


def seed_history(
    engine: Engine,
    *,
    tenant_id: str,
    account_id: str,
    messages: int,
    contacts: int = 10_000,
    span_days: float = 30.0,
    inbox_days: float = 4.0,
    batch: int = 100_000,
    progress: Callable[[str], None] = print,
) -> float:
    """Insert the history; the seconds it took. Encrypts under the caller's installed keyring."""
    from app.security.crypto import keyring

    ring = keyring()
    params = {
        "tenant": tenant_id,
        "account": account_id,
        "contacts": contacts,
        "total": messages,
        "span": span_days * 86400,
        "body": ring.encrypt("Your appointment is tomorrow at 10:00. Reply C to confirm."),
        "payload": ring.encrypt('{"eventId":"seed","status":"delivered"}'),
        "phone": ring.encrypt("+12025550123"),
    }
    # Processed inbox rows are purged after the dedupe window (96 h): only the newest are left.
    inbox_from = messages - int(messages * min(1.0, inbox_days / span_days))
    started = time.monotonic()
    with engine.begin() as conn:
        params["start"] = conn.execute(text("SELECT now()")).scalar_one()
        conn.execute(
            text(
                f"""
INSERT INTO contacts (id, tenant_id, phone, phone_index, timezone, crm_refs, created_at)
SELECT 'con_{SEED_PREFIX}' || lpad(g::text, 22, '0'), :tenant, :phone,
       md5('seed-contact-' || g) || md5('seed-contact-' || g), 'America/New_York', '{{}}',
       :start - :span * interval '1 second'
FROM generate_series(1, :contacts) AS g
"""
            ),
            params,
        )
    for first in range(1, messages + 1, batch):
        last = min(messages, first + batch - 1)
        with engine.begin() as conn:
            conn.execute(text(_messages_sql(first, last)), params)
            conn.execute(text(_events_sql(first, last)), params)
            if last > inbox_from:
                conn.execute(text(_inbox_sql(max(first, inbox_from + 1), last)), params)
        progress(f"  seeded {last:,} of {messages:,} messages ({time.monotonic() - started:.0f} s)")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("contacts", "messages", "message_events", "webhook_inbox", "outbox"):
            conn.execute(text(f"VACUUM ANALYZE {table}"))
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    import argparse

    from sqlalchemy import create_engine

    from app.security.crypto import Keyring, install_keyring
    from config import load_settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=10_000)
    args = parser.parse_args(argv)
    settings = load_settings()  # DATABASE_URL, ENCRYPTION_KEYS, BLIND_INDEX_KEY from the env
    install_keyring(Keyring.from_keys(settings.encryption_keys, settings.blind_index_key))
    engine = create_engine(settings.database_url)
    took = seed_history(
        engine,
        tenant_id=args.tenant,
        account_id=args.account,
        messages=args.messages,
        contacts=args.contacts,
    )
    print(f"seeded {args.messages:,} messages in {took:.0f} s")
    return 0


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    sys.exit(main())
