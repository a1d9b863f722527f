"""A local Salesforce speaking the documented subset of the REST API (v59.0).

SOQL queries of the form ``SELECT Id[, Field...] FROM Object WHERE Field = 'v'`` or
``Field IN ('a', 'b')`` ``[OR ...] [LIMIT n]``; sObject create, read and update, upsert
by an external id field; the composite API; and sObject Collections (create, update,
upsert by an external id; at most 200 records, each succeeding or failing on its own
with ``allOrNone: false``). Bearer auth with ``FakeSalesforce.token``.

The org's rolling daily allowance is counted (``allowance``, default 100,000 calls; a
composite call is one): every answer carries ``Sforce-Limit-Info: api-usage=used/max``,
and a call past the allowance is refused with 403 ``REQUEST_LIMIT_EXCEEDED``, as
Salesforce does. Run it with ``python -m scripts.fake_salesforce``.
"""

from __future__ import annotations

import itertools
import re
import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from scripts.fake_crm import Answer, FakeCrm, serve

API = "/services/data/v59.0"
PREFIXES = {"Contact": "003", "Lead": "00Q", "Task": "00T"}
_SOQL = re.compile(
    r"^SELECT\s+(Id(?:\s*,\s*\w+)*)\s+FROM\s+(\w+)(?:\s+WHERE\s+(.+?))?"
    r"(?:\s+LIMIT\s+(\d+))?\s*$",
    re.I,
)
_CONDITION = re.compile(r"^(\w+)\s*=\s*'([^']*)'$")
_IN = re.compile(r"^(\w+)\s+IN\s*\(((?:\s*'[^']*'\s*,?)*)\)$", re.I)
COLLECTION_LIMIT = 200


class FakeSalesforce(FakeCrm):
    token = "fake-salesforce-token"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.records: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in PREFIXES}
        self._ids = itertools.count(1)
        self.composite_calls = 0
        self.allowance = 100_000
        self.used = 0
        self.created_ts: dict[str, float] = {}  # record id -> when it was created (time.time)

    def admit(self, method: str, path: str, body: Any) -> Answer | None:
        with self.lock:
            if self.used >= self.allowance:
                return self.throttled()
            self.used += 1
            return None

    def limit_headers(self, path: str) -> dict[str, str]:
        with self.lock:
            return {"Sforce-Limit-Info": f"api-usage={self.used}/{self.allowance}"}

    def of(self, sobject: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.records[sobject].values()]

    def state(self) -> dict[str, Any]:
        return {t: self.of(t) for t in PREFIXES}

    def throttled(self) -> Answer:
        return (
            403,
            [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
            {"Sforce-Limit-Info": f"api-usage={self.used}/{self.allowance}"},
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
        if rest[:2] == ["composite", "sobjects"]:
            return self._collection(method, rest[2:], body or {})
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
        self.created_ts[record_id] = time.time()
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
        if match is None or match.group(2) not in PREFIXES:
            return _malformed(f"unexpected query: {soql[:80]}")
        fields_raw, sobject, where, limit = match.groups()
        fields = [f.strip() for f in fields_raw.split(",")]
        records = list(self.records[sobject].values())
        if where:
            alternatives = [a.strip() for a in re.split(r"\s+OR\s+", where, flags=re.I)]
            conditions: list[tuple[str, set[str]]] = []
            for alternative in alternatives:
                equal, listed = _CONDITION.match(alternative), _IN.match(alternative)
                if equal is not None:
                    conditions.append((equal.group(1), {equal.group(2)}))
                elif listed is not None:
                    values = set(re.findall(r"'([^']*)'", listed.group(2)))
                    conditions.append((listed.group(1), values))
                else:
                    return _malformed(f"unexpected condition: {alternative[:80]}")
            records = [r for r in records if any(r.get(f) in v for f, v in conditions)]
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
                        **{f: r.get(f) for f in fields},
                    }
                    for r in records
                ],
            },
            {},
        )

    def _collection(self, method: str, rest: list[str], body: dict[str, Any]) -> Answer:
        """sObject Collections: create (POST), update (PATCH), upsert (PATCH Type/Field)."""
        records = body.get("records")
        if not isinstance(records, list) or not records:
            return _malformed("records must be a non-empty list", "INVALID_FIELD")
        if len(records) > COLLECTION_LIMIT:
            return (
                400,
                [
                    {
                        "errorCode": "EXCEEDED_ID_LIMIT",
                        "message": f"record limit exceeded: at most {COLLECTION_LIMIT}",
                    }
                ],
                {},
            )
        if body.get("allOrNone"):
            return _malformed("this fake takes allOrNone: false only", "INVALID_FIELD")
        answers = []
        for record in records:
            fields = {k: v for k, v in record.items() if k != "attributes"}
            sobject = (record.get("attributes") or {}).get("type")
            if len(rest) == 2 and method == "PATCH":
                sobject = rest[0]
            if sobject not in PREFIXES:
                answers.append(_failed("INVALID_TYPE", f"no sObject type {sobject}"))
                continue
            if not rest and method == "POST":
                status, answer, _ = self._create(sobject, fields)
            elif not rest and method == "PATCH":
                record_id = str(fields.pop("id", "") or fields.pop("Id", ""))
                found = self.records[sobject].get(record_id)
                problem = self._check(fields)
                if found is None:
                    answers.append(_failed("ENTITY_IS_DELETED", "entity is deleted"))
                    continue
                if problem:
                    status, answer = 400, problem
                else:
                    found.update(fields)
                    status, answer = 200, {"id": record_id, "success": True, "errors": []}
            elif len(rest) == 2 and method == "PATCH":
                external = str(fields.pop(rest[1], ""))
                status, answer, _ = self._upsert(sobject, rest[1], external, fields)
            else:
                return _malformed("unsupported collection call", "NOT_FOUND")
            if status >= 300:
                error = answer[0] if isinstance(answer, list) and answer else {}
                answers.append(
                    _failed(
                        str(error.get("errorCode", "UNKNOWN")),
                        str(error.get("message", "")),
                        error.get("fields") or [],
                    )
                )
            else:
                answers.append(answer)
        return 200, answers, {}

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


def _malformed(message: str, code: str = "MALFORMED_QUERY") -> Answer:
    return 400, [{"errorCode": code, "message": message}], {}


def _failed(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {
        "success": False,
        "errors": [{"statusCode": code, "message": message, "fields": fields or []}],
    }


def main() -> None:
    serve(FakeSalesforce(port=4030), "Salesforce")


if __name__ == "__main__":
    main()
