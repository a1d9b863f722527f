"""A local Salesforce speaking the documented subset of the REST API (v59.0).

SOQL queries of the form ``SELECT Id FROM Object WHERE Field = 'v' [OR ...] LIMIT n``,
sObject create, read and update, upsert by an external id field, and the composite
API. Bearer auth with ``FakeSalesforce.token``. Throttling answers 403
``REQUEST_LIMIT_EXCEEDED``, as Salesforce does. Run it with
``python -m scripts.fake_salesforce``.
"""

from __future__ import annotations

import itertools
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from scripts.fake_crm import Answer, FakeCrm, serve

API = "/services/data/v59.0"
PREFIXES = {"Contact": "003", "Lead": "00Q", "Task": "00T"}
_SOQL = re.compile(
    r"^SELECT\s+Id\s+FROM\s+(\w+)(?:\s+WHERE\s+(.+?))?(?:\s+LIMIT\s+(\d+))?\s*$", re.I
)
_CONDITION = re.compile(r"^(\w+)\s*=\s*'([^']*)'$")


class FakeSalesforce(FakeCrm):
    token = "fake-salesforce-token"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.records: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in PREFIXES}
        self._ids = itertools.count(1)
        self.composite_calls = 0

    def of(self, sobject: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.records[sobject].values()]

    def state(self) -> dict[str, Any]:
        return {t: self.of(t) for t in PREFIXES}

    def throttled(self) -> Answer:
        return (
            403,
            [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
            {},
        )

    def unauthorized_body(self) -> list[dict[str, str]]:
        return [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]

    def handle(self, method: str, path: str, body: Any) -> Answer:
        with self.lock:
            return self._route(method, path, body)

    def _route(self, method: str, path: str, body: Any) -> Answer:
        url = urlparse(path)
        if not url.path.startswith(API):
            return (
                404,
                [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
                {},
            )
        rest = url.path[len(API) :].strip("/").split("/")
        if rest == ["query"] and method == "GET":
            return self._query(parse_qs(url.query).get("q", [""])[0])
        if rest == ["composite"] and method == "POST":
            return self._composite(body or {})
        if rest[0] == "sobjects" and len(rest) >= 2 and rest[1] in PREFIXES:
            sobject = rest[1]
            if len(rest) == 2 and method == "POST":
                return self._create(sobject, body or {})
            if len(rest) == 3:
                record = self.records[sobject].get(rest[2])
                if record is None:
                    return (
                        404,
                        [
                            {
                                "errorCode": "NOT_FOUND",
                                "message": "The requested resource does not exist",
                            }
                        ],
                        {},
                    )
                if method == "GET":
                    return 200, {"attributes": {"type": sobject}, **record}, {}
                if method == "PATCH":
                    problem = self._check(body or {})
                    if problem:
                        return 400, problem, {}
                    record.update(body or {})
                    return 204, None, {}
            if len(rest) == 4 and method == "PATCH":
                return self._upsert(sobject, rest[2], unquote(rest[3]), body or {})
        return (
            404,
            [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
            {},
        )

    def _check(self, fields: dict[str, Any]) -> list[dict[str, Any]] | None:
        who = fields.get("WhoId")
        if (
            who is not None
            and who not in self.records["Contact"]
            and who not in self.records["Lead"]
        ):
            return [
                {
                    "errorCode": "INVALID_CROSS_REFERENCE_KEY",
                    "message": f"invalid cross reference id: {who}",
                    "fields": ["WhoId"],
                }
            ]
        return None

    def _create(self, sobject: str, fields: dict[str, Any]) -> Answer:
        if sobject == "Lead" and not (fields.get("LastName") and fields.get("Company")):
            return (
                400,
                [
                    {
                        "errorCode": "REQUIRED_FIELD_MISSING",
                        "message": "Required fields are missing: [LastName, Company]",
                        "fields": ["LastName", "Company"],
                    }
                ],
                {},
            )
        problem = self._check(fields)
        if problem:
            return 400, problem, {}
        record_id = f"{PREFIXES[sobject]}{next(self._ids):015d}"
        self.records[sobject][record_id] = {"Id": record_id, **fields}
        return 201, {"id": record_id, "success": True, "errors": []}, {}

    def _upsert(self, sobject: str, field: str, value: str, fields: dict[str, Any]) -> Answer:
        problem = self._check(fields)
        if problem:
            return 400, problem, {}
        for record in self.records[sobject].values():
            if record.get(field) == value:
                record.update(fields)
                return (
                    200,
                    {"id": record["Id"], "success": True, "errors": [], "created": False},
                    {},
                )
        status, answer, headers = self._create(sobject, {**fields, field: value})
        if status != 201:
            return status, answer, headers
        return 201, {**answer, "created": True}, headers

    def _query(self, soql: str) -> Answer:
        match = _SOQL.match(soql.strip())
        if match is None or match.group(1) not in PREFIXES:
            return (
                400,
                [{"errorCode": "MALFORMED_QUERY", "message": f"unexpected query: {soql[:80]}"}],
                {},
            )
        sobject, where, limit = match.groups()
        records = list(self.records[sobject].values())
        if where:
            alternatives = [a.strip() for a in re.split(r"\s+OR\s+", where, flags=re.I)]
            conditions = []
            for alternative in alternatives:
                found = _CONDITION.match(alternative)
                if found is None:
                    return (
                        400,
                        [
                            {
                                "errorCode": "MALFORMED_QUERY",
                                "message": f"unexpected condition: {alternative}",
                            }
                        ],
                        {},
                    )
                conditions.append(found.groups())
            records = [r for r in records if any(r.get(f) == v for f, v in conditions)]
        records = records[: int(limit)] if limit else records
        return (
            200,
            {
                "totalSize": len(records),
                "done": True,
                "records": [
                    {
                        "attributes": {
                            "type": sobject,
                            "url": f"{API}/sobjects/{sobject}/{r['Id']}",
                        },
                        "Id": r["Id"],
                    }
                    for r in records
                ],
            },
            {},
        )

    def _composite(self, body: dict[str, Any]) -> Answer:
        self.composite_calls += 1
        answers = []
        for sub in body.get("compositeRequest") or []:
            status, answer, _ = self._route(
                sub.get("method", "GET"), sub.get("url", ""), sub.get("body")
            )
            answers.append(
                {
                    "body": answer,
                    "httpHeaders": {},
                    "httpStatusCode": status,
                    "referenceId": sub.get("referenceId"),
                }
            )
        return 200, {"compositeResponse": answers}, {}


def main() -> None:
    serve(FakeSalesforce(port=4030), "Salesforce")


if __name__ == "__main__":
    main()
