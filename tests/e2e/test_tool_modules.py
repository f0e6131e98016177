"""``WORKFLOW_TOOL_MODULES`` adds to the built-in tools; ``WORKFLOW_BUILTIN_TOOLS=false`` leaves them out.

Each test starts a local stack whose handlers get only ``tests.support.tools`` as
``WORKFLOW_TOOL_MODULES``, and drives the demo route with the request of
``events/api_demo_run_data_quality.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.stack import LocalStack
from tests.e2e.conftest import signer, wait_for_run

pytestmark = pytest.mark.e2e

EVENTS = Path(__file__).resolve().parents[2] / "events"


def demo_request(api: httpx.Client) -> httpx.Response:
    event: dict[str, Any] = json.loads((EVENTS / "api_demo_run_data_quality.json").read_text())
    body = {**json.loads(event["body"]), "records": 40}
    return api.request(event["requestContext"]["http"]["method"], event["rawPath"], json=body)


def stack_with(environment: dict[str, str]) -> Iterator[httpx.Client]:
    with (
        LocalStack(
            port=0,
            moto_port=0,
            workers=2,
            tool_modules=["tests.support.tools"],
            environment=environment,
            log_level="WARNING",
        ) as stack,
        httpx.Client(base_url=stack.http_url, timeout=30.0, auth=signer(stack).http_auth()) as api,
    ):
        yield api


@pytest.fixture(scope="module")
def with_builtins() -> Iterator[httpx.Client]:
    yield from stack_with({})


@pytest.fixture(scope="module")
def without_builtins() -> Iterator[httpx.Client]:
    yield from stack_with({"WORKFLOW_BUILTIN_TOOLS": "false"})


def tool_names(api: httpx.Client) -> set[str]:
    response = api.get("/tools")
    assert response.status_code == 200, response.text
    body = response.json()
    tools = body["tools"] if isinstance(body, dict) else body
    return {t["name"] for t in tools}


def test_an_extra_module_adds_its_tools_and_the_demo_route_still_works(with_builtins: httpx.Client) -> None:
    names = tool_names(with_builtins)
    assert {"test.inc", "test.gate"} <= names
    assert {"dq.profile", "dq.evaluate", "dq.report"} <= names

    started = demo_request(with_builtins)
    assert started.status_code == 200, started.text
    run = wait_for_run(with_builtins, started.json()["run_id"], timeout=120)
    assert run["status"] == "SUCCEEDED", run


def test_the_builtin_tools_can_be_left_out(without_builtins: httpx.Client) -> None:
    names = tool_names(without_builtins)
    assert {"test.inc", "test.gate"} <= names
    assert not any(name.startswith("dq.") for name in names)

    refused = demo_request(without_builtins)
    assert refused.status_code == 400, refused.text
    assert "unknown tool 'dq." in refused.text
    assert "GET /tools" in refused.text
