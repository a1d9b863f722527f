"""Campaign expansion: a running campaign's recipients become messages, a batch at a time.

``expand_campaign`` keeps making batches for ``DRAIN_SECONDS``, then hands on to a fresh task
(so a worker's shutdown never waits on a 100,000-recipient campaign). On its first full batch
made side by side (Postgres, no rate of its own) it owes ``CAMPAIGN_PARALLEL - 1`` helpers
(see ``expand_batch``): one that finds every slot taken ends at once, so extra tasks (beat's,
a relay's) cost nothing.

Beat's ``expand_running_campaigns`` wakes the expansion of any running campaign with recipients
left: a task lost with a killed worker, or with the broker, is made again within its interval.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from sqlalchemy.exc import OperationalError

from app.infra.broker import TaskNames
from app.messaging.campaigns.control import owe_expansion
from app.messaging.campaigns.expansion import expand_batch, running_with_recipients_left
from workers.context import db, settings

log = logging.getLogger(__name__)


@shared_task(
    name=TaskNames.EXPAND_CAMPAIGN,
    autoretry_for=(OperationalError,),
    retry_backoff=1,
    retry_backoff_max=8,
    max_retries=5,
)
def expand_campaign(campaign_id: str) -> int:
    config = settings()
    deadline = time.monotonic() + config.drain_seconds
    made = skipped = 0
    helped = False
    while True:
        batch = expand_batch(
            db(), config, campaign_id, config.campaign_batch_size, config.campaign_parallel
        )
        made += batch.made
        skipped += batch.skipped
        if batch.busy or not batch.more:  # busy: as many batches as allowed are at work
            break
        if not helped and batch.shared:
            # A full batch: the campaign is large, and helpers take the other slots.
            helped = True
            with db().session() as session:
                for _ in range(config.campaign_parallel - 1):
                    owe_expansion(session, campaign_id)
                session.commit()
        if time.monotonic() >= deadline:
            with db().session() as session:  # the rest in a fresh task
                owe_expansion(session, campaign_id)
                session.commit()
            break
    if made or skipped:
        log.info(
            "expanded campaign",
            extra={"campaign_id": campaign_id, "made": made, "skipped": skipped},
        )
    return made


@shared_task(name=TaskNames.EXPAND_CAMPAIGNS)
def expand_running_campaigns() -> int:
    with db().session() as session:
        found = running_with_recipients_left(session)
        for campaign_id in found:
            owe_expansion(session, campaign_id)
        session.commit()
    if found:
        log.info("woke campaign expansions", extra={"campaigns": len(found)})
    return len(found)
