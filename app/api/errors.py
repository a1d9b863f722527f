"""RFC 9457 problem+json errors, with a machine-readable ``reason`` a client can act on."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_TYPE = "urn:switchboard:problem:"


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        *,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.title = title or reason.replace("_", " ").capitalize()
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}


def problem_response(problem: Problem) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + problem.reason,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "reason": problem.reason,
        **problem.extra,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    response = Response(
        json.dumps(body), status=problem.status, mimetype="application/problem+json"
    )
    for key, value in problem.headers.items():
        response.headers[key] = value
    return response


def validation_problem(exc: ValidationError) -> Problem:
    errors = [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "(body)",
            "code": err["type"],
            "message": err["msg"].removeprefix("Value error, "),
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return Problem(422, "validation_failed", "the request body failed validation", errors=errors)


_HTTP_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(exc: Problem) -> Response:
        return problem_response(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        reason = _HTTP_REASONS.get(status, "http_error")
        response = problem_response(
            Problem(status, reason, exc.description or exc.name, title=exc.name)
        )
        if status == 405 and exc.response is None:
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def _db_down(exc: Exception) -> Response:
        log.error("database unavailable", extra={"error": type(exc).__name__})
        return problem_response(
            Problem(
                503,
                "database_unavailable",
                "the database is unavailable; nothing was stored",
                headers={"Retry-After": "5"},
            )
        )

    @app.errorhandler(DBAPIError)
    def _db_error(exc: DBAPIError) -> Response:
        if exc.connection_invalidated:
            return _db_down(exc)
        log.exception("database error")
        return problem_response(Problem(500, "internal_error", "an unexpected database error"))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return problem_response(Problem(500, "internal_error", "an unexpected error occurred"))
