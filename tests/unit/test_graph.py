"""The graph model: the JSON formats it loads, retry policy delays, and its structural helpers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from engine import ToolContext, ToolRegistry
from engine.graph import (
    END,
    Graph,
    RetryPolicy,
    duplicate_node_names,
    loads_definition,
    repeated_edge_sources,
)
from engine.validation import validate_graph

# The architecture document's original example, as first written but for its "...": {} placeholder line.
DESIGN_EXAMPLE = """
{
  "name": "data-quality",
  "start_node": "initialize",
  "nodes": {
    "initialize": {"tool": "dq.initialize"},
    "profile":    {"tool": "dq.profile", "retry": {"max_attempts": 3, "backoff_rate": 2.0}}
  },
  "edges": {
    "initialize": "profile",
    "evaluate": [
      {"when": {"key": "anomaly_count", "op": ">", "value": 2}, "to": "generate_rules"},
      {"to": "report"}
    ]
  },
  "max_steps": 100
}
"""

DQ_NODES = ("initialize", "profile", "detect", "generate_rules", "apply_rules", "evaluate", "report")


def dq_definition() -> dict[str, Any]:
    """The original design example with its placeholder filled in by the rest of the pipeline."""
    definition: dict[str, Any] = json.loads(DESIGN_EXAMPLE)
    for name in DQ_NODES[2:]:
        definition["nodes"][name] = {"tool": f"dq.{name}"}
    definition["edges"].update(
        {"profile": "detect", "detect": "evaluate", "generate_rules": "apply_rules", "apply_rules": "profile"}
    )
    return definition


def dq_registry() -> ToolRegistry:
    registry = ToolRegistry()
    for name in DQ_NODES:

        def stage(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
            return {}

        registry.register(f"dq.{name}", stage)
    return registry


def test_design_example_loads_as_written() -> None:
    graph = Graph.model_validate(json.loads(DESIGN_EXAMPLE))
    assert graph.name == "data-quality"
    assert graph.start_node == "initialize"
    assert graph.max_steps == 100
    profile = graph.nodes["profile"]
    assert profile.tool == "dq.profile"
    assert profile.retry.max_attempts == 3
    assert profile.retry.backoff_rate == 2.0
    assert graph.nodes["initialize"].retry == RetryPolicy()
    assert graph.edges["initialize"] == "profile"
    rules = graph.edges["evaluate"]
    assert isinstance(rules, list)
    assert [r.to for r in rules] == ["generate_rules", "report"]
    assert rules[0].when == {"key": "anomaly_count", "op": ">", "value": 2}
    assert rules[1].when is None


def test_design_example_completed_passes_validation() -> None:
    graph = validate_graph(dq_definition(), dq_registry())
    assert set(graph.nodes) == set(DQ_NODES)
    assert graph.ends_at("report")
    assert not graph.ends_at("evaluate")
    assert graph.successors("evaluate") == ["generate_rules", "report"]


def test_design_example_loads_through_loads_definition() -> None:
    raw = loads_definition(json.dumps(dq_definition()))
    assert raw == dq_definition()
    validate_graph(raw, dq_registry())


def test_nodes_may_be_a_list_or_bare_tool_names() -> None:
    graph = Graph.model_validate(
        {
            "start_node": "a",
            "nodes": [{"name": "a", "tool": "t.one", "timeout_seconds": 5}, {"name": "b", "tool": "t.two"}],
            "edges": {"a": "b"},
        }
    )
    assert list(graph.nodes) == ["a", "b"]
    assert graph.nodes["a"].timeout_seconds == 5
    bare = Graph.model_validate({"start_node": "a", "nodes": {"a": "t.one"}})
    assert bare.nodes["a"].tool == "t.one"
    assert bare.name == "graph"
    assert bare.max_steps == 100


def test_edges_may_be_a_list_of_from_to_pairs() -> None:
    graph = Graph.model_validate(
        {
            "start_node": "a",
            "nodes": {"a": "t", "b": "t", "c": "t"},
            "edges": [
                {"from": "a", "to": "b", "condition": {"key": "go", "op": "exists"}},
                {"from": "a", "to": "c"},
                {"from": "b", "to": "c"},
            ],
        }
    )
    a = graph.edges["a"]
    assert isinstance(a, list)
    assert [(r.to, r.when) for r in a] == [("b", {"key": "go", "op": "exists"}), ("c", None)]
    assert graph.successors("b") == ["c"]


@pytest.mark.parametrize(
    "raw",
    [
        {"start_node": "a", "nodes": {}},
        {"start_node": "", "nodes": {"a": "t"}},
        {"start_node": "a", "nodes": {"a": {"tool": ""}}},
        {"start_node": "a", "nodes": {"a": {"tool": "t", "bogus": 1}}},
        {"start_node": "a", "nodes": {"a": "t"}, "surprise": True},
        {"start_node": "a", "nodes": [{"tool": "t"}]},
        {"start_node": "a", "nodes": {"a": "t"}, "edges": [{"to": "a"}]},
        {"start_node": "a", "nodes": {"a": "t"}, "edges": {"a": [{"when": {"key": "k", "op": "exists"}}]}},
        {"start_node": "a", "nodes": {"a": "t"}, "max_steps": 0},
        {"start_node": "a", "nodes": {"a": {"tool": "t", "timeout_seconds": 0}}},
        {"start_node": "a", "nodes": {"a": {"tool": "t", "retry": {"max_attempts": 0}}}},
        {"start_node": "a", "nodes": {"a": {"tool": "t", "retry": {"backoff_rate": 0.5}}}},
        {"start_node": "a", "nodes": {"a": {"tool": "t", "retry": {"jitter": "half"}}}},
    ],
)
def test_field_shapes_are_checked(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Graph.model_validate(raw)


def test_a_rule_with_both_when_and_condition_is_rejected() -> None:
    with pytest.raises(ValidationError, match="not both"):
        Graph.model_validate(
            {
                "start_node": "a",
                "nodes": {"a": "t", "b": "t"},
                "edges": {
                    "a": [
                        {
                            "when": {"key": "x", "op": "exists"},
                            "condition": {"key": "y", "op": "exists"},
                            "to": "b",
                        }
                    ]
                },
            }
        )


def test_retry_delay_grows_by_the_backoff_rate_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=6, interval_seconds=0.5, backoff_rate=3.0, max_delay_seconds=10)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10, 10]
    uncapped = RetryPolicy(interval_seconds=2, backoff_rate=2)
    assert uncapped.delay(4) == 16


def test_full_jitter_scales_the_delay_by_the_random_fraction() -> None:
    policy = RetryPolicy(interval_seconds=4, backoff_rate=2, jitter="full")
    assert policy.delay(2, 0.25) == 2.0
    assert policy.delay(2, 0.0) == 0.0
    assert RetryPolicy(jitter=True).jitter == "full"
    assert RetryPolicy(jitter=False).jitter == "none"
    assert RetryPolicy(interval_seconds=4).delay(1, 0.25) == 4, "without jitter the fraction is ignored"


def test_ends_at_and_successors() -> None:
    graph = Graph.model_validate(
        {
            "start_node": "a",
            "nodes": {"a": "t", "b": {"tool": "t", "catch": "d"}, "c": "t", "d": "t"},
            "edges": {
                "a": "b",
                "b": [{"when": {"key": "k", "op": "exists"}, "to": "a"}, {"to": END}],
                "c": END,
            },
        }
    )
    assert not graph.ends_at("a")
    assert graph.ends_at("b")
    assert graph.ends_at("c")
    assert graph.ends_at("d")
    assert graph.successors("a") == ["b"]
    assert graph.successors("b") == ["a", "d"]
    assert graph.successors("c") == []


def test_loads_definition_keeps_nodes_whose_names_repeat() -> None:
    text = '{"start_node": "a", "nodes": {"a": {"tool": "t.one"}, "b": "t.two", "a": {"tool": "t.three"}}}'
    assert json.loads(text)["nodes"] == {"a": {"tool": "t.three"}, "b": "t.two"}
    raw = loads_definition(text)
    assert raw["nodes"] == [
        {"tool": "t.one", "name": "a"},
        {"tool": "t.two", "name": "b"},
        {"tool": "t.three", "name": "a"},
    ]
    assert duplicate_node_names(raw) == ["a"]


def test_loads_definition_leaves_other_definitions_as_json_loads_does() -> None:
    text = json.dumps(dq_definition())
    assert loads_definition(text) == json.loads(text)
    assert loads_definition(text.encode()) == json.loads(text)
    assert loads_definition("[1, 2]") == [1, 2]
    assert duplicate_node_names({"nodes": [{"name": "a"}, {"name": "b"}]}) == []
    assert duplicate_node_names("nodes") == []
    assert repeated_edge_sources(loads_definition(text)) == []
    assert repeated_edge_sources(loads_definition('{"edges": {"a": "b", "a": "c", "b": "c"}}')) == ["a"]
