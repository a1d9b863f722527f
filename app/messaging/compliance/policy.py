"""One answer to "may this message go now?", asked at intake and again at the dispatch claim.

The rules, in order; the first that does not allow decides:

1. ``quiet_hours_override``: ``quiet_hours=ignore`` needs the tenant's permission
   (refused at intake; at a claim an override no longer allowed is ignored).
2. ``consent``: an opted-out recipient is refused (``recipient_opted_out``), except
   for the opt-out confirmation; a tenant requiring opt-in refuses a recipient with
   none on record (``no_consent``). Auto-replies answer someone who wrote to us.
3. ``send_at``: a future ``send_at`` defers until then (intake only).
4. ``quiet_hours``: inside the tenant's quiet hours, in the recipient's zone (the
   contact's stored zone, else the tenant's), defers until they end. Auto-replies,
   a permitted ``ignore``, and ``urgent`` where the tenant allows it, are exempt.

The decision names its rule, and callers record it in the message's events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy.orm import Session

from app.domain.reasons import StatusReason
from app.messaging.compliance.consent import ConsentState, current_state
from app.messaging.compliance.quiet_hours import quiet_until, zone
from app.messaging.contacts import indexes_of
from app.models import Contact, Tenant

# A send_at closer than this is sent now rather than parked for beat to release.
SCHEDULE_THRESHOLD = timedelta(seconds=2)
OPT_OUT_CONFIRMATION = "auto_reply:opt_out"

Stage = Literal["intake", "claim"]


class Verdict(StrEnum):
    ALLOW = "allow"
    DEFER = "defer"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    rule: str
    until: datetime | None = None
    reason: str | None = None  # for a refusal: a status reason, or a validation code
    detail: str = ""
    field: str | None = None

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"verdict": self.verdict.value, "rule": self.rule}
        if self.until is not None:
            data["until"] = self.until.isoformat()
        if self.reason is not None:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class Candidate:
    """What the policy needs to know of a message, before or after it exists."""

    channel: str
    priority: str = "normal"
    quiet_hours: str = "respect"
    purpose: str | None = None
    send_at: datetime | None = None


def allow(rule: str = "default") -> Decision:
    return Decision(Verdict.ALLOW, rule)


def _is_auto_reply(candidate: Candidate) -> bool:
    return candidate.purpose is not None and candidate.purpose.startswith("auto_reply:")


def _override_refused(tenant: Tenant, candidate: Candidate, stage: Stage) -> Decision | None:
    wants_ignore = candidate.quiet_hours == "ignore"
    allowed = _is_auto_reply(candidate) or tenant.allow_quiet_hours_override
    if wants_ignore and not allowed and stage == "intake":
        return Decision(
            Verdict.REFUSE,
            "quiet_hours_override",
            reason="quiet_hours_override_not_allowed",
            detail="this tenant may not send with quiet_hours=ignore",
            field="quiet_hours",
        )
    return None


def decide(
    session: Session,
    tenant: Tenant,
    contact: Contact,
    candidate: Candidate,
    now: datetime,
    stage: Stage,
) -> Decision:
    """The decision for one message, reading its consent state."""
    refused = _override_refused(tenant, candidate, stage)
    if refused is not None:
        return refused
    consent = current_state(session, tenant.id, indexes_of(contact), candidate.channel)
    return decide_with(tenant, contact.timezone, consent, candidate, now, stage)


def decide_with(
    tenant: Tenant,
    contact_timezone: str | None,
    consent: ConsentState,
    candidate: Candidate,
    now: datetime,
    stage: Stage,
) -> Decision:
    """The decision given the consent state already read (the batch claim reads it in bulk)."""
    refused = _override_refused(tenant, candidate, stage)
    if refused is not None:
        return refused
    auto_reply = _is_auto_reply(candidate)
    wants_ignore = candidate.quiet_hours == "ignore" and (
        auto_reply or tenant.allow_quiet_hours_override
    )
    if consent.opted_out and candidate.purpose != OPT_OUT_CONFIRMATION:
        return Decision(
            Verdict.REFUSE,
            "consent",
            reason=StatusReason.RECIPIENT_OPTED_OUT.value,
            detail="the recipient has opted out of messages on this channel",
            field="to",
        )
    if consent.status is None and tenant.consent_policy == "opt_in" and not auto_reply:
        return Decision(
            Verdict.REFUSE,
            "consent",
            reason=StatusReason.NO_CONSENT.value,
            detail="this tenant requires an opt-in, and the recipient has none on record",
            field="to",
        )

    due = now
    if stage == "intake" and candidate.send_at and candidate.send_at - now > SCHEDULE_THRESHOLD:
        due = candidate.send_at
    quiet_end = quiet_until(due, tenant.quiet_hours, zone(contact_timezone, tenant.timezone))
    exemption = (
        "auto_reply"
        if auto_reply
        else "quiet_hours_override"
        if wants_ignore
        else "urgent_bypass"
        if candidate.priority == "urgent" and tenant.urgent_bypasses_quiet_hours
        else None
    )
    if quiet_end is not None and exemption is None:
        return Decision(Verdict.DEFER, "quiet_hours", until=quiet_end)
    if due != now:
        return Decision(Verdict.DEFER, "send_at", until=due)
    if quiet_end is not None and exemption is not None:
        return allow(exemption)  # it would have waited: say what let it through
    return allow("auto_reply" if auto_reply else "default")
