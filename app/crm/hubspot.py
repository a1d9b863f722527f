"""HubSpot (CRM v3 API): contacts found or created by phone, each message a Communication.

A batch of syncs costs a handful of calls, whatever its size (up to 100 records a call):
one search with ``IN`` for the contacts we have no id for, one batch create for the ones
HubSpot does not know, one batch create of Communications with their associations inline
(and a batch update for later statuses), one batch update of contact properties
(opt-outs, routing). A replay first looks its Communications up by
``switchboard_message_id`` (one search with ``IN``), so a lost answer never doubles one.

Plain HTTP against the documented endpoints rather than ``hubspot-api-client``: we
need one timeout per call, no hidden retries (the database holds our backoff), and
the 429 and limit headers, which the client's exceptions do not surface. The local fake
is checked against the client once, batch calls included, so the two speak the same shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from app.crm.base import (
    Connector,
    CrmError,
    CrmPermanent,
    CrmRetryable,
    CrmThrottled,
    CrmUnauthorized,
    Outcome,
    SyncRequest,
    SyncResult,
    classify_http,
    hold_back,
)
from app.domain.retries import retry_after_seconds

DEFAULT_BASE_URL = "https://api.hubapi.com"
# HubSpot-defined association: communication to contact.
COMMUNICATION_TO_CONTACT = 81
OPT_OUT_PROPERTY = "switchboard_sms_opt_out"
ROUTING_PROPERTY = "switchboard_routing"
MESSAGE_ID_PROPERTY = "switchboard_message_id"
BATCH = 100  # records per batch call, and values per IN filter
SEARCH_PAGES = 10


class HubSpot(Connector):
    kind = "hubspot"
    batch_size = BATCH

    @property
    def _base(self) -> str:
        return str(self.config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, search: bool = False
    ) -> dict[str, Any]:
        response = self._call_http(
            method,
            f"{self._base}{path}",
            search=search,
            json=body,
            headers={"Authorization": f"Bearer {self.config['token']}"},
        )
        if response.status_code < 300:
            data: dict[str, Any] = response.json() if response.content else {}
            return data
        raise _classify(response, f"{method} {path}")

    def observe(self, response: Any) -> None:
        """HubSpot states its limits on each answer: learn them, and stop at zero. (A 429
        is read by ``_classify``: its headers describe the refusal, not the plan.)"""
        if response.status_code >= 300:
            return
        headers = response.headers
        stated = {
            "calls": _int(headers.get("X-HubSpot-RateLimit-Max")),
            "window_seconds": (_int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")) or 0)
            / 1000
            or None,
            "daily": _int(headers.get("X-HubSpot-RateLimit-Daily")),
        }
        self.budget.learn(**stated)
        if headers.get("X-HubSpot-RateLimit-Daily-Remaining") == "0":
            self.budget.pause(3600.0, "HubSpot daily limit reached")
        elif headers.get("X-HubSpot-RateLimit-Remaining") == "0" and response.status_code != 429:
            self.budget.pause(stated["window_seconds"] or 10.0, "HubSpot window used up")

    # -- lookups

    def _search_in(self, object_type: str, prop: str, values: Sequence[str]) -> dict[str, str]:
        """The id of the first object whose ``prop`` is each value; one call per 100 values."""
        found: dict[str, str] = {}
        for start in range(0, len(values), BATCH):
            chunk = list(values[start : start + BATCH])
            after: str | None = None
            for _ in range(SEARCH_PAGES):
                body: dict[str, Any] = {
                    "filterGroups": [
                        {"filters": [{"propertyName": prop, "operator": "IN", "values": chunk}]}
                    ],
                    "properties": [prop],
                    "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                    "limit": BATCH,
                }
                if after:
                    body["after"] = after
                page = self._call(
                    "POST", f"/crm/v3/objects/{object_type}/search", body, search=True
                )
                for result in page.get("results") or []:
                    value = (result.get("properties") or {}).get(prop)
                    if value is not None:
                        found.setdefault(str(value), str(result["id"]))
                after = ((page.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
        return found

    def _batch(
        self, object_type: str, verb: str, inputs: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """A batch create or update, 100 at a time: the results, and per id what failed."""
        results: list[dict[str, Any]] = []
        failed: dict[str, str] = {}
        for start in range(0, len(inputs), BATCH):
            answer = self._call(
                "POST",
                f"/crm/v3/objects/{object_type}/batch/{verb}",
                {"inputs": inputs[start : start + BATCH]},
            )
            results += answer.get("results") or []
            for error in answer.get("errors") or []:  # a 207: some records failed
                why = f"{error.get('category', 'error')}: {error.get('message', '')}"
                for failed_id in (error.get("context") or {}).get("ids") or []:
                    failed[str(failed_id)] = why[:200]
        return results, failed

    # -- one at a time (the path a batch falls back to, to find its bad record)

    def apply(self, request: SyncRequest) -> SyncResult:
        return _only(self.apply_batch([request], isolate=False))

    def _one(self, request: SyncRequest) -> Outcome:
        try:
            return self.apply(request)
        except CrmError as exc:
            return exc

    # -- many at once

    def apply_batch(
        self, requests: Sequence[SyncRequest], *, isolate: bool = True
    ) -> list[Outcome]:
        run = _Run(self, list(requests))
        try:
            for phase in (run.contacts, run.activities, run.properties):
                hold_back(run.requests, run.outcomes)
                phase()
        except (CrmThrottled, CrmRetryable) as exc:
            run.fail_open(exc)  # the whole batch waits or backs off, as one
        except CrmUnauthorized as exc:
            run.fail_open(exc)
        except CrmPermanent as exc:
            if not isolate or len(run.open()) <= 1:
                run.fail_open(exc)
            else:  # one record is bad: write each on its own, so only it fails
                for n in run.open():
                    hold_back(run.requests, run.outcomes)
                    if run.outcomes[n] is None:
                        run.outcomes[n] = self._one(run.with_contact(n))
        return run.result()


class _Run:
    """One batch's way through the phases; each record ends with one outcome."""

    def __init__(self, hub: HubSpot, requests: list[SyncRequest]) -> None:
        self.hub = hub
        self.requests = requests
        self.outcomes: list[Outcome | None] = [None] * len(requests)
        self.contact_ids: dict[int, str] = {
            n: r.known_contact["id"] for n, r in enumerate(requests) if r.known_contact.get("id")
        }
        self.activity_ids: dict[int, str] = {}

    def open(self) -> list[int]:
        return [n for n, o in enumerate(self.outcomes) if o is None]

    def contact(self, n: int) -> dict[str, str]:
        found = self.contact_ids.get(n)
        return {"id": found, "type": "contact"} if found else {}

    def with_contact(self, n: int) -> SyncRequest:
        request = self.requests[n]
        return replace(request, known_contact=self.contact(n) or request.known_contact)

    def fail_open(self, error: CrmError) -> None:
        for n in self.open():
            self.outcomes[n] = error.about(self.contact(n))

    def result(self) -> list[Outcome]:
        return [
            o if o is not None else SyncResult(self.contact(n), self.activity_ids.get(n))
            for n, o in enumerate(self.outcomes)
        ]

    def contacts(self) -> None:
        unknown = [n for n in self.open() if n not in self.contact_ids]
        phones = sorted({self.requests[n].phone for n in unknown})
        if not phones:
            return
        by_phone = self.hub._search_in("contacts", "phone", phones)
        missing = [p for p in phones if p not in by_phone]
        if missing:
            inputs = [{"properties": {"phone": p, "lifecyclestage": "lead"}} for p in missing]
            created, _ = self.hub._batch("contacts", "create", inputs)
            for record in created:
                phone = (record.get("properties") or {}).get("phone")
                if phone:
                    by_phone.setdefault(str(phone), str(record["id"]))
        for n in unknown:
            found = by_phone.get(self.requests[n].phone)
            if found is None:
                self.outcomes[n] = CrmRetryable("HubSpot did not return the created contact")
            else:
                self.contact_ids[n] = found

    def activities(self) -> None:
        logs = [n for n in self.open() if self.requests[n].action == "log_message"]
        for n in logs:
            if self.requests[n].message is None:
                self.outcomes[n] = CrmPermanent("log_message without a message")
        logs = [n for n in logs if self.outcomes[n] is None]
        if not logs:
            return
        for n in logs:
            if self.requests[n].known_activity:
                self.activity_ids[n] = str(self.requests[n].known_activity)
        # An earlier try may have created it and lost the answer: find it, never double it.
        replays = [n for n in logs if n not in self.activity_ids and not self.requests[n].first_try]
        if replays:
            ids = [_message(self.requests[n]).id for n in replays]
            found = self.hub._search_in("communications", MESSAGE_ID_PROPERTY, ids)
            for n in replays:
                existing = found.get(_message(self.requests[n]).id)
                if existing:
                    self.activity_ids[n] = existing
        updates = [n for n in logs if n in self.activity_ids]
        if updates:
            changes: list[dict[str, Any]] = [
                {"id": self.activity_ids[n], "properties": _properties(self.requests[n])}
                for n in updates
            ]
            _, failed = self.hub._batch("communications", "update", changes)
            for n in updates:
                if self.activity_ids[n] in failed:
                    self.outcomes[n] = CrmPermanent(failed[self.activity_ids[n]]).about(
                        self.contact(n)
                    )
        creates = [n for n in logs if n not in self.activity_ids]
        if creates:
            inputs = [
                {
                    "properties": _properties(self.requests[n]),
                    "associations": [_association(self.contact_ids[n])],
                }
                for n in creates
            ]
            created, _ = self.hub._batch("communications", "create", inputs)
            by_message = {
                str((r.get("properties") or {}).get(MESSAGE_ID_PROPERTY)): str(r["id"])
                for r in created
            }
            for n in creates:
                activity = by_message.get(_message(self.requests[n]).id)
                if activity is None:
                    self.outcomes[n] = CrmRetryable("HubSpot did not return the Communication")
                else:
                    self.activity_ids[n] = activity

    def properties(self) -> None:
        changes: dict[str, dict[str, str]] = {}
        owners: dict[str, list[int]] = {}
        for n in self.open():
            request = self.requests[n]
            if request.action == "log_message":
                continue
            if request.action in ("opt_out", "opt_in"):
                value = {OPT_OUT_PROPERTY: "true" if request.action == "opt_out" else "false"}
            elif request.action == "routing":
                target = request.details.get("target")
                action = str(request.details.get("action"))
                value = {ROUTING_PROPERTY: f"{action}:{target}" if target else action}
            else:
                self.outcomes[n] = CrmPermanent(f"no HubSpot mapping for {request.action}")
                continue
            contact_id = self.contact_ids[n]
            changes.setdefault(contact_id, {}).update(value)  # in order: the later one wins
            owners.setdefault(contact_id, []).append(n)
        if not changes:
            return
        inputs = [{"id": cid, "properties": props} for cid, props in changes.items()]
        _, failed = self.hub._batch("contacts", "update", inputs)
        for contact_id, why in failed.items():
            for n in owners.get(contact_id, []):
                self.outcomes[n] = CrmPermanent(why).about(self.contact(n))


def _message(request: SyncRequest) -> Any:
    assert request.message is not None
    return request.message


def _properties(request: SyncRequest) -> dict[str, str]:
    message = _message(request)
    return {
        "hs_communication_channel_type": "SMS",
        "hs_communication_logged_from": "CRM",
        "hs_communication_body": message.body or "",
        "hs_timestamp": message.at.isoformat(),
        MESSAGE_ID_PROPERTY: message.id,
        "switchboard_direction": message.direction,
        "switchboard_status": message.status,
    }


def _association(contact_id: str) -> dict[str, Any]:
    return {
        "to": {"id": contact_id},
        "types": [
            {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": COMMUNICATION_TO_CONTACT,
            }
        ],
    }


def _only(outcomes: list[Outcome]) -> SyncResult:
    (outcome,) = outcomes
    if isinstance(outcome, CrmError):
        raise outcome
    return outcome


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _classify(response: Any, what: str) -> CrmError:
    if response.status_code == 429:
        # HubSpot's rolling windows: Retry-After when given, else the window's length.
        wait = retry_after_seconds(response.headers.get("Retry-After"), default=0.0)
        if not wait:
            interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")
            wait = int(interval) / 1000 if interval.isdigit() else 10.0
        return CrmThrottled(f"{what}: HubSpot rate limit", min(wait, 3600.0))
    return classify_http(response, what)
