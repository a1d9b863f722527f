"""Request and response shapes, as pydantic models: the OpenAPI description is generated from
these and from SendIntent and ConsentIn. A request model here is what its handler validates
with (``app.api.bodies.parse_body``), so the description is what the handler accepts.

The suite validates real responses against the generated description
(tests/integration/api/test_openapi.py), so these cannot drift from what the API answers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.content.locales import normalize
from app.domain.channels import Channel
from app.messaging.recovery.stuck import parse_duration

# Request bodies: JSON types as they are (no "yes" for true, no "5" for 5).
STRICT = ConfigDict(strict=True)
STRICT_CLOSED = ConfigDict(strict=True, extra="forbid")
MAX_REDRIVE = 1000
MessageId = Annotated[str, StringConstraints(pattern=r"^msg_[0-9A-HJKMNP-TV-Z]{26}$")]
# Row ids and version numbers fit the database's integers (SQLite refuses a bigger one).
SyncId = Annotated[int, Field(gt=0, le=2**63 - 1)]
VersionNumber = Annotated[int, Field(ge=1, le=2**31 - 1)]
# The states the stuck report knows (WHY's keys; tests/unit holds the two the same).
StuckState = Literal["pending", "scheduled", "queued", "dispatched", "accepted", "sent"]


class ErrorItem(BaseModel):
    field: str
    code: str
    message: str


class ProblemDoc(BaseModel):
    """RFC 9457 problem details, with a machine-readable ``reason``."""

    model_config = ConfigDict(title="Problem", extra="allow")

    type: str
    title: str
    status: int
    detail: str
    reason: str
    errors: list[ErrorItem] | None = None


class Event(BaseModel):
    id: int
    kind: str
    from_: str | None = Field(alias="from")
    to: str | None
    outcome: str
    reason: str | None
    source: str
    data: dict[str, Any]
    at: str | None


class MediaOut(BaseModel):
    url: str
    content_type: str


class TemplateRef(BaseModel):
    id: str
    version: int
    locale: str


class MessageOut(BaseModel):
    """A message. Outbound ones carry ``to``; inbound ones ``from``."""

    model_config = ConfigDict(title="Message")

    id: str
    direction: Literal["outbound", "inbound"]
    status: str
    status_reason: str | None
    to: str | None = None
    from_: str | None = Field(default=None, alias="from")
    channel: Channel
    channels: list[Channel]
    account_id: str
    body: str | None
    media: list[MediaOut]
    priority: Literal["urgent", "normal", "bulk"]
    segments: int
    encoding: str
    attempts: int
    provider_message_id: str | None
    send_at: str | None
    next_attempt_at: str | None
    expires_at: str | None
    quiet_hours: str
    purpose: str | None
    journey_id: str | None
    campaign_id: str | None = None
    external_ref: str | None
    metadata: dict[str, Any]
    template: TemplateRef | None = None
    created_at: str | None
    updated_at: str | None
    events: list[Event] | None = None


class MessagePage(BaseModel):
    data: list[MessageOut]
    next_cursor: str | None


class ConsentState(BaseModel):
    status: str
    since: str | None
    source: str | None


class ConsentRecordOut(BaseModel):
    channel: str
    status: str
    source: str
    jurisdiction: str | None
    evidence: str | None
    at: str | None


class Consents(BaseModel):
    phone: str
    current: dict[str, ConsentState]
    history: list[ConsentRecordOut]


class TimezoneIn(BaseModel):
    model_config = STRICT

    timezone: str = Field(min_length=1, description="An IANA zone, such as America/Chicago.")

    @field_validator("timezone")
    @classmethod
    def _known(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError("unknown time zone: an IANA zone such as America/Chicago") from None
        return name


class TimezoneOut(BaseModel):
    id: str
    phone: str
    timezone: str


class Erasure(BaseModel):
    erasure_id: str
    erased_at: str | None
    counts: dict[str, int]


class Latency(BaseModel):
    p50_seconds: float | None
    p95_seconds: float | None


class AnalyticsRow(BaseModel):
    period: str
    tenant_id: str | None = None
    account_id: str | None = None
    channel: Channel | None = None
    campaign_id: str | None = None
    sent: int
    delivered: int
    failed: int
    undelivered: int
    replies: int
    opt_outs: int
    reasons: dict[str, dict[str, int]]
    time_to_delivered: Latency


class Analytics(BaseModel):
    tenant_id: str
    bucket: Literal["hour", "day"]
    start: str
    end: str
    rows: list[AnalyticsRow]


class RedriveIn(BaseModel):
    """Give ``ids``, or ``status`` with ``older_than``."""

    model_config = STRICT

    ids: list[MessageId] | None = Field(default=None, min_length=1, max_length=MAX_REDRIVE)
    status: StuckState | None = None
    older_than: str | None = Field(default=None, description="A duration: 90s, 10m, 2h, 1d.")
    dry_run: bool = False

    @field_validator("older_than")
    @classmethod
    def _duration(cls, text: str | None) -> str | None:
        if text is not None:
            parse_duration(text)  # its ValueError names what is wrong
        return text


class RedriveAction(BaseModel):
    id: str
    status: str
    action: str
    detail: str


class RedriveOut(BaseModel):
    dry_run: bool
    messages: list[RedriveAction]


class StuckReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    counts: dict[str, dict[str, int]]
    messages: list[dict[str, Any]]
    inbox: dict[str, int]
    syncs: list[dict[str, Any]]


class RoutingRule(BaseModel):
    id: str
    position: int
    name: str
    match: str
    values: list[str]
    action: str
    target: str | None
    final: bool


class RoutingRules(BaseModel):
    data: list[RoutingRule]


class RoutingRuleIn(BaseModel):
    """See the README's routing section for the matches and actions."""

    model_config = STRICT_CLOSED

    name: str
    match: str
    values: list[str] = []
    action: str
    target: str | None = None
    final: bool = False


class CrmConnection(BaseModel):
    """A CRM connection: never its token or secret."""

    id: str
    kind: Literal["hubspot", "salesforce", "webhook"]
    active: bool
    url: str | None
    created_at: str
    budget: dict[str, Any]


class CrmConnections(BaseModel):
    data: list[CrmConnection]


class CrmConnectionIn(BaseModel):
    """``kind`` and its credentials (see the README's CRM section); ``plan`` and limits
    optional."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["hubspot", "salesforce", "webhook"]


class CrmLimitsIn(BaseModel):
    """A connection's plan and limit overrides (``app.crm.budget``); an override may lower what
    the CRM states, never raise it."""

    model_config = STRICT_CLOSED

    plan: str | None = None
    calls: int | None = Field(default=None, gt=0, description="Calls per window.")
    window_seconds: float | None = Field(default=None, gt=0)
    searches_per_second: float | None = Field(default=None, gt=0)
    daily: int | None = Field(default=None, gt=0, description="The CRM's daily allowance.")
    daily_share: float | None = Field(default=None, gt=0, le=1)
    batch_seconds: float | None = Field(default=None, gt=0)


class SyncIds(BaseModel):
    model_config = STRICT

    ids: list[SyncId] | None = Field(default=None, min_length=1, max_length=MAX_REDRIVE)
    dry_run: bool = False


class SyncRedrive(BaseModel):
    dry_run: bool
    syncs: list[dict[str, Any]]


class VariableDecl(BaseModel):
    type: Literal["string", "number", "date", "url"]
    required: bool = True
    max_length: int | None = Field(default=None, ge=1, le=1600)
    decimals: int | None = Field(default=None, ge=0, le=6)
    format: Literal["iso", "dmy", "mdy"] | None = None


class TemplateVersionIn(BaseModel):
    """A version: typed variables, and content per locale (``en``, ``pt-BR``) and channel:
    ``{"sms": "text", "mms": {"text", "media"}, "rcs": {"text", "card", "suggestions"}}``.
    Text uses ``((variable))`` and ``((variable??optional text))``."""

    variables: dict[str, VariableDecl] = {}
    default_locale: str
    locales: dict[str, dict[str, Any]]


class TemplateIn(TemplateVersionIn):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")


class TemplateVersionOut(BaseModel):
    version: int
    variables: dict[str, dict[str, Any]]
    default_locale: str
    locales: dict[str, dict[str, Any]]
    created_at: str


class TemplateOut(BaseModel):
    id: str
    name: str
    latest_version: int
    archived: bool
    created_at: str
    version: TemplateVersionOut | None = None
    versions: list[int] | None = None


class TemplateList(BaseModel):
    data: list[TemplateOut]


class PreviewIn(BaseModel):
    model_config = STRICT_CLOSED

    variables: dict[str, Any] = {}
    locale: str | None = None
    version: VersionNumber | str | None = Field(default=None, description="A version number.")


class ChannelPreview(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: str
    encoding: Literal["GSM-7", "UCS-2"]
    segments: int
    characters: int
    ucs2_characters: list[str]


class PreviewOut(BaseModel):
    locale: str
    version: int
    shortened: list[str]
    channels: dict[str, ChannelPreview]


class LocaleIn(BaseModel):
    model_config = STRICT

    locale: str = Field(description="A locale tag, such as pt-BR.")

    @field_validator("locale")
    @classmethod
    def _tag(cls, tag: str) -> str:
        return normalize(tag)  # its ValueError names what is wrong


class LocaleOut(BaseModel):
    id: str
    phone: str
    locale: str


class Health(BaseModel):
    status: str
    checks: dict[str, str] | None = None


class AnyObject(BaseModel):
    """An object (see the README for this endpoint's fields)."""

    model_config = ConfigDict(extra="allow")


class TokenRequest(BaseModel):
    """``POST /oauth/token`` (form-encoded). The client authenticates with HTTP Basic, or
    with ``client_id`` and ``client_secret`` here."""

    grant_type: Literal["client_credentials"]
    scope: str | None = Field(None, description="Space-separated; default: all the client's")
    client_id: str | None = None
    client_secret: str | None = None


class TokenOut(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    scope: str


class RevokeRequest(BaseModel):
    """``POST /oauth/revoke`` (form-encoded, RFC 7009), by the client the token was issued to."""

    token: str
    token_type_hint: Literal["access_token", "refresh_token"] | None = None
    client_id: str | None = None
    client_secret: str | None = None


class OAuthError(BaseModel):
    """RFC 6749 section 5.2."""

    model_config = ConfigDict(extra="allow")

    error: str
    error_description: str | None = None
