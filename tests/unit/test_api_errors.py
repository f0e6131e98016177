"""The API's exception-to-answer mapping: by type (walking the MRO), never by message."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest

from engine.errors import (
    BadRequestError,
    ConflictError,
    EngineError,
    GraphNotFoundError,
    InvalidGraphError,
    NotFoundError,
    PayloadTooLargeError,
    Problem,
    RunFinishedError,
    RunNotFoundError,
    StaleStepError,
    ToolNotFoundError,
    ToolTimeoutError,
)
from functions.api.errors import MalformedJsonError, engine_error, status_for


class CustomMissing(RunNotFoundError):
    code = "custom_missing"


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (InvalidGraphError([Problem("start_node", "missing")]), HTTPStatus.BAD_REQUEST),
        (BadRequestError("no"), HTTPStatus.BAD_REQUEST),
        (MalformedJsonError("no"), HTTPStatus.BAD_REQUEST),
        (NotFoundError("no"), HTTPStatus.NOT_FOUND),
        (GraphNotFoundError("no"), HTTPStatus.NOT_FOUND),
        (RunNotFoundError("no"), HTTPStatus.NOT_FOUND),
        (ToolNotFoundError("no"), HTTPStatus.NOT_FOUND),
        (CustomMissing("no"), HTTPStatus.NOT_FOUND),
        (ConflictError("no"), HTTPStatus.CONFLICT),
        (RunFinishedError("no"), HTTPStatus.CONFLICT),
        (StaleStepError("no"), HTTPStatus.CONFLICT),
        (PayloadTooLargeError("no"), HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    ],
)
def test_status_by_type(exc: EngineError, status: HTTPStatus) -> None:
    assert status_for(exc) == status


@pytest.mark.parametrize("exc", [EngineError("x"), ToolTimeoutError("x"), ValueError("graph not found")])
def test_unmapped_types_have_no_status(exc: Exception) -> None:
    assert status_for(exc) is None


def test_message_text_does_not_matter() -> None:
    assert status_for(ConflictError("graph not found")) == HTTPStatus.CONFLICT


def test_engine_error_body_keeps_code_message_and_details() -> None:
    response = engine_error(CustomMissing("no run 'r1'", run_id="r1"))
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.body == {"code": "custom_missing", "message": "no run 'r1'", "details": {"run_id": "r1"}}


def test_invalid_graph_lists_every_problem() -> None:
    problems = [
        Problem("start_node", "start node 'x' is not a node"),
        Problem("nodes.a.tool", "unknown tool"),
    ]
    response = engine_error(InvalidGraphError(problems))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert isinstance(response.body, dict)
    assert response.body["code"] == "invalid_graph"
    assert response.body["details"]["problems"] == [
        {"where": "start_node", "message": "start node 'x' is not a node"},
        {"where": "nodes.a.tool", "message": "unknown tool"},
    ]


def test_unmapped_engine_error_is_an_opaque_500() -> None:
    response = engine_error(ToolTimeoutError("tool dq.secret timed out in /var/task/x.py"))
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert json.dumps(response.body) == '{"code": "internal_error", "message": "internal error"}'
