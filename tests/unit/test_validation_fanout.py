"""Validation of parallel branches and maps: names, branch regions, keys and reducers, every problem at once."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine import ToolRegistry
from engine.errors import InvalidGraphError, Problem
from engine.validation import find_problems, validate_graph

REGISTRY = ToolRegistry()
REGISTRY.tool("t.noop")(lambda state, ctx: {})


def problems_of(raw: Any, registry: ToolRegistry) -> list[Problem]:
    with pytest.raises(InvalidGraphError) as caught:
        validate_graph(raw, registry)
    for problem in caught.value.problems:
        assert str(problem) in caught.value.message
    return caught.value.problems


def find(problems: list[Problem], where: str, fragment: str) -> Problem:
    for problem in problems:
        if problem.where == where and fragment in problem.message:
            return problem
    raise AssertionError(f"no problem at {where!r} with {fragment!r} in {problems}")


def parallel(edges: dict[str, Any], *nodes: str, **extra: Any) -> dict[str, Any]:
    """A graph from start through ``split`` (a parallel given in ``edges``) to ``merge`` and ``end``."""
    names = ["start", "split", "merge", *nodes]
    return {
        "start_node": "start",
        "nodes": {name: "t.noop" for name in names},
        "edges": {"start": "split", "merge": "__end__", **edges},
        **extra,
    }


def mapped(spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "start_node": "load",
        "nodes": {
            "load": "t.noop",
            "each": "t.noop",
            "clean": "t.noop",
            "check": "t.noop",
            "combine": "t.noop",
        },
        "edges": {
            "load": "each",
            "each": {"map": {"items": "chunks", "as": "chunk", "start": "clean", "join": "combine", **spec}},
            "clean": "check",
            "check": "combine",
        },
        **extra,
    }


def test_valid_parallel_and_map_graphs(registry: ToolRegistry) -> None:
    graph = validate_graph(
        parallel(
            {
                "split": {"parallel": ["a", "b"], "join": "merge"},
                "a": "a2",
                "a2": [{"when": {"key": "x", "op": "exists"}, "to": "a"}, {"to": "merge"}],
                "b": "merge",
            },
            "a",
            "a2",
            "b",
            reducers={"total": "sum"},
        ),
        registry,
    )
    assert find_problems(graph, registry) == []
    validate_graph(mapped({"collect": {"score": "scores"}}, reducers={"fixes": "extend"}), registry)


def test_a_loop_around_a_whole_fan_out_and_a_fan_out_as_a_join_are_fine(registry: ToolRegistry) -> None:
    validate_graph(
        parallel(
            {
                "split": {"parallel": ["a", "b"], "join": "merge"},
                "a": "merge",
                "b": "merge",
                "merge": {"map": {"items": "xs", "start": "item", "join": "judge"}},
                "item": "judge",
                "judge": [{"when": {"key": "done", "op": "exists"}, "to": "__end__"}, {"to": "split"}],
            },
            "a",
            "b",
            "item",
            "judge",
        ),
        registry,
    )


def test_unknown_branch_start_and_join_with_hints(registry: ToolRegistry) -> None:
    problems = problems_of(
        parallel({"split": {"parallel": ["alpha", "bta"], "join": "merg"}, "alpha": "merge"}, "alpha"),
        registry,
    )
    find(problems, "edges.split.parallel[1]", "a branch of 'split' is unknown node 'bta'")
    find(problems, "edges.split.join", "the join of 'split' is unknown node 'merg'; did you mean 'merge'?")


def test_unknown_map_start_and_join(registry: ToolRegistry) -> None:
    problems = problems_of(mapped({"start": "claen", "join": "combin"}), registry)
    find(problems, "edges.each.map.start", "unknown node 'claen'; did you mean 'clean'?")
    find(problems, "edges.each.map.join", "unknown node 'combin'; did you mean 'combine'?")


def test_join_listed_as_a_branch_and_a_branch_listed_twice(registry: ToolRegistry) -> None:
    problems = problems_of(
        parallel({"split": {"parallel": ["a", "merge", "a"], "join": "merge"}, "a": "merge"}, "a"),
        registry,
    )
    find(problems, "edges.split.parallel[1]", "the join 'merge' of 'split' is also a branch")
    find(problems, "edges.split.parallel[2]", "branch 'a' of 'split' is listed more than once")


def test_a_fan_out_node_cannot_be_its_own_join(registry: ToolRegistry) -> None:
    problems = problems_of(
        parallel({"split": {"parallel": ["a"], "join": "split"}, "a": "split"}, "a"), registry
    )
    find(problems, "edges.split.join", "'split' cannot be its own join")


def test_a_branch_that_can_end_the_run(registry: ToolRegistry) -> None:
    problems = problems_of(
        parallel(
            {
                "split": {"parallel": ["a", "b"], "join": "merge"},
                "a": [{"when": {"key": "x", "op": "exists"}, "to": "__end__"}, {"to": "merge"}],
            },
            "a",
            "b",
        ),
        registry,
    )
    find(
        problems,
        "edges.a",
        "branch 'a' of 'split' can end the run at 'a'; a branch must lead to its join 'merge'",
    )
    find(problems, "nodes.b", "branch 'b' of 'split' can end the run at 'b'")


def test_a_branch_that_never_reaches_its_join(registry: ToolRegistry) -> None:
    problems = problems_of(
        parallel(
            {"split": {"parallel": ["a", "b"], "join": "merge"}, "a": "a2", "a2": "a", "b": "merge"},
            "a",
            "a2",
            "b",
        ),
        registry,
    )
    find(problems, "edges.split", "branch 'a' of 'split' never reaches its join 'merge'")
    find(problems, "edges", "no path leads to an end")


def test_a_branch_leading_back_to_its_fan_out_node(registry: ToolRegistry) -> None:
    problems = problems_of(
        parallel(
            {
                "split": {"parallel": ["a", "b"], "join": "merge"},
                "a": [{"when": {"key": "x", "op": "exists"}, "to": "split"}, {"to": "merge"}],
                "b": "merge",
            },
            "a",
            "b",
        ),
        registry,
    )
    find(problems, "edges.split", "branch 'a' of 'split' leads back to 'split'")
    assert len(problems) == 1, problems


def test_nested_fan_outs_are_not_supported_yet(registry: ToolRegistry) -> None:
    problems = problems_of(
        parallel(
            {
                "split": {"parallel": ["a", "b"], "join": "merge"},
                "a": {"map": {"items": "xs", "start": "inner", "join": "inner_join"}},
                "inner": "inner_join",
                "inner_join": "merge",
                "b": "merge",
            },
            "a",
            "b",
            "inner",
            "inner_join",
        ),
        registry,
    )
    find(
        problems,
        "edges.a",
        "branch 'a' of 'split' holds the fan-out node 'a': parallel branches and maps inside",
    )
    find(problems, "edges.a", "not supported yet")


def test_branches_of_a_parallel_share_no_node(registry: ToolRegistry) -> None:
    problems = problems_of(
        parallel(
            {
                "split": {"parallel": ["a", "b"], "join": "merge"},
                "a": "shared",
                "b": "shared",
                "shared": "merge",
            },
            "a",
            "b",
            "shared",
        ),
        registry,
    )
    find(problems, "nodes.shared", "node 'shared' is in branches 'a' and 'b' of 'split'")
    assert not [p for p in problems if "leads into" in p.message]


def test_no_edge_into_a_branch_but_from_its_fan_out(registry: ToolRegistry) -> None:
    raw = parallel(
        {
            "start": [{"when": {"key": "skip", "op": "exists"}, "to": "a2"}, {"to": "split"}],
            "split": {"parallel": ["a", "b"], "join": "merge"},
            "a": "a2",
            "a2": "merge",
            "b": "merge",
            "merge": [{"when": {"key": "again", "op": "exists"}, "to": "b"}, {"to": "__end__"}],
        },
        "a",
        "a2",
        "b",
    )
    raw["nodes"]["fixer"] = {"tool": "t.noop"}
    raw["nodes"]["start"] = {"tool": "t.noop", "catch": "fixer"}
    raw["nodes"]["merge"] = {"tool": "t.noop", "catch": "a"}
    raw["edges"]["fixer"] = "__end__"
    problems = problems_of(raw, registry)
    find(problems, "edges.start", "edge from 'start' leads into branch 'a' of 'split' at 'a2'")
    find(problems, "edges.merge", "edge from 'merge' leads into branch 'b' of 'split' at 'b'")
    find(problems, "nodes.merge.catch", "catch from 'merge' leads into branch 'a' of 'split' at 'a'")


def test_the_fan_out_nodes_catch_cannot_lead_into_its_branches(registry: ToolRegistry) -> None:
    raw = parallel({"split": {"parallel": ["a", "b"], "join": "merge"}, "a": "merge", "b": "merge"}, "a", "b")
    raw["nodes"]["split"] = {"tool": "t.noop", "catch": "b"}
    problems = problems_of(raw, registry)
    find(problems, "nodes.split.catch", "catch from 'split' leads into branch 'b' of 'split' at 'b'")
    raw["nodes"]["split"] = {"tool": "t.noop", "catch": "merge"}
    validate_graph(raw, registry)


def test_a_catch_that_leaves_a_branch_is_named_as_the_cause(registry: ToolRegistry) -> None:
    raw = parallel(
        {"split": {"parallel": ["a", "b"], "join": "merge"}, "a": "merge", "b": "merge", "report": "__end__"},
        "a",
        "b",
        "report",
    )
    raw["nodes"]["a"] = {"tool": "t.noop", "catch": "report"}
    problems = problems_of(raw, registry)
    problem = find(problems, "edges.report", "branch 'a' of 'split' can end the run at 'report'")
    assert "because the catch of 'a' leads there" in problem.message
    assert "a failed branch follows the catch of 'split'" in problem.message


def test_the_run_cannot_start_inside_a_branch(registry: ToolRegistry) -> None:
    raw = parallel({"split": {"parallel": ["a"], "join": "merge"}, "a": "merge"}, "a")
    raw["start_node"] = "a"
    problems = problems_of(raw, registry)
    find(problems, "start_node", "start node 'a' is inside branch 'a' of 'split'")


def test_map_start_cannot_be_its_join(registry: ToolRegistry) -> None:
    problems = problems_of(mapped({"start": "combine"}), registry)
    find(problems, "edges.each.map.start", "is also the start of the map")


@pytest.mark.parametrize(
    ("spec", "where", "fragment"),
    [
        ({"items": ""}, "edges.each.map.items", "cannot be empty"),
        ({"as": ""}, "edges.each.map.as", "cannot be empty"),
        ({"index_as": ""}, "edges.each.map.index_as", "cannot be empty"),
        ({"as": "chunks"}, "edges.each.map.as", "must differ from 'items'"),
        ({"index_as": "chunk"}, "edges.each.map.index_as", "must differ from 'items' and 'as'"),
        ({"as": "x", "items": "x_index"}, "edges.each.map.index_as", "'x_index' must differ"),
        ({"collect": {"": "scores"}}, "edges.each.map.collect", "cannot be empty"),
        ({"collect": {"score": ""}}, "edges.each.map.collect", "cannot be empty"),
        (
            {"collect": {"a": "all", "b": "all"}},
            "edges.each.map.collect",
            "'a' and 'b' are both collected into 'all'",
        ),
    ],
)
def test_map_keys(registry: ToolRegistry, spec: dict[str, Any], where: str, fragment: str) -> None:
    problems = problems_of(mapped(spec), registry)
    find(problems, where, fragment)


def test_reducer_keys(registry: ToolRegistry) -> None:
    problems = problems_of(
        mapped({"collect": {"score": "scores"}}, reducers={"": "sum", "scores": "extend", "ok": "max"}),
        registry,
    )
    find(problems, "reducers.", "cannot be empty")
    find(problems, "reducers.scores", "'scores' has a reducer and is also the list map 'each' collects into")
    assert not [p for p in problems if p.where == "reducers.ok"]


def test_branches_and_joins_count_as_reachable(registry: ToolRegistry) -> None:
    problems = problems_of(
        parallel(
            {"split": {"parallel": ["a", "b"], "join": "merge"}, "a": "a2", "a2": "a", "b": "b2", "b2": "b"},
            "a",
            "a2",
            "b",
            "b2",
        ),
        registry,
    )
    assert not [p for p in problems if "unreachable" in p.message]
    find(problems, "edges.split", "branch 'a' of 'split' never reaches its join 'merge'")
    find(problems, "edges.split", "branch 'b' of 'split' never reaches its join 'merge'")


def test_every_problem_is_listed_at_once(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "s",
            "nodes": {"s": "t.noop", "a": "t.noop", "m": "t.noop", "k": "t.nope"},
            "edges": {
                "s": {"parallel": ["a", "ghost"], "join": "m"},
                "m": {"map": {"items": "xs", "as": "xs", "start": "k", "join": "mm"}},
            },
            "reducers": {"": "sum"},
        },
        registry,
    )
    wheres = {p.where for p in problems}
    assert {
        "nodes.k.tool",
        "edges.s.parallel[1]",
        "edges.m.map.join",
        "edges.m.map.as",
        "nodes.a",
        "reducers.",
    } <= wheres


@pytest.mark.parametrize(
    ("edge", "where", "fragment"),
    [
        ({"parallel": "a", "join": "m"}, "edges.s.parallel", "valid list"),
        (
            {"parallel": ["a"], "joins": "m"},
            "edges.s.joins",
            "did you mean 'join'? (accepted: parallel, join)",
        ),
        ({"map": {"item": "xs", "start": "a", "join": "m"}}, "edges.s.map.item", "did you mean 'items'"),
        (
            {"map": {"items": "xs", "start": "a", "join": "m", "concurrency": 2}},
            "edges.s.map.concurrency",
            "max_concurrency",
        ),
        (
            {"map": {"items": "xs", "start": "a", "join": "m", "max_concurrency": 0}},
            "edges.s.map.max_concurrency",
            "greater than",
        ),
        ({"mapp": {}}, "edges.s", "or a map over a list in the state"),
    ],
)
def test_malformed_fan_out_edges_name_their_field(
    registry: ToolRegistry, edge: dict[str, Any], where: str, fragment: str
) -> None:
    problems = problems_of(
        {
            "start_node": "s",
            "nodes": {"s": "t.noop", "a": "t.noop", "m": "t.noop"},
            "edges": {"s": edge, "a": "m"},
        },
        registry,
    )
    find(problems, where, fragment)


def test_unknown_reducer_names_the_accepted_ones(registry: ToolRegistry) -> None:
    problems = problems_of(
        {"start_node": "a", "nodes": {"a": "t.noop"}, "reducers": {"k": "concat"}}, registry
    )
    find(problems, "reducers.k", "'append', 'extend', 'merge', 'sum', 'max', 'min' or 'last'")


def test_a_list_of_node_names_suggests_parallel(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": "t.noop", "b": "t.noop", "c": "t.noop"},
            "edges": {"a": ["b", "c"]},
        },
        registry,
    )
    find(problems, "edges.a", 'to run them at the same time give {"parallel": ["b", "c"], "join": "node"}')


# Properties over generated parallel graphs: start -> split -> branches -> merge -> end.


@st.composite
def parallel_graphs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A valid parallel graph and its branches (start -> the branch's nodes in chain order)."""
    lengths = draw(st.lists(st.integers(1, 4), min_size=1, max_size=6))
    branches = {f"b{i}_0": [f"b{i}_{j}" for j in range(n)] for i, n in enumerate(lengths)}
    edges: dict[str, Any] = {"start": "split", "split": {"parallel": list(branches), "join": "merge"}}
    for chain in branches.values():
        for here, there in zip(chain, [*chain[1:], "merge"], strict=True):
            if draw(st.booleans()):
                edges[here] = there
            else:
                back = draw(st.sampled_from(chain))
                edges[here] = [{"when": {"key": "again", "op": "exists"}, "to": back}, {"to": there}]
    edges["merge"] = draw(
        st.sampled_from(
            ["__end__", [{"when": {"key": "loop", "op": "exists"}, "to": "split"}, {"to": "__end__"}]]
        )
    )
    nodes = ["start", "split", "merge", *(n for chain in branches.values() for n in chain)]
    return {"start_node": "start", "nodes": {n: "t.noop" for n in nodes}, "edges": edges}, branches


@settings(max_examples=60)
@given(parallel_graphs())
def test_generated_parallel_graphs_are_valid_and_their_regions_are_the_branches(
    generated: tuple[dict[str, Any], dict[str, list[str]]],
) -> None:
    raw, branches = generated
    graph = validate_graph(raw, REGISTRY)
    assert graph.region_of("split") == {start: frozenset(chain) for start, chain in branches.items()}
    for start, chain in branches.items():
        for name in chain:
            assert graph.branch_region(name) == ("split", start)
    for outside in ("start", "split", "merge"):
        assert graph.branch_region(outside) is None


@settings(max_examples=60)
@given(parallel_graphs(), st.data())
def test_a_branch_node_sent_to_the_end_is_reported_by_name(
    generated: tuple[dict[str, Any], dict[str, list[str]]], data: st.DataObject
) -> None:
    raw, branches = generated
    start = data.draw(st.sampled_from(sorted(branches)))
    node = data.draw(st.sampled_from(branches[start]))
    raw["edges"][node] = "__end__"
    problems = problems_of(raw, REGISTRY)
    find(problems, f"edges.{node}", f"branch {start!r} of 'split' can end the run at {node!r}")


@settings(max_examples=60)
@given(parallel_graphs(), st.data())
def test_an_edge_across_branches_is_reported_as_shared_nodes(
    generated: tuple[dict[str, Any], dict[str, list[str]]], data: st.DataObject
) -> None:
    raw, branches = generated
    assume(len(branches) >= 2)
    one, other = data.draw(st.permutations(sorted(branches)))[:2]
    source = data.draw(st.sampled_from(branches[one]))
    target = data.draw(st.sampled_from(branches[other]))
    raw["edges"][source] = [{"when": {"key": "cross", "op": "exists"}, "to": target}, {"to": "merge"}]
    problems = problems_of(raw, REGISTRY)
    assert any(
        p.where == f"nodes.{target}" and "branches of a parallel cannot share nodes" in p.message
        for p in problems
    ), problems


@settings(max_examples=60)
@given(parallel_graphs(), st.data())
def test_an_edge_from_before_the_fan_out_into_a_branch_is_reported(
    generated: tuple[dict[str, Any], dict[str, list[str]]], data: st.DataObject
) -> None:
    raw, branches = generated
    start = data.draw(st.sampled_from(sorted(branches)))
    target = data.draw(st.sampled_from(branches[start]))
    raw["edges"]["start"] = [{"when": {"key": "skip", "op": "exists"}, "to": target}, {"to": "split"}]
    problems = problems_of(raw, REGISTRY)
    find(problems, "edges.start", f"edge from 'start' leads into branch {start!r} of 'split' at {target!r}")
