"""Waits, callbacks and redrive through the handlers on moto: graphs, a step driver that can fire timers, tools.

:class:`Steps` feeds the step queue to the step Lambda (as the event source
mapping does) and remembers the receipt handle of every timer message it saw:
the step Lambda hides a timer that is not due (its visibility timeout set to
the delay), and :meth:`Steps.fire_timers` moves the service's clock past it and
makes it visible again, as SQS does when its visibility timeout ends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.registry import ToolContext, tool
from functions.dlq import app as dlq_app
from functions.shared import wiring
from functions.step import app as step_app
from local.esm import EventSourceMapping
from tests.support.api import UNSET, Api
from tests.support.moto_env import AwsEnv

TOOL_MODULES = "engine.tools.dq,tests.support.tools,tests.support.durable"


def review_graph(
    *, timeout_seconds: float = 3600, expired: bool = True, rejected: str | None = None, retries: int = 1
) -> dict[str, Any]:
    """``review -> approval (callback) -> publish``; with ``expired`` the time-out leads to ``expired``.

    ``rejected`` names the node's own ``catch`` (taken once a rejection exhausted
    ``retries`` attempts): ``rework``, which ends the run.
    """
    callback: dict[str, Any] = {"timeout_seconds": timeout_seconds}
    nodes: dict[str, Any] = {"review": "test.tag", "approval": {"callback": callback}, "publish": "test.tag"}
    edges: dict[str, Any] = {"review": "approval", "approval": "publish", "publish": "__end__"}
    if expired:
        callback["catch"] = "expired"
        nodes["expired"] = "test.tag"
        edges["expired"] = "__end__"
    if retries > 1:
        nodes["approval"]["retry"] = {"max_attempts": retries, "interval_seconds": 1}
    if rejected is not None:
        nodes["approval"]["catch"] = rejected
        nodes[rejected] = "test.tag"
        edges[rejected] = "__end__"
    return {
        "name": "review",
        "start_node": "review",
        "nodes": nodes,
        "edges": edges,
    }


@tool("test.fail_until", description="Fail until the file state['pass_when'] exists, then succeed")
def fail_until(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    if not Path(state["pass_when"]).exists():
        raise RuntimeError(f"{state['pass_when']} does not exist yet")
    return {"passed_at": ctx.step, "passed_attempt": ctx.attempt}


def flaky_publish_graph() -> dict[str, Any]:
    """``review -> publish -> notify``: ``publish`` (no retry) fails until the file ``pass_when`` exists."""
    return {
        "name": "flaky-publish",
        "start_node": "review",
        "nodes": {"review": "test.tag", "publish": "test.fail_until", "notify": "test.tag"},
        "edges": {"review": "publish", "publish": "notify", "notify": "__end__"},
    }


class Steps:
    """The step queue delivered to the step Lambda; timers fired by moving the clock."""

    def __init__(self, env: AwsEnv) -> None:
        self.env = env
        self.timers: dict[str, str] = {}
        """Timer message bodies to their last receipt handle."""
        r = env.resources
        self.esm = EventSourceMapping(env.sqs, r.queue_url, r.queue_arn, self._handler)

    def _handler(self, event: dict[str, Any], context: Any) -> Any:
        for record in event["Records"]:
            if json.loads(record["body"]).get("timer"):
                self.timers[record["body"]] = record["receiptHandle"]
        return step_app.lambda_handler(event, context)

    def drain(self) -> int:
        """Deliver every visible step message, and those they lead to, until none is visible."""
        return self.esm.drain()

    def fire_timers(self, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
        """Move the service's clock ``seconds`` ahead, make the hidden timers visible, and drain."""
        service = wiring.service()
        now = service.clock()
        monkeypatch.setattr(service, "clock", lambda: now + seconds)
        hidden, self.timers = list(self.timers.values()), {}
        for handle in hidden:
            self.env.sqs.change_message_visibility(
                QueueUrl=self.env.resources.queue_url, ReceiptHandle=handle, VisibilityTimeout=0
            )
        self.drain()

    def drain_dlq(self) -> int:
        r = self.env.resources
        return EventSourceMapping(self.env.sqs, r.dlq_url, r.dlq_arn, dlq_app.lambda_handler).drain()


def start(api: Api, graph: dict[str, Any], state: dict[str, Any] | None = None) -> str:
    graph_id = api.create_graph(graph)
    reply = api("api_start_run", body={"graph_id": graph_id, "initial_state": state or {}})
    assert reply.status == 202, reply.text
    return str(reply.json()["run_id"])


def get_run(api: Api, run_id: str, caller: Any = UNSET) -> dict[str, Any]:
    reply = api("api_get_run", path=f"/runs/{run_id}", caller=caller)
    assert reply.status == 200, reply.text
    run: dict[str, Any] = reply.json()
    return run


def logs(api: Api, run_id: str) -> list[dict[str, Any]]:
    reply = api("api_run_logs", path=f"/runs/{run_id}/logs", query={"after": "-1", "limit": "1000"})
    assert reply.status == 200, reply.text
    records: list[dict[str, Any]] = reply.json()["records"]
    assert [r["seq"] for r in records] == list(range(len(records))), "the log has no gap"
    return records


def visited(run: dict[str, Any]) -> set[str]:
    """The ``test.tag`` nodes the run went through (each writes ``<node>_done``)."""
    return {
        key.removesuffix("_done") for key, value in run["state"].items() if key.endswith("_done") and value
    }


def tokens(api: Api, run_id: str) -> list[str]:
    """The callback tokens of the run's ``callback_waiting`` records, oldest first."""
    return [r["data"]["token"] for r in logs(api, run_id) if r["type"] == "callback_waiting"]
