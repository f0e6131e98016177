"""The graph model's fan-out forms: parallel branches, maps, reducers and the branch-region helpers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from engine.graph import Graph, MapEdge, MapSpec, ParallelEdge
from engine.limits import MAX_MAP_CONCURRENCY, MAX_PARALLEL_BRANCHES
from engine.step import CompiledGraph


def fan_graph(**extra: Any) -> Graph:
    """split -> (a1 -> a2 | b) -> merge -> each (item -> done) -> end, with a catch inside branch a."""
    return Graph.model_validate(
        {
            "start_node": "split",
            "nodes": {
                "split": "t.noop",
                "a1": {"tool": "t.noop", "catch": "a_fix"},
                "a2": "t.noop",
                "a_fix": "t.noop",
                "b": "t.noop",
                "merge": "t.noop",
                "item": "t.noop",
                "done": "t.noop",
            },
            "edges": {
                "split": {"parallel": ["a1", "b"], "join": "merge"},
                "a1": "a2",
                "a2": "merge",
                "a_fix": "merge",
                "b": [{"when": {"key": "x", "op": "exists"}, "to": "merge"}, {"to": "merge"}],
                "merge": {
                    "map": {"items": "xs", "as": "x", "start": "item", "join": "done", "max_concurrency": 4}
                },
                "item": "done",
            },
            **extra,
        }
    )


def test_the_parallel_and_map_forms_load() -> None:
    graph = fan_graph(reducers={"total": "sum", "seen": "append"})
    split = graph.edges["split"]
    assert isinstance(split, ParallelEdge)
    assert split.parallel == ["a1", "b"] and split.join == "merge"
    merge = graph.edges["merge"]
    assert isinstance(merge, MapEdge)
    assert merge.map.items == "xs" and merge.map.as_ == "x" and merge.map.max_concurrency == 4
    assert merge.map.index_key == "x_index"
    assert graph.reducers == {"total": "sum", "seen": "append"}


def test_map_defaults_and_index_as() -> None:
    spec = MapSpec.model_validate({"items": "xs", "start": "s", "join": "j"})
    assert (spec.as_, spec.index_key, spec.max_concurrency, spec.collect) == ("item", "item_index", 10, {})
    named = MapSpec.model_validate({"items": "xs", "as": "row", "index_as": "i", "start": "s", "join": "j"})
    assert named.index_key == "i"
    assert MapSpec(items="xs", as_="row", start="s", join="j").as_ == "row"


def test_a_map_dumps_as_its_json_form_and_loads_back() -> None:
    graph = fan_graph(reducers={"total": "max"})
    dumped = graph.model_dump(mode="json")
    assert dumped["edges"]["merge"]["map"]["as"] == "x"
    assert "as_" not in dumped["edges"]["merge"]["map"]
    assert Graph.model_validate_json(graph.model_dump_json()) == graph
    assert Graph.model_validate(dumped) == graph


@pytest.mark.parametrize(
    ("edge", "fragment"),
    [
        ({"parallel": [], "join": "j"}, "at least 1 item"),
        ({"parallel": [f"n{i}" for i in range(MAX_PARALLEL_BRANCHES + 1)], "join": "j"}, "at most"),
        ({"parallel": ["a"]}, "Field required"),
        ({"parallel": ["a"], "join": "j", "then": "x"}, "Extra inputs"),
        ({"map": {"items": "xs", "start": "s", "join": "j", "max_concurrency": 0}}, "greater than or equal"),
        (
            {"map": {"items": "xs", "start": "s", "join": "j", "max_concurrency": MAX_MAP_CONCURRENCY + 1}},
            "less than or equal",
        ),
        ({"map": {"start": "s", "join": "j"}}, "Field required"),
    ],
)
def test_fan_out_fields_are_checked(edge: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Graph.model_validate({"start_node": "a", "nodes": {"a": "t.noop"}, "edges": {"a": edge}})


def test_unknown_reducer_is_refused() -> None:
    with pytest.raises(ValidationError, match="append"):
        Graph.model_validate({"start_node": "a", "nodes": {"a": "t.noop"}, "reducers": {"k": "concat"}})


def test_fan_out_helpers() -> None:
    graph = fan_graph()
    assert graph.fan_out("split") == graph.edges["split"]
    assert graph.fan_out("a1") is None and graph.fan_out("done") is None
    assert graph.fan_out_nodes() == ["split", "merge"]
    assert graph.branch_starts("split") == ["a1", "b"]
    assert graph.branch_starts("merge") == ["item"]
    assert graph.branch_starts("a1") == []
    assert graph.join_of("split") == "merge"
    assert graph.join_of("merge") == "done"
    assert graph.join_of("a2") is None


def test_successors_and_ends_at_of_fan_out_nodes() -> None:
    graph = fan_graph()
    assert graph.successors("split") == ["a1", "b"]
    assert graph.successors("merge") == ["item", "done"]
    assert not graph.ends_at("split")
    assert not graph.ends_at("merge")
    assert graph.ends_at("done")


def test_regions_follow_edges_rules_and_catch_and_stop_at_the_join() -> None:
    graph = fan_graph()
    assert graph.region_of("split") == {"a1": frozenset({"a1", "a2", "a_fix"}), "b": frozenset({"b"})}
    assert graph.region_of("merge") == {"item": frozenset({"item"})}
    assert graph.region_of("a1") == {}


def test_branch_region_names_the_fan_out_and_the_branch() -> None:
    graph = fan_graph()
    assert graph.branch_region("a_fix") == ("split", "a1")
    assert graph.branch_region("b") == ("split", "b")
    assert graph.branch_region("item") == ("merge", "item")
    for outside in ("split", "merge", "done"):
        assert graph.branch_region(outside) is None


def test_compiled_graph_skips_fan_out_edges_and_keeps_rules() -> None:
    compiled = CompiledGraph(fan_graph())
    assert compiled.choose_edge("a1", {}) == ("a2", "a1 -> a2", [])
    target, _, keys = compiled.choose_edge("b", {"x": 1})
    assert (target, keys) == ("merge", ["x"])
    with pytest.raises(ValueError, match="fans out"):
        compiled.choose_edge("split", {})
