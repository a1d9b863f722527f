"""HubSpot (CRM v3 API): contacts searched or created by phone, each message a Communication.

Plain HTTP against the documented endpoints rather than ``hubspot-api-client``: we
need one timeout per call, no hidden retries (the database holds our backoff), and
the 429 headers, which the client's exceptions do not surface. The local fake is
checked against the client once, so the two speak the same shapes.
"""

from __future__ import annotations

from typing import Any

from app.crm.base import (
    Connector,
    CrmError,
    CrmPermanent,
    CrmThrottled,
    SyncRequest,
    SyncResult,
    call,
    classify_http,
)
from app.retry_after import retry_after_seconds

DEFAULT_BASE_URL = "https://api.hubapi.com"
# HubSpot-defined association: communication to contact.
COMMUNICATION_TO_CONTACT = 81
OPT_OUT_PROPERTY = "switchboard_sms_opt_out"


class HubSpot(Connector):
    kind = "hubspot"

    @property
    def _base(self) -> str:
        return str(self.config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = call(
            method,
            f"{self._base}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.config['token']}"},
        )
        if response.status_code < 300:
            data: dict[str, Any] = response.json() if response.content else {}
            return data
        raise _classify(response, f"{method} {path}")

    def _search(self, object_type: str, prop: str, value: str) -> str | None:
        found = self._call(
            "POST",
            f"/crm/v3/objects/{object_type}/search",
            {
                "filterGroups": [
                    {"filters": [{"propertyName": prop, "operator": "EQ", "value": value}]}
                ],
                "properties": [prop],
                "limit": 1,
            },
        )
        results = found.get("results") or []
        return str(results[0]["id"]) if results else None

    def _contact(self, request: SyncRequest) -> str:
        if request.known_contact.get("id"):
            return request.known_contact["id"]
        existing = self._search("contacts", "phone", request.phone)
        if existing is not None:
            return existing
        created = self._call(
            "POST",
            "/crm/v3/objects/contacts",
            {"properties": {"phone": request.phone, "lifecyclestage": "lead"}},
        )
        return str(created["id"])

    def apply(self, request: SyncRequest) -> SyncResult:
        contact_id = self._contact(request)
        contact = {"id": contact_id, "type": "contact"}
        if request.action == "log_message":
            return SyncResult(contact, self._log(request, contact_id))
        properties: dict[str, str] = {}
        if request.action in ("opt_out", "opt_in"):
            properties[OPT_OUT_PROPERTY] = "true" if request.action == "opt_out" else "false"
        elif request.action == "routing":
            target = request.details.get("target")
            action = str(request.details.get("action"))
            properties["switchboard_routing"] = f"{action}:{target}" if target else action
        else:
            raise CrmPermanent(f"no HubSpot mapping for {request.action}")
        self._call("PATCH", f"/crm/v3/objects/contacts/{contact_id}", {"properties": properties})
        return SyncResult(contact)

    def _log(self, request: SyncRequest, contact_id: str) -> str:
        message = request.message
        if message is None:
            raise CrmPermanent("log_message without a message")
        properties = {
            "hs_communication_channel_type": "SMS",
            "hs_communication_logged_from": "CRM",
            "hs_communication_body": message.body or "",
            "hs_timestamp": message.at.isoformat(),
            "switchboard_message_id": message.id,
            "switchboard_direction": message.direction,
            "switchboard_status": message.status,
        }
        activity = request.known_activity
        if activity is None and not request.first_try:
            # An earlier try may have created it and lost the answer: find it, never double it.
            activity = self._search("communications", "switchboard_message_id", message.id)
        if activity is not None:  # a later status of the same message: update it
            self._call(
                "PATCH", f"/crm/v3/objects/communications/{activity}", {"properties": properties}
            )
            return activity
        created = self._call(
            "POST",
            "/crm/v3/objects/communications",
            {
                "properties": properties,
                "associations": [
                    {
                        "to": {"id": contact_id},
                        "types": [
                            {
                                "associationCategory": "HUBSPOT_DEFINED",
                                "associationTypeId": COMMUNICATION_TO_CONTACT,
                            }
                        ],
                    }
                ],
            },
        )
        return str(created["id"])


def _classify(response: Any, what: str) -> CrmError:
    if response.status_code == 429:
        # HubSpot's rolling windows: Retry-After when given, else the window's length.
        wait = retry_after_seconds(response.headers.get("Retry-After"), default=0.0)
        if not wait:
            interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")
            wait = int(interval) / 1000 if interval.isdigit() else 10.0
        return CrmThrottled(f"{what}: HubSpot rate limit", min(wait, 3600.0))
    return classify_http(response, what)
