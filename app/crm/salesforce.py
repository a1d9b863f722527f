"""Salesforce (REST API): Contact or Lead by phone, each message a Task upserted by an
external id (``Switchboard_Message_Id__c``), so a replay creates nothing.

A batch of syncs costs at most four calls, for up to 200 records: one composite call
holding two SOQL queries with ``IN`` (Contacts, then Leads, by phone), one sObject
Collections create of the Leads nobody knows, one sObject Collections upsert of the
Tasks by their external id, and one sObject Collections update of the consent and
routing fields. Each record of a collection succeeds or fails on its own
(``allOrNone: false``), so a bad record is dead-lettered with its reason and the rest go.

Plain HTTP rather than ``simple-salesforce`` for the same reasons as HubSpot (timeouts,
no hidden retries, the error bodies and ``Sforce-Limit-Info``), with the fake checked
against ``simple-salesforce`` once, batch calls included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from app.crm.base import (
    Connector,
    CrmError,
    CrmPermanent,
    CrmRetryable,
    CrmThrottled,
    Outcome,
    SyncRequest,
    SyncResult,
    classify_http,
    hold_back,
)
from app.domain.retries import retry_after_seconds

API = "/services/data/v59.0"
TASK_EXTERNAL_ID = "Switchboard_Message_Id__c"
OPT_OUT_FIELD = "Switchboard_SMS_Opt_Out__c"
ROUTING_FIELD = "Switchboard_Routing__c"
LEAD_SOURCE = "SMS"
# Salesforce's request limit is a rolling day: without a Retry-After, look again in a minute.
LIMIT_BACKOFF_SECONDS = 60.0
COLLECTION = 200  # records per sObject Collections call
# Record errors worth another try: the row was busy, not wrong.
RETRYABLE_CODES = {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG"}


class Salesforce(Connector):
    kind = "salesforce"
    batch_size = COLLECTION

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._call_http(
            method,
            f"{str(self.config['instance_url']).rstrip('/')}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.config['token']}"},
        )
        if response.status_code < 300:
            return response.json() if response.content else {}
        raise _classify(response, f"{method} {path.split('?')[0]}")

    def observe(self, response: Any) -> None:
        """``Sforce-Limit-Info: api-usage=used/allowance``: the org's real allowance."""
        info = response.headers.get("Sforce-Limit-Info", "")
        for part in info.split(","):
            name, _, value = part.strip().partition("=")
            if name == "api-usage":
                used, _, allowance = value.partition("/")
                if allowance.isdigit():
                    self.budget.learn(daily=int(allowance))
                    if used.isdigit() and int(used) >= int(allowance):
                        self.budget.pause(LIMIT_BACKOFF_SECONDS, "Salesforce allowance used up")

    def apply(self, request: SyncRequest) -> SyncResult:
        (outcome,) = self.apply_batch([request])
        if isinstance(outcome, CrmError):
            raise outcome
        return outcome

    def apply_batch(self, requests: Sequence[SyncRequest]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(requests)
        who: dict[int, dict[str, str]] = {
            n: dict(r.known_contact) for n, r in enumerate(requests) if r.known_contact.get("id")
        }
        activities: dict[int, str] = {}

        def still_open() -> list[int]:
            return [n for n, o in enumerate(outcomes) if o is None]

        try:
            hold_back(requests, outcomes)
            self._find_or_create(requests, still_open(), who, outcomes)
            hold_back(requests, outcomes)
            self._log(requests, still_open(), who, outcomes, activities)
            hold_back(requests, outcomes)
            self._fields(requests, still_open(), who, outcomes)
        except (CrmThrottled, CrmRetryable, CrmPermanent) as exc:
            for n in still_open():  # a failed call, not a failed record: all of them wait
                outcomes[n] = exc.about(who.get(n, {}))
        return [
            o if o is not None else SyncResult(who[n], activities.get(n))
            for n, o in enumerate(outcomes)
        ]

    def _find_or_create(
        self,
        requests: Sequence[SyncRequest],
        todo: list[int],
        who: dict[int, dict[str, str]],
        outcomes: list[Outcome | None],
    ) -> None:
        unknown = [n for n in todo if n not in who]
        phones = sorted({requests[n].phone.replace("'", "") for n in unknown})
        if not phones:
            return
        found = self._lookup(phones)
        missing = [p for p in phones if p not in found]
        for start in range(0, len(missing), COLLECTION):
            chunk = missing[start : start + COLLECTION]
            records = [
                {
                    "attributes": {"type": "Lead"},
                    "LastName": phone,
                    "Company": "Unknown (messaging)",
                    "Phone": phone,
                    "MobilePhone": phone,
                    "LeadSource": LEAD_SOURCE,
                }
                for phone in chunk
            ]
            answers = self._call(
                "POST", f"{API}/composite/sobjects", {"allOrNone": False, "records": records}
            )
            for phone, answer in zip(chunk, answers, strict=True):
                if answer.get("success"):
                    found[phone] = {"id": str(answer["id"]), "type": "Lead"}
                else:
                    found[phone] = {"error": _record_error(answer)}
        for n in unknown:
            match = found[requests[n].phone.replace("'", "")]
            if "error" in match:
                outcomes[n] = _error_of(match["error"])
            else:
                who[n] = match

    def _lookup(self, phones: list[str]) -> dict[str, dict[str, str]]:
        """Contacts first, then Leads, for every phone: two queries in one composite call."""
        listed = ", ".join(f"'{p}'" for p in phones)
        soql = "SELECT Id, Phone, MobilePhone FROM {} WHERE Phone IN ({}) OR MobilePhone IN ({})"
        answer = self._call(
            "POST",
            f"{API}/composite",
            {
                "allOrNone": False,
                "compositeRequest": [
                    {
                        "method": "GET",
                        "url": f"{API}/query?q={quote(soql.format(kind, listed, listed))}",
                        "referenceId": kind,
                    }
                    for kind in ("Contact", "Lead")
                ],
            },
        )
        found: dict[str, dict[str, str]] = {}
        for part in answer.get("compositeResponse", []):
            if part.get("httpStatusCode", 500) >= 300:
                raise CrmPermanent(f"composite lookup failed: {str(part.get('body'))[:200]}")
            for record in (part.get("body") or {}).get("records") or []:
                for phone in (record.get("Phone"), record.get("MobilePhone")):
                    if phone:
                        ref = {"id": str(record["Id"]), "type": str(part["referenceId"])}
                        found.setdefault(str(phone), ref)  # a Contact wins over a Lead
        return found

    def _log(
        self,
        requests: Sequence[SyncRequest],
        todo: list[int],
        who: dict[int, dict[str, str]],
        outcomes: list[Outcome | None],
        activities: dict[int, str],
    ) -> None:
        logs = [n for n in todo if requests[n].action == "log_message"]
        for n in logs:
            if requests[n].message is None:
                outcomes[n] = CrmPermanent("log_message without a message")
        logs = [n for n in logs if outcomes[n] is None]
        for start in range(0, len(logs), COLLECTION):
            chunk = logs[start : start + COLLECTION]
            records = [_task(requests[n], who[n]["id"]) for n in chunk]
            answers = self._call(
                "PATCH",
                f"{API}/composite/sobjects/Task/{TASK_EXTERNAL_ID}",
                {"allOrNone": False, "records": records},
            )
            for n, answer in zip(chunk, answers, strict=True):
                if answer.get("success"):
                    activities[n] = str(answer.get("id") or requests[n].known_activity or "")
                else:
                    outcomes[n] = _error_of(_record_error(answer)).about(who[n])

    def _fields(
        self,
        requests: Sequence[SyncRequest],
        todo: list[int],
        who: dict[int, dict[str, str]],
        outcomes: list[Outcome | None],
    ) -> None:
        changes: dict[str, dict[str, Any]] = {}
        owners: dict[str, list[int]] = {}
        for n in todo:
            request = requests[n]
            if request.action == "log_message":
                continue
            if request.action in ("opt_out", "opt_in"):
                fields: dict[str, Any] = {OPT_OUT_FIELD: request.action == "opt_out"}
            elif request.action == "routing":
                target = request.details.get("target")
                action = str(request.details.get("action"))
                fields = {ROUTING_FIELD: f"{action}:{target}" if target else action}
            else:
                outcomes[n] = CrmPermanent(f"no Salesforce mapping for {request.action}")
                continue
            record = changes.setdefault(
                who[n]["id"], {"attributes": {"type": who[n]["type"]}, "id": who[n]["id"]}
            )
            record.update(fields)  # in order: the later one wins
            owners.setdefault(who[n]["id"], []).append(n)
        records = list(changes.values())
        for start in range(0, len(records), COLLECTION):
            chunk = records[start : start + COLLECTION]
            answers = self._call(
                "PATCH", f"{API}/composite/sobjects", {"allOrNone": False, "records": chunk}
            )
            for record, answer in zip(chunk, answers, strict=True):
                if not answer.get("success"):
                    for n in owners[record["id"]]:
                        outcomes[n] = _error_of(_record_error(answer)).about(who[n])


def _task(request: SyncRequest, who_id: str) -> dict[str, Any]:
    message = request.message
    assert message is not None
    verb = "received" if message.direction == "inbound" else f"sent ({message.status})"
    return {
        "attributes": {"type": "Task"},
        TASK_EXTERNAL_ID: message.id,
        "Subject": f"{message.channel.upper()} {verb}",
        "Description": message.body or "",
        "WhoId": who_id,
        "Status": "Completed",
        "ActivityDate": message.at.date().isoformat(),
        "TaskSubtype": "Task",
    }


def _record_error(answer: dict[str, Any]) -> str:
    errors = answer.get("errors") or [{}]
    first = errors[0] if isinstance(errors[0], dict) else {}
    return f"{first.get('statusCode', 'UNKNOWN')}: {first.get('message', '')}"[:200]


def _error_of(reason: str) -> CrmError:
    if reason.split(":", 1)[0] in RETRYABLE_CODES:
        return CrmRetryable(reason)
    return CrmPermanent(reason)


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
