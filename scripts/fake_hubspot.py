"""A local HubSpot speaking the documented subset of the CRM v3 objects API.

Objects (contacts, communications) are created, read, updated and searched
(``EQ`` filters); communications keep their associations to contacts. Bearer
auth with ``FakeHubSpot.token``. Throttling answers 429 with HubSpot's
``X-HubSpot-RateLimit-*`` headers. Run it with ``python -m scripts.fake_hubspot``.
"""

from __future__ import annotations

import itertools
import re
import time
from datetime import UTC, datetime
from typing import Any

from scripts.fake_crm import Answer, FakeCrm, serve

_OBJECT = re.compile(r"^/crm/v3/objects/(contacts|communications)(?:/(search|\d+))?/?(?:\?.*)?$")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeHubSpot(FakeCrm):
    token = "fake-hubspot-token"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"contacts": {}, "communications": {}}
        self._ids = itertools.count(1001)
        self.created_ts: dict[str, float] = {}  # object id -> when it was created (time.time)

    # -- what tests read
    def contacts(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.objects["contacts"].values())

    def communications(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.objects["communications"].values())

    def state(self) -> dict[str, Any]:
        return {"contacts": self.contacts(), "communications": self.communications()}

    def throttled(self) -> Answer:
        return (
            429,
            {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "policyName": "TEN_SECONDLY_ROLLING",
                "category": "RATE_LIMITS",
            },
            {
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.retry_after * 1000)),
                "X-HubSpot-RateLimit-Max": "100",
                "X-HubSpot-RateLimit-Remaining": "0",
            },
        )

    def unauthorized_body(self) -> dict[str, Any]:
        return {
            "status": "error",
            "message": "Authentication credentials not found.",
            "category": "INVALID_AUTHENTICATION",
        }

    def handle(self, method: str, path: str, body: Any) -> Answer:
        match = _OBJECT.match(path)
        if match is None:
            return 404, {"status": "error", "message": "not found", "category": "NOT_FOUND"}, {}
        object_type, tail = match.groups()
        with self.lock:
            store = self.objects[object_type]
            if tail == "search" and method == "POST":
                return 200, self._search(store, body or {}), {}
            if tail is None and method == "POST":
                return self._create(object_type, store, body or {})
            if tail is not None and tail.isdigit():
                found = store.get(tail)
                if found is None:
                    return (
                        404,
                        {
                            "status": "error",
                            "message": "resource not found",
                            "category": "OBJECT_NOT_FOUND",
                        },
                        {},
                    )
                if method == "PATCH":
                    properties = (body or {}).get("properties")
                    if not isinstance(properties, dict):
                        return 400, _invalid("properties must be an object"), {}
                    found["properties"].update({k: _text(v) for k, v in properties.items()})
                    found["updatedAt"] = _now()
                    return 200, _public(found), {}
                if method == "GET":
                    return 200, _public(found), {}
        return 405, {"status": "error", "message": "method not allowed"}, {}

    def _create(self, object_type: str, store: dict[str, Any], body: dict[str, Any]) -> Answer:
        properties = body.get("properties")
        if not isinstance(properties, dict):
            return 400, _invalid("properties must be an object"), {}
        channels = ("SMS", "WHATS_APP", "LINKEDIN_MESSAGE")
        if object_type == "communications" and (
            properties.get("hs_communication_channel_type") not in channels
        ):
            return 400, _invalid("hs_communication_channel_type is required"), {}
        associations = []
        for association in body.get("associations") or []:
            target = str((association.get("to") or {}).get("id"))
            if target not in self.objects["contacts"]:
                return 400, _invalid(f"association to unknown contact {target}"), {}
            associations.append(target)
        object_id = str(next(self._ids))
        now = _now()
        record = {
            "id": object_id,
            "properties": {k: _text(v) for k, v in properties.items()},
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
            "associations": associations,
        }
        store[object_id] = record
        self.created_ts[object_id] = time.time()
        return 201, _public(record), {}

    def _search(self, store: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        groups = body.get("filterGroups") or []

        def matches(record: dict[str, Any]) -> bool:
            if not groups:
                return True
            return any(
                all(
                    f.get("operator") == "EQ"
                    and record["properties"].get(f.get("propertyName")) == str(f.get("value"))
                    for f in group.get("filters", [])
                )
                for group in groups
            )

        found = [_public(r) for r in store.values() if matches(r)]
        limit = int(body.get("limit") or 10)
        return {"total": len(found), "results": found[:limit]}


def _text(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "associations"}


def _invalid(message: str) -> dict[str, Any]:
    return {"status": "error", "message": message, "category": "VALIDATION_ERROR"}


def main() -> None:
    serve(FakeHubSpot(port=4020), "HubSpot")


if __name__ == "__main__":
    main()
