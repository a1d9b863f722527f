"""A send intent accepted in one statement on Postgres: the common case of intake.

``accept_intent`` (``app.messaging.intake.accept``) takes five to eight round trips through
the ORM: the idempotency check, the route, the contact (and its insert), the consent
read, then the message, its two events and the outbox row, and the COMMIT. Here all
of it is one ``WITH ... INSERT`` statement run in autocommit, so atomic by itself:

- Python decides first what it can without the database: the validated intent, the
  ids, the encrypted columns, and the policy's decision for a contact in the zone its
  number implies, assuming a consent that does not refuse (consent only ever refuses;
  whether the message is queued or deferred never depends on it).
- The statement checks those assumptions as it writes: no message holds the
  Idempotency-Key yet; an account carries one of the channels (the route, chosen as
  ``choose_route`` does); the newest consent record and any suppression do not refuse;
  the contact, when it exists, is in that zone (only asked when the tenant has quiet
  hours). The contact (when new), the message, its events and its outbox row are
  written only when every check holds, so either all of them are or none is.

When a check fails, nothing was written, and ``accept_fast`` returns None: the caller
takes the general path, which answers the replay, the conflict, the refusal, the
missing route, or the other zone exactly as before. So does a message the policy
defers past its TTL (born ``expired``: the CRM hears of it, through the ORM's hook).
The general path is also the embedded SQLite default's, which has no data-modifying
CTEs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.domain.phones import timezone_for
from app.domain.queues import lane_for
from app.domain.segments import count_segments
from app.domain.statuses import Status
from app.infra.broker import TaskNames
from app.infra.db import Prepared, execute_at_once
from app.messaging.compliance.consent import ConsentState
from app.messaging.compliance.policy import Verdict, decide_with
from app.messaging.intake.accept import candidate_of, expiry_of, first_status, media_json
from app.messaging.intake.intents import SendIntent
from app.models import Tenant
from app.observability.metrics import Applied, count_now
from app.security.crypto import keyring
from config import Settings

if TYPE_CHECKING:
    from app.content.sending import FromTemplate

# Consent only refuses, so the decision is asked with a state that does not; the
# statement itself refuses to write when the records say otherwise.
_NOT_REFUSING = ConsentState("opted_in", None, None)

_SQL = """
WITH prior AS (
    SELECT id FROM messages
    WHERE tenant_id = %(tenant_id)s AND idempotency_key = %(idempotency_key)s
), route AS (
    SELECT a.id AS account_id, c.channel
    FROM unnest(%(channels)s::text[]) WITH ORDINALITY AS c(channel, n)
    JOIN channel_accounts AS a
      ON a.tenant_id = %(tenant_id)s AND a.channels::jsonb ? c.channel
    WHERE %(account_id)s::text IS NULL OR a.id = %(account_id)s::text
    ORDER BY c.n, a.created_at, a.id
    LIMIT 1
), newest AS (
    SELECT r.status, r.created_at
    FROM consent_records AS r, route
    WHERE r.tenant_id = %(tenant_id)s AND r.phone_index = ANY(%(phone_indexes)s)
      AND r.channel IN (route.channel, 'all')
    ORDER BY r.id DESC
    LIMIT 1
), suppressed AS (
    SELECT s.created_at FROM suppressions AS s
    WHERE s.tenant_id = %(tenant_id)s AND s.phone_index = ANY(%(phone_indexes)s)
), consent AS (
    SELECT CASE
        WHEN EXISTS (
            SELECT 1 FROM suppressed
            WHERE NOT EXISTS (
                SELECT 1 FROM newest WHERE newest.created_at > suppressed.created_at
            )
        ) THEN 'opted_out'
        ELSE (SELECT status FROM newest)
    END AS status
), go AS (
    SELECT route.account_id, route.channel
    FROM route, consent
    WHERE NOT EXISTS (SELECT 1 FROM prior)
      AND consent.status IS DISTINCT FROM 'opted_out'
      AND (consent.status IS NOT NULL OR NOT %(opt_in)s)
), new_contact AS (
    INSERT INTO contacts (id, tenant_id, phone, phone_index, timezone, crm_refs, created_at)
    SELECT %(contact_id)s, %(tenant_id)s, %(phone)s, %(phone_index)s, %(timezone)s,
           '{}'::json, %(now)s
    FROM go
    WHERE NOT EXISTS (
        SELECT 1 FROM contacts
        WHERE tenant_id = %(tenant_id)s AND phone_index = ANY(%(phone_indexes)s)
    )
    ON CONFLICT (tenant_id, phone_index) DO NOTHING
    RETURNING id, timezone
), contact AS (
    SELECT id, timezone FROM new_contact
    UNION ALL
    SELECT id, timezone FROM contacts
    WHERE tenant_id = %(tenant_id)s AND phone_index = ANY(%(phone_indexes)s)
), ready AS (
    SELECT go.account_id, go.channel, contact.id AS contact_id
    FROM go, contact
    WHERE NOT %(zone_matters)s OR contact.timezone IS NOT DISTINCT FROM %(timezone)s
), message AS (
    INSERT INTO messages (
        id, tenant_id, direction, channel, channels, account_id, contact_id, body, media,
        priority, status, status_reason, attempts, throttles, next_attempt_at, not_before,
        expires_at, rate_slot_at, provider_message_id, segments, encoding, quiet_hours,
        purpose, journey_id, external_ref, metadata, idempotency_key, request_hash,
        template_id, template_version, template_locale, alternates, created_at, updated_at
    )
    SELECT %(message_id)s, %(tenant_id)s, 'outbound', ready.channel, %(channels_json)s::json,
           ready.account_id, ready.contact_id, %(body)s, %(media)s, %(priority)s,
           %(status)s, %(status_reason)s, 0, 0, NULL, %(not_before)s, %(expires_at)s, NULL,
           NULL, %(segments)s, %(encoding)s, %(quiet_hours)s, NULL, %(journey_id)s,
           %(external_ref)s, %(metadata)s::json, %(idempotency_key)s, %(request_hash)s,
           %(template_id)s, %(template_version)s, %(template_locale)s, %(alternates)s,
           %(now)s, %(now)s
    FROM ready
    RETURNING id, channel, account_id, contact_id
), events AS (
    INSERT INTO message_events (
        tenant_id, message_id, kind, from_status, to_status, outcome, reason, source,
        dedupe_key, data, created_at
    )
    SELECT %(tenant_id)s, message.id, 'transition', e.from_status, e.to_status, 'applied',
           e.reason, 'api', NULL, e.data, %(now)s
    FROM message,
         (VALUES (1, NULL, 'pending', 'created', '{}'::json),
                 (2, 'pending', %(status)s, %(status_reason)s, %(decision)s::json))
         AS e(n, from_status, to_status, reason, data)
    ORDER BY e.n
), links AS (
    INSERT INTO short_links (code, tenant_id, url, created_at)
    SELECT l.code, %(tenant_id)s, l.url, %(now)s
    FROM message, unnest(%(link_codes)s::text[], %(link_urls)s::text[]) AS l(code, url)
), wake AS (
    INSERT INTO outbox (task_name, queue, args, attempts, created_at)
    SELECT %(task_name)s, %(lane)s, %(task_args)s::json, 0, %(now)s
    FROM message
    WHERE %(queued)s
    RETURNING id
)
SELECT message.channel, message.account_id, message.contact_id, (SELECT id FROM wake)
FROM message
"""
_STATEMENT = Prepared.of(
    "switchboard_intake_v3",
    _SQL,
    {
        "channels": "text[]",
        "phone_indexes": "text[]",
        "opt_in": "boolean",
        "zone_matters": "boolean",
        "queued": "boolean",
        "now": "timestamptz",
        "not_before": "timestamptz",
        "expires_at": "timestamptz",
        "segments": "integer",
        "template_version": "integer",
        "link_codes": "text[]",
        "link_urls": "text[]",
    },
)


@dataclass(frozen=True)
class NewMessage:
    """The message just written, as the API shows it: what ``message_view`` reads of a
    ``Message``, without building an ORM object no session will hold."""

    id: str
    channel: str
    channels: list[str]
    account_id: str
    contact_id: str
    body: str | None
    media: str | None
    priority: str
    status: str
    status_reason: str | None
    not_before: datetime | None
    expires_at: datetime
    segments: int
    encoding: str
    quiet_hours: str
    journey_id: str | None
    external_ref: str | None
    metadata_: dict[str, Any]
    created_at: datetime
    direction: str = "outbound"
    attempts: int = 0
    provider_message_id: str | None = None
    next_attempt_at: datetime | None = None
    purpose: str | None = None
    template_id: str | None = None
    template_version: int | None = None
    template_locale: str | None = None

    @property
    def updated_at(self) -> datetime:
        return self.created_at


@dataclass(frozen=True)
class Accepted:
    """What the statement wrote: the message and its outbox row (None when scheduled)."""

    message: NewMessage
    tenant_id: str
    outbox_id: int | None
    lane: str


def accept_fast(
    engine: Engine,
    settings: Settings,
    tenant: Tenant,
    intent: SendIntent,
    *,
    idempotency_key: str | None,
    payload_hash: str,
    template: FromTemplate | None = None,
) -> Accepted | None:
    """Accept the intent in one round trip, or None (nothing written): take the general path."""
    now = utcnow()
    expires_at = expiry_of(settings, intent, now)
    zone_name = timezone_for(intent.to)
    candidate = candidate_of(intent, intent.channels[0])
    decision = decide_with(tenant, zone_name, _NOT_REFUSING, candidate, now, "intake")
    if decision.verdict is Verdict.REFUSE:
        return None
    status, reason, not_before = first_status(decision, expires_at)
    if status is Status.EXPIRED:
        return None  # born expired: the general path, whose hook tells the CRM
    ring = keyring()
    count = count_segments(intent.body or "")
    media = media_json(intent)
    message_id = new_id("msg")
    lane = lane_for(intent.priority)
    params: dict[str, Any] = {
        "tenant_id": tenant.id,
        "idempotency_key": idempotency_key,
        "channels": list(intent.channels),
        "channels_json": json.dumps(list(intent.channels)),
        "account_id": intent.account_id,
        "phone_index": ring.blind_index(intent.to),
        "phone_indexes": ring.blind_indexes(intent.to),
        "phone": ring.encrypt(intent.to),
        "opt_in": tenant.consent_policy == "opt_in",
        "contact_id": new_id("con"),
        "timezone": zone_name,
        "zone_matters": bool(tenant.quiet_hours),
        "now": now,
        "message_id": message_id,
        "body": ring.encrypt(intent.body) if intent.body is not None else None,
        "media": ring.encrypt(media) if media else None,
        "priority": intent.priority,
        "status": status.value,
        "status_reason": reason,
        "not_before": not_before,
        "expires_at": expires_at,
        "segments": count.segments,
        "encoding": count.encoding,
        "quiet_hours": intent.quiet_hours,
        "journey_id": intent.journey_id,
        "external_ref": intent.external_ref,
        "metadata": json.dumps(intent.metadata),
        "request_hash": payload_hash,
        "decision": json.dumps({"policy": decision.as_data()}),
        "task_name": TaskNames.DISPATCH,
        "lane": lane,
        "task_args": json.dumps([message_id]),
        "queued": status is Status.QUEUED,
        "template_id": template.template_id if template else None,
        "template_version": template.version if template else None,
        "template_locale": template.locale if template else None,
        "alternates": ring.encrypt(json.dumps(template.alternates))
        if template and template.alternates
        else None,
        "link_codes": [code for code, _ in template.links] if template else [],
        "link_urls": [url for _, url in template.links] if template else [],
    }
    row = execute_at_once(engine, _STATEMENT, params)
    if row is None:
        return None
    channel, account_id, contact_id, outbox_id = row
    count_now(  # committed already (one autocommit statement)
        [
            Applied(Status.PENDING.value, "created", message_id, now),
            Applied(status.value, reason, message_id, now),
        ]
    )
    message = NewMessage(
        id=message_id,
        channel=channel,
        channels=list(intent.channels),
        account_id=account_id,
        contact_id=contact_id,
        body=intent.body,
        media=media,
        priority=intent.priority,
        status=status.value,
        status_reason=reason,
        not_before=not_before,
        expires_at=expires_at,
        segments=count.segments,
        encoding=count.encoding,
        quiet_hours=intent.quiet_hours,
        journey_id=intent.journey_id,
        external_ref=intent.external_ref,
        metadata_=intent.metadata,
        created_at=now,
        template_id=template.template_id if template else None,
        template_version=template.version if template else None,
        template_locale=template.locale if template else None,
    )
    return Accepted(message, tenant.id, outbox_id, lane)
