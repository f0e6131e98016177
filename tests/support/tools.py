"""Tools for the integration and end-to-end tests, registered in the default registry.

Handlers load them through ``WORKFLOW_TOOL_MODULES``, as a deployment loads its own tools.
"""

from __future__ import annotations

from typing import Any

from engine.registry import ToolContext, tool


@tool("test.inc", description="Add 1 to i")
def inc(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"i": int(state.get("i", 0)) + 1}


@tool("test.flaky", description="Fail the first attempt of each step, then succeed")
def flaky(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    if ctx.attempt == 1:
        raise ConnectionError(f"transient failure at {ctx.idempotency_key}")
    return {"flaky_ok": ctx.attempt, "flaky_key": ctx.idempotency_key}


@tool("test.big", description="Write a string of state['size'] bytes")
def big(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"blob": "x" * int(state["size"])}


@tool("test.noop", description="Change nothing")
def noop(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {}


LOOP_GRAPH: dict[str, Any] = {
    "name": "counter",
    "start_node": "a",
    "nodes": {"a": {"tool": "test.inc"}, "b": {"tool": "test.noop"}, "c": {"tool": "test.noop"}},
    "edges": {
        "a": "b",
        "b": "c",
        "c": [{"when": {"key": "i", "op": "<", "value": 3}, "to": "a"}, {"to": "__end__"}],
    },
}

FLAKY_GRAPH: dict[str, Any] = {
    "name": "flaky",
    "start_node": "try",
    "nodes": {"try": {"tool": "test.flaky", "retry": {"max_attempts": 3, "interval_seconds": 1}}},
}
