"""A local HubSpot speaking the documented subset of the CRM v3 objects API.

Objects (contacts, communications) are created, read, updated and searched
(``EQ`` and ``IN`` filters, sorted, paged with ``after``), one at a time or in batches
(``batch/create``, ``batch/update``, ``batch/read``: at most 100 inputs, else 400;
an update of unknown ids answers 207 with the ids in the error's ``context``);
communications keep their associations to contacts. Bearer auth with ``FakeHubSpot.token``.

The limits are HubSpot's published ones for an app on an account, enforced:
- ``calls`` per rolling ``window`` seconds (100 per 10 s: Free and Starter);
- ``searches`` a second on the search endpoints (5);
- ``daily`` calls a day (250,000).
A call over one is refused with 429, HubSpot's error shape (``policyName``
``TEN_SECONDLY_ROLLING``, ``SECONDLY`` or ``DAILY``) and headers; every other answer
carries ``X-HubSpot-RateLimit-Max``, ``-Remaining``, ``-Interval-Milliseconds``,
``-Daily`` and ``-Daily-Remaining`` (search answers carry none, as HubSpot's do).
Run it with ``python -m scripts.fake_hubspot``.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from scripts.fake_crm import Answer, FakeCrm, serve

_OBJECT = re.compile(
    r"^/crm/v3/objects/(contacts|communications)"
    r"(?:/(search|batch/create|batch/update|batch/read|\d+))?/?(?:\?.*)?$"
)
BATCH_LIMIT = 100


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeHubSpot(FakeCrm):
    token = "fake-hubspot-token"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"contacts": {}, "communications": {}}
        self._ids = itertools.count(1001)
        self.created_ts: dict[str, float] = {}  # object id -> when it was created (time.time)
        self.calls, self.window, self.searches, self.daily = 100, 10.0, 5, 250_000
        self._recent: deque[float] = deque()  # when each admitted call came, in the window
        self._recent_searches: deque[float] = deque()
        self.used_today = 0

    def limit(self, *, calls: int, window: float = 10.0, searches: int = 5, daily: int) -> None:
        with self.lock:
            self.calls, self.window, self.searches, self.daily = calls, window, searches, daily

    def calls_in_window(self) -> int:
        now = time.monotonic()
        with self.lock:
            return sum(1 for t in self._recent if t > now - self.window)

    def admit(self, method: str, path: str, body: Any) -> Answer | None:
        now = time.monotonic()
        with self.lock:
            while self._recent and self._recent[0] <= now - self.window:
                self._recent.popleft()
            while self._recent_searches and self._recent_searches[0] <= now - 1.0:
                self._recent_searches.popleft()
            if self.used_today >= self.daily:
                return self._refusal("DAILY", "daily", 86_400_000)
            if len(self._recent) >= self.calls:
                return self._refusal(
                    "TEN_SECONDLY_ROLLING", "ten_secondly_rolling", self.window * 1000
                )
            search = path.split("?")[0].endswith("/search")
            if search and len(self._recent_searches) >= self.searches:
                return self._refusal("SECONDLY", "secondly", 1000)
            self._recent.append(now)
            if search:
                self._recent_searches.append(now)
            self.used_today += 1
            return None

    def _refusal(self, policy: str, name: str, interval_ms: float) -> Answer:
        return (
            429,
            {
                "status": "error",
                "message": f"You have reached your {name} limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": f"fake-{time.monotonic_ns()}",
                "policyName": policy,
                "category": "RATE_LIMITS",
            },
            {
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(interval_ms)),
                "X-HubSpot-RateLimit-Max": str(self.calls),
                "X-HubSpot-RateLimit-Remaining": "0",
            },
        )

    def limit_headers(self, path: str) -> dict[str, str]:
        if path.split("?")[0].endswith("/search"):
            return {}  # HubSpot's search answers carry no limit headers
        with self.lock:
            return {
                "X-HubSpot-RateLimit-Max": str(self.calls),
                "X-HubSpot-RateLimit-Remaining": str(max(0, self.calls - len(self._recent))),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window * 1000)),
                "X-HubSpot-RateLimit-Daily": str(self.daily),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily - self.used_today)),
            }

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
                return self._search(store, body or {})
            if tail is None and method == "POST":
                return self._create(object_type, store, body or {})
            if tail is not None and tail.startswith("batch/") and method == "POST":
                return self._batch(object_type, store, tail.split("/")[1], body or {})
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

    def _batch(
        self, object_type: str, store: dict[str, Any], verb: str, body: dict[str, Any]
    ) -> Answer:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            return 400, _invalid("inputs must be a non-empty list"), {}
        if len(inputs) > BATCH_LIMIT:
            return 400, _invalid(f"Batch size must be at most {BATCH_LIMIT}"), {}
        started = _now()
        if verb == "create":
            for one in inputs:  # all or nothing, as HubSpot validates a batch create
                problem = self._invalid_input(object_type, one)
                if problem:
                    return 400, _invalid(problem), {}
            results = [self._create(object_type, store, one)[1] for one in inputs]
            return 201, _batch_answer(results, [], started), {}
        if verb not in ("update", "read"):
            return 404, {"status": "error", "message": "not found", "category": "NOT_FOUND"}, {}
        results, missing = [], []
        for one in inputs:
            found = store.get(str(one.get("id")))
            if found is None:
                missing.append(str(one.get("id")))
                continue
            if verb == "update":
                properties = one.get("properties")
                if not isinstance(properties, dict):
                    return 400, _invalid("properties must be an object"), {}
                found["properties"].update({k: _text(v) for k, v in properties.items()})
                found["updatedAt"] = _now()
            results.append(_public(found))
        errors = []
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {object_type} objects, they may be deleted "
                    "or not exist. Check that ids are valid.",
                    "context": {"ids": missing},
                }
            )
        return (207 if errors else 200), _batch_answer(results, errors, started), {}

    def _invalid_input(self, object_type: str, body: dict[str, Any]) -> str | None:
        properties = body.get("properties")
        if not isinstance(properties, dict):
            return "properties must be an object"
        channels = ("SMS", "WHATS_APP", "LINKEDIN_MESSAGE")
        if object_type == "communications" and (
            properties.get("hs_communication_channel_type") not in channels
        ):
            return "hs_communication_channel_type is required"
        for association in body.get("associations") or []:
            target = str((association.get("to") or {}).get("id"))
            if target not in self.objects["contacts"]:
                return f"association to unknown contact {target}"
        return None

    def _create(self, object_type: str, store: dict[str, Any], body: dict[str, Any]) -> Answer:
        problem = self._invalid_input(object_type, body)
        if problem:
            return 400, _invalid(problem), {}
        properties = body["properties"]
        associations = [str((a.get("to") or {}).get("id")) for a in body.get("associations") or []]
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

    def _search(self, store: dict[str, Any], body: dict[str, Any]) -> Answer:
        groups = body.get("filterGroups") or []
        for group in groups:
            for f in group.get("filters", []):
                if f.get("operator") == "IN" and len(f.get("values") or []) > BATCH_LIMIT:
                    return 400, _invalid(f"IN takes at most {BATCH_LIMIT} values"), {}
                if f.get("operator") not in ("EQ", "IN"):
                    return 400, _invalid(f"unsupported operator {f.get('operator')}"), {}

        def holds(record: dict[str, Any], f: dict[str, Any]) -> bool:
            value = record["properties"].get(f.get("propertyName"))
            if f.get("operator") == "IN":
                return value in {str(v) for v in f.get("values") or []}
            return bool(value == str(f.get("value")))

        def matches(record: dict[str, Any]) -> bool:
            if not groups:
                return True
            return any(all(holds(record, f) for f in g.get("filters", [])) for g in groups)

        found = sorted((r for r in store.values() if matches(r)), key=lambda r: int(r["id"]))
        limit = min(int(body.get("limit") or 10), 200)
        start = int(body.get("after") or 0)
        page = [_public(r) for r in found[start : start + limit]]
        answer: dict[str, Any] = {"total": len(found), "results": page}
        if start + limit < len(found):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        return 200, answer, {}


def _batch_answer(
    results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": _now(),
    }
    if errors:
        answer["numErrors"] = len(errors)
        answer["errors"] = errors
    return answer


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
