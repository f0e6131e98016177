"""Timers and triggers on the local stack: EventBridge Scheduler on moto, fired by the stack's emulator
under the stack's clock, which the tests move over HTTP instead of sleeping."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from local.stack import LocalStack
from tests.e2e.conftest import create_graph, start_run, wait_for_run

pytestmark = pytest.mark.e2e

DAY = 86400


def advance(stack: LocalStack, seconds: float) -> dict[str, Any]:
    response = httpx.post(f"{stack.http_url}/_local/clock", json={"advance": seconds}, timeout=10)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def schedules(stack: LocalStack) -> list[dict[str, Any]]:
    assert stack.scheduler_resources is not None
    client = stack.client("scheduler")
    group = stack.scheduler_resources.group
    return [
        client.get_schedule(GroupName=group, Name=s["Name"])
        for s in client.list_schedules(GroupName=group)["Schedules"]
    ]


def wait_until(condition: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"not true after {timeout}s")


def test_a_wait_of_a_day_completes_when_the_clock_moves_a_day(api: httpx.Client, stack: LocalStack) -> None:
    graph_id = create_graph(
        api,
        {
            "name": "day-wait",
            "start_node": "before",
            "nodes": {
                "before": {"tool": "test.noop"},
                "pause": {"wait": {"seconds": DAY}},
                "after": "test.noop",
            },
            "edges": {"before": "pause", "pause": "after"},
        },
    )
    run_id = start_run(api, graph_id)

    def waiting() -> bool:
        run = api.get(f"/runs/{run_id}").json()
        return run["current_node"] == "pause" and any(
            s["Target"]["SqsParameters"]["MessageGroupId"] == f"{run_id}.timer" for s in schedules(stack)
        )

    wait_until(waiting)
    time.sleep(1.5)
    assert api.get(f"/runs/{run_id}").json()["status"] == "RUNNING", "nothing fires before its time"

    assert advance(stack, DAY + 1)["offset"] >= DAY + 1
    run = wait_for_run(api, run_id, timeout=30)

    assert run["status"] == "SUCCEEDED", run
    assert not [s for s in schedules(stack) if run_id in s["Target"].get("Input", "")], "deleted once fired"


def test_a_scheduled_trigger_starts_runs_under_the_local_clock(api: httpx.Client, stack: LocalStack) -> None:
    assert stack.scheduler is not None
    graph_id = create_graph(
        api,
        {
            "name": "hourly",
            "start_node": "only",
            "nodes": {"only": "test.noop"},
            "triggers": [{"schedule": "rate(1 hour)", "initial_state": {"from": "schedule"}}],
        },
    )
    [schedule] = [s for s in schedules(stack) if s["Name"].startswith("trigger-")]
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    assert schedule["Target"]["Arn"] == stack.trigger_function_arn
    time.sleep(1.0)  # the emulator has seen the schedule: its rate counts from then
    fired = len(stack.scheduler.results)

    advance(stack, 3600 + 1)
    wait_until(lambda: len(stack.scheduler.results) > fired)

    result = stack.scheduler.results[fired]
    assert result["started"] is True, result
    run = wait_for_run(api, result["run_id"])
    assert run["status"] == "SUCCEEDED", run
    assert run["graph_id"] == graph_id
    assert run["state"]["from"] == "schedule"

    assert api.delete(f"/graphs/{graph_id}").status_code in (200, 204)
    assert not [s for s in schedules(stack) if s["Name"] == schedule["Name"]], "removed with the graph"


def test_the_clock_only_moves_forward_by_a_number_of_seconds(stack: LocalStack) -> None:
    before = httpx.get(f"{stack.http_url}/_local/clock", timeout=10).json()
    for body in ({"advance": -1}, {"advance": "soon"}, ["advance"]):
        response = httpx.post(f"{stack.http_url}/_local/clock", json=body, timeout=10)
        assert response.status_code == 400, body
    after = httpx.get(f"{stack.http_url}/_local/clock", timeout=10).json()
    assert after["offset"] == before["offset"]
    assert after["now"] >= before["now"]
