"""GET /s/<code>: a template's shortened URL, redirected (302) to where it points."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect

from app.api.errors import Problem
from app.api.session import request_session
from app.content.variables import SHORT_CODE_LENGTH
from app.models import ShortLink

bp = Blueprint("links", __name__)


@bp.get("/s/<code>")
def follow(code: str) -> Any:
    if (
        len(code) != SHORT_CODE_LENGTH
        or not code.isascii()
        or not code.replace("-", "").replace("_", "").isalnum()
    ):
        raise Problem(404, "not_found", "no such link")
    link = request_session().get(ShortLink, code)
    if link is None:
        raise Problem(404, "not_found", "no such link")
    return redirect(link.url, code=302)
