"""Reading request bodies: JSON only, bounded in size, with a clear error for each way it fails."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from app.api.errors import Problem


def json_object() -> dict[str, Any]:
    """The request's JSON object; 415 if not JSON, 413 if too large, 400 if malformed."""
    if not request.mimetype or not (
        request.mimetype == "application/json" or request.mimetype.endswith("+json")
    ):
        raise Problem(415, "unsupported_media_type", "send Content-Type: application/json")
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Problem(400, "malformed_json", "the body must be a JSON object")
    return payload
