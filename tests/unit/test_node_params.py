"""Node parameters: ``params`` (or ``metadata``) in the graph, JSON-checked at creation, handed to the tool as ``ctx.params``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.driver import InProcessDriver
from engine.errors import InvalidGraphError
from engine.registry import ToolContext, ToolRegistry


def driver() -> tuple[InProcessDriver, list[Any]]:
    seen: list[Any] = []
    registry = ToolRegistry()

    def record(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        seen.append(json.loads(json.dumps(ctx.params)))
        if isinstance(ctx.params, dict):
            ctx.params["mutated"] = True
        return {"threshold": (ctx.params or {}).get("threshold")}

    registry.register("record", record)
    return InProcessDriver(registry), seen


def graph(node: dict[str, Any]) -> dict[str, Any]:
    return {"start_node": "a", "nodes": {"a": node, "b": {"tool": "record"}}, "edges": {"a": "b"}}


@pytest.mark.parametrize("field", ["params", "metadata"])
def test_a_tool_gets_its_nodes_params(field: str) -> None:
    d, seen = driver()
    g = d.service.create_graph(graph({"tool": "record", field: {"threshold": 0.9, "checks": ["a", "b"]}}))

    run = d.run(g.graph_id)

    assert run.status == "SUCCEEDED", run.error
    assert run.state["threshold"] is None, "b has no params"
    assert seen == [{"threshold": 0.9, "checks": ["a", "b"]}, None]
    assert d.service.get_graph(g.graph_id).definition.nodes["a"].params == {
        "threshold": 0.9,
        "checks": ["a", "b"],
    }


def test_a_tool_that_changes_its_params_changes_them_for_no_later_call() -> None:
    d, seen = driver()
    looping = {
        "start_node": "a",
        "nodes": {"a": {"tool": "record", "params": {"threshold": 1}}, "count": {"tool": "test.count"}},
        "edges": {
            "a": "count",
            "count": [{"when": {"key": "n", "op": "<", "value": 3}, "to": "a"}, {"to": "__end__"}],
        },
    }
    d.service.registry.register("test.count", lambda state, ctx: {"n": state.get("n", 0) + 1})
    g = d.service.create_graph(looping)

    assert d.run(g.graph_id).status == "SUCCEEDED"
    assert seen == [{"threshold": 1}] * 3
    assert d.service.get_graph(g.graph_id).definition.nodes["a"].params == {"threshold": 1}


@pytest.mark.parametrize(
    ("node", "problem"),
    [
        ({"tool": "record", "params": {"x": float("nan")}}, "params must be JSON"),
        ({"tool": "record", "params": {"when": {1, 2}}}, "params must be JSON"),
        ({"tool": "record", "params": {"big": "x" * 20_000}}, "the limit is 16384"),
        ({"tool": "record", "params": {}, "metadata": {}}, "not both"),
    ],
)
def test_params_that_are_not_small_json_are_refused_naming_the_node(
    node: dict[str, Any], problem: str
) -> None:
    d, _ = driver()
    with pytest.raises(InvalidGraphError) as caught:
        d.service.create_graph(graph(node))
    text = str(caught.value.problems)
    assert problem in text
    assert "nodes.a" in text


def test_the_data_quality_graph_takes_its_thresholds_from_params_unless_the_state_names_them() -> None:
    from engine.graphs import load_graph_json
    from engine.registry import REGISTRY

    d = InProcessDriver(REGISTRY)
    definition = load_graph_json("data_quality")
    definition["nodes"]["initialize"]["params"] = {"target_score": 0.5, "max_iterations": 1}
    graph = d.service.create_graph(definition)

    by_params = d.run(graph.graph_id, {"records": 50, "seed": 3})
    by_state = d.run(graph.graph_id, {"records": 50, "seed": 3, "target_score": 0.99, "max_iterations": 2})

    assert (by_params.state["target_score"], by_params.state["max_iterations"]) == (0.5, 1)
    assert (by_state.state["target_score"], by_state.state["max_iterations"]) == (0.99, 2)
