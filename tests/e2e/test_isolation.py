"""Poison messages on the local stack: the step environments are processes, a dying one fails its batch.

A tool that kills its process takes its step environment down on the first
delivery (the whole batch fails, as on Lambda); a hanging tool makes the
invocation overrun the step function's timeout (the environment is killed). On
the redelivery every record of those batches is a suspect: the poison runs fail
with their reason, and the 20 innocent runs that shared their batches succeed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.stack import LocalStack
from tests.e2e.conftest import create_graph, signer, start_run, tool_modules, wait_for_run
from tests.support.tools import loop_graph

pytestmark = pytest.mark.e2e

STEP_TIMEOUT = 10.0
VISIBILITY_TIMEOUT = 3


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(
        workers=2,
        visibility_timeout=VISIBILITY_TIMEOUT,
        tool_modules=tool_modules(),
        log_level="WARNING",
        step_timeout_seconds=STEP_TIMEOUT,
        api_concurrency=2,
        ws_concurrency=1,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.http_url, timeout=30.0, auth=signer(stack).http_auth()) as client:
        yield client


def one_node(tool: str) -> dict[str, Any]:
    return {"name": tool, "start_node": "poison", "nodes": {"poison": {"tool": tool}}}


def test_poison_runs_fail_with_their_reason_and_twenty_innocent_runs_succeed(
    api: httpx.Client, stack: LocalStack
) -> None:
    poisons = {
        start_run(api, create_graph(api, one_node("test.die"))): ("ToolProcessDied", "signal 9"),
        start_run(api, create_graph(api, one_node("test.hang"))): (
            "ToolTimeoutError",
            "ran out of the step's time",
        ),
        start_run(api, create_graph(api, one_node("test.hog"))): ("ToolMemoryExhausted", "ran out of memory"),
    }
    innocent = create_graph(api, loop_graph(1, "innocent"))
    innocents = [start_run(api, innocent, {"i": 0}) for _ in range(20)]

    budget = 6 * (STEP_TIMEOUT + VISIBILITY_TIMEOUT) + 30
    for run_id, (type_, text) in poisons.items():
        run = wait_for_run(api, run_id, timeout=budget)
        assert run["status"] == "FAILED", run
        assert run["error"]["type"] == type_, run["error"]
        assert text in run["error"]["message"]
    for run_id in innocents:
        assert wait_for_run(api, run_id, timeout=budget)["status"] == "SUCCEEDED"
    assert stack.poller is not None
    assert stack.poller.stats["step"].invocation_errors >= 1


def test_a_node_timeout_longer_than_the_step_function_allows_is_refused(api: httpx.Client) -> None:
    definition = {
        "name": "slow",
        "start_node": "a",
        "nodes": {"a": {"tool": "test.noop", "timeout_seconds": 12}},
    }
    response = api.post("/graphs", json=definition)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_graph"
    assert "nodes.a.timeout_seconds" in response.text and "7s" in response.text
