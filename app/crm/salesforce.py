"""Salesforce (REST API): Contact or Lead by phone, each message a Task upserted by an
external id, so a replay creates nothing.

The lookups of Contact and Lead go in one composite call. Plain HTTP rather than
``simple-salesforce`` for the same reasons as HubSpot (timeouts, no hidden retries,
the error bodies), with the fake checked against ``simple-salesforce`` once.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

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

API = "/services/data/v59.0"
TASK_EXTERNAL_ID = "Switchboard_Message_Id__c"
OPT_OUT_FIELD = "Switchboard_SMS_Opt_Out__c"
ROUTING_FIELD = "Switchboard_Routing__c"
LEAD_SOURCE = "SMS"
# Salesforce's request limit is a rolling day: without a Retry-After, look again in a minute.
LIMIT_BACKOFF_SECONDS = 60.0


class Salesforce(Connector):
    kind = "salesforce"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = call(
            method,
            f"{str(self.config['instance_url']).rstrip('/')}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.config['token']}"},
        )
        if response.status_code < 300:
            return response.json() if response.content else {}
        raise _classify(response, f"{method} {path.split('?')[0]}")

    def _who(self, request: SyncRequest) -> dict[str, str]:
        if request.known_contact.get("id"):
            return request.known_contact
        soql = "SELECT Id FROM {} WHERE Phone = '{}' OR MobilePhone = '{}' LIMIT 1"
        phone = request.phone.replace("'", "")
        answer = self._call(
            "POST",
            f"{API}/composite",
            {
                "allOrNone": False,
                "compositeRequest": [
                    {
                        "method": "GET",
                        "url": f"{API}/query?q={quote(soql.format(kind, phone, phone))}",
                        "referenceId": kind,
                    }
                    for kind in ("Contact", "Lead")
                ],
            },
        )
        for part in answer.get("compositeResponse", []):
            if part.get("httpStatusCode", 500) >= 300:
                raise CrmPermanent(f"composite lookup failed: {str(part.get('body'))[:200]}")
            records = (part.get("body") or {}).get("records") or []
            if records:
                return {"id": str(records[0]["Id"]), "type": str(part["referenceId"])}
        created = self._call(
            "POST",
            f"{API}/sobjects/Lead",
            {
                "LastName": request.phone,
                "Company": "Unknown (messaging)",
                "Phone": request.phone,
                "MobilePhone": request.phone,
                "LeadSource": LEAD_SOURCE,
            },
        )
        return {"id": str(created["id"]), "type": "Lead"}

    def apply(self, request: SyncRequest) -> SyncResult:
        who = self._who(request)
        if request.action == "log_message":
            message = request.message
            if message is None:
                raise CrmPermanent("log_message without a message")
            verb = "received" if message.direction == "inbound" else f"sent ({message.status})"
            answer = self._call(
                "PATCH",
                f"{API}/sobjects/Task/{TASK_EXTERNAL_ID}/{quote(message.id)}",
                {
                    "Subject": f"{message.channel.upper()} {verb}",
                    "Description": message.body or "",
                    "WhoId": who["id"],
                    "Status": "Completed",
                    "ActivityDate": message.at.date().isoformat(),
                    "TaskSubtype": "Task",
                },
            )
            return SyncResult(who, str(answer.get("id") or request.known_activity or ""))
        if request.action in ("opt_out", "opt_in"):
            fields: dict[str, Any] = {OPT_OUT_FIELD: request.action == "opt_out"}
        elif request.action == "routing":
            target = request.details.get("target")
            action = str(request.details.get("action"))
            fields = {ROUTING_FIELD: f"{action}:{target}" if target else action}
        else:
            raise CrmPermanent(f"no Salesforce mapping for {request.action}")
        self._call("PATCH", f"{API}/sobjects/{who['type']}/{who['id']}", fields)
        return SyncResult(who)


def _classify(response: Any, what: str) -> CrmError:
    try:
        errors = response.json()
    except ValueError:
        errors = None
    codes = (
        {e.get("errorCode") for e in errors if isinstance(e, dict)}
        if isinstance(errors, list)
        else set()
    )
    if response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
        wait = retry_after_seconds(response.headers.get("Retry-After"), LIMIT_BACKOFF_SECONDS)
        return CrmThrottled(f"{what}: REQUEST_LIMIT_EXCEEDED", wait)
    return classify_http(response, what)
