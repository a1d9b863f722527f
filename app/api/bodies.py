"""Reading request bodies: JSON only, bounded in size and depth, with a clear error for each."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from app.api.errors import Problem, validation_problem

M = TypeVar("M", bound=BaseModel)

MAX_DEPTH = 32


def check_json_shape(payload: Any) -> None:
    """400 for nesting past MAX_DEPTH or a NUL character anywhere (neither store safely).

    Iterative, so a body nested thousands deep cannot exhaust the stack here.
    """
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise Problem(400, "malformed_json", "strings must not contain NUL characters")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise Problem(400, "too_deeply_nested", f"JSON nests deeper than {MAX_DEPTH} levels")
        items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                raise Problem(400, "malformed_json", "keys must not contain NUL characters")
            stack.append((item, depth + 1))


def json_object() -> dict[str, Any]:
    """The request's JSON object; 415 if not JSON, 413 if too large, 400 if malformed."""
    if not request.mimetype or not (
        request.mimetype == "application/json" or request.mimetype.endswith("+json")
    ):
        raise Problem(415, "unsupported_media_type", "send Content-Type: application/json")
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        payload = json.loads(raw)
    except RecursionError:
        raise Problem(
            400, "too_deeply_nested", f"JSON nests deeper than {MAX_DEPTH} levels"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Problem(400, "malformed_json", "the body must be a JSON object")
    check_json_shape(payload)
    return payload


def parse_body(model: type[M]) -> M:
    """The request's JSON object validated by ``model``: 422 naming each field that is wrong."""
    payload = json_object()
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise validation_problem(exc) from None
