"""Problem documents: validation errors become per-field entries a client can act on."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from app.api.errors import Problem, problem_response, validation_problem
from app.messaging.intake.intents import SendIntent


def problem_for(payload: object) -> Problem:
    with pytest.raises(ValidationError) as info:
        SendIntent.model_validate(payload)
    return validation_problem(info.value)


def test_each_bad_field_is_listed() -> None:
    problem = problem_for(
        {
            "to": "not-a-phone",
            "body": "hi",
            "priority": "asap",
            "bcc": "x",
            "channels": ["mms"],
            "media": [{"url": "https://x.example/a.png", "content_type": "png"}],
        }
    )

    assert problem.status == 422
    assert problem.reason == "validation_failed"
    assert problem.errors is not None
    by_field = {e["field"]: e for e in problem.errors}
    assert set(by_field) == {"to", "priority", "bcc", "media.0.content_type"}
    assert by_field["bcc"]["code"] == "extra_forbidden"
    assert by_field["to"]["code"] == "value_error"
    assert not by_field["to"]["message"].startswith("Value error")
    assert all(set(e) == {"field", "code", "message"} for e in problem.errors)


def test_model_level_errors_name_the_body() -> None:
    problem = problem_for({"to": "+14155552671"})

    assert problem.errors == [
        {
            "field": "(body)",
            "code": "value_error",
            "message": "a message needs a body, media, or both",
        }
    ]


def test_errors_never_echo_the_input() -> None:
    problem = problem_for({"to": "+1555SECRET", "body": "hi"})

    assert "SECRET" not in json.dumps(problem.errors)


def test_problem_response_is_problem_json() -> None:
    problem = problem_for({"to": "+14155552671"})

    response = problem_response(problem)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    body = json.loads(response.get_data(as_text=True))
    assert body["type"] == "urn:switchboard:problem:validation_failed"
    assert body["reason"] == "validation_failed"
    assert body["errors"][0]["field"] == "(body)"


def test_the_redrive_body_knows_every_stuck_state() -> None:
    from typing import get_args

    from app.api.schemas import StuckState
    from app.messaging.recovery.stuck import WHY

    assert set(get_args(StuckState)) == set(WHY)
