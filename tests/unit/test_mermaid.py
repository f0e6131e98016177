"""The Mermaid diagram of a graph."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings

from engine.graph import Graph
from engine.mermaid import describe_condition, to_mermaid
from tests.unit.test_validation_fanout import parallel_graphs

DQ = Graph.model_validate(
    {
        "name": "data-quality",
        "start_node": "initialize",
        "nodes": {
            "initialize": "dq.initialize",
            "profile": {"tool": "dq.profile", "catch": "report"},
            "evaluate": "dq.evaluate",
            "generate_rules": "dq.generate_rules",
            "report": "dq.report",
        },
        "edges": {
            "initialize": "profile",
            "profile": "evaluate",
            "evaluate": [
                {"when": {"key": "anomaly_count", "op": ">", "value": 2}, "to": "generate_rules"},
                {"to": "report"},
            ],
            "generate_rules": "profile",
        },
    }
)


def test_conditional_edges_are_labelled_with_their_conditions() -> None:
    text = to_mermaid(DQ)
    assert text.startswith("flowchart TD\n")
    assert '    n_evaluate -->|"anomaly_count > 2"| n_generate_rules' in text
    assert '    n_evaluate -->|"otherwise"| n_report' in text
    assert "    n_initialize --> n_profile" in text
    assert '    n_profile -.->|"on error"| n_report' in text
    assert "    n_report --> n__end((end))" in text


def test_nodes_show_their_tool_and_the_start_node_stands_out() -> None:
    text = to_mermaid(DQ)
    assert '    n_initialize(["initialize<br/><small>dq.initialize</small>"])' in text
    assert '    n_profile["profile<br/><small>dq.profile</small>"]' in text


def test_edges_to_the_end_target() -> None:
    graph = Graph.model_validate(
        {
            "start_node": "a",
            "nodes": {"a": "t", "b": "t"},
            "edges": {
                "a": [{"when": {"key": "done", "op": "exists"}, "to": "__end__"}, {"to": "b"}],
                "b": "__end__",
            },
        }
    )
    text = to_mermaid(graph)
    assert '    n_a -->|"done exists"| n__end((end))' in text
    assert "    n_b --> n__end((end))" in text


def test_describe_condition() -> None:
    assert describe_condition({"key": "a.b", "op": "==", "value": "ok"}) == 'a.b == "ok"'
    assert describe_condition({"key": "x", "op": "not_exists"}) == "x not exists"
    assert (
        describe_condition(
            {
                "all": [
                    {"key": "a", "op": ">", "value": 1},
                    {
                        "any": [
                            {"key": "b", "op": "in", "value": [1, 2]},
                            {"not": {"key": "c", "op": "exists"}},
                        ]
                    },
                ]
            }
        )
        == "(a > 1 and (b in [1, 2] or not c exists))"
    )
    assert describe_condition({"any": [{"key": "a", "op": "exists"}]}) == "a exists"


def test_quotes_and_pipes_in_labels_are_escaped() -> None:
    graph = Graph.model_validate(
        {
            "start_node": "a",
            "nodes": {"a": "t", "b": "t"},
            "edges": {
                "a": [{"when": {"key": "s", "op": "matches", "value": "x|y"}, "to": "b"}, {"to": "__end__"}]
            },
        }
    )
    text = to_mermaid(graph)
    assert '-->|"s matches #quot;x#124;y#quot;"| n_b' in text


def test_distinct_node_names_get_distinct_ids() -> None:
    names = ["a-b", "a_b", "a b", "a.b", "ab"]
    graph = Graph.model_validate(
        {
            "start_node": "a-b",
            "nodes": {name: "t" for name in names},
            "edges": {"a-b": "a_b", "a_b": "a b", "a b": "a.b", "a.b": "ab"},
        }
    )
    text = to_mermaid(graph)
    declared = re.findall(r"^    (n_\w+)[\[(]", text, flags=re.MULTILINE)
    assert len(declared) == len(names)
    assert len(set(declared)) == len(names)
    assert all(re.fullmatch(r"n_[A-Za-z0-9_]+", node_id) for node_id in declared)


def test_each_line_appears_once() -> None:
    graph = Graph.model_validate(
        {
            "start_node": "a",
            "nodes": {"a": "t", "b": "t"},
            "edges": {
                "a": [
                    {"when": {"key": "x", "op": "exists"}, "to": "b"},
                    {"when": {"key": "x", "op": "exists"}, "to": "b"},
                ]
            },
        }
    )
    lines = to_mermaid(graph).splitlines()
    assert len(lines) == len(set(lines))


FANNED = Graph.model_validate(
    {
        "start_node": "load",
        "nodes": {
            "load": "dq.load",
            "split": "t.split",
            "a": {"tool": "t.a", "catch": "a_fix"},
            "a_fix": "t.fix",
            "b": "t.b",
            "merge": "t.merge",
            "clean": "t.clean",
            "check": "t.check",
            "combine": "t.combine",
        },
        "edges": {
            "load": "split",
            "split": {"parallel": ["a", "b"], "join": "merge"},
            "a": "merge",
            "a_fix": "merge",
            "b": "merge",
            "merge": {
                "map": {
                    "items": "chunks",
                    "as": "chunk",
                    "start": "clean",
                    "join": "combine",
                    "max_concurrency": 4,
                }
            },
            "clean": "check",
            "check": [{"when": {"key": "ok", "op": "exists"}, "to": "combine"}, {"to": "clean"}],
        },
    }
)


def _subgraph_members(text: str) -> dict[str, list[str]]:
    blocks = re.findall(
        r'^    subgraph sg_\d+\["([^"]*)"\]\n((?:        .*\n)*)    end$', text, flags=re.MULTILINE
    )
    return {title: re.findall(r"^        (n_\w+)", body, flags=re.MULTILINE) for title, body in blocks}


def test_parallel_branches_are_dashed_parallel_arrows_into_subgraphs() -> None:
    text = to_mermaid(FANNED)
    assert '    n_split -.->|"parallel"| n_a' in text
    assert '    n_split -.->|"parallel"| n_b' in text
    members = _subgraph_members(text)
    assert members["branch a"] == ["n_a", "n_a_fix"]
    assert members["branch b"] == ["n_b"]
    assert '    n_a -.->|"on error"| n_a_fix' in text
    assert "    n_a --> n_merge" in text


def test_a_map_is_labelled_with_its_items_and_concurrency_and_its_branch_is_for_each() -> None:
    text = to_mermaid(FANNED)
    assert '    n_merge -.->|"map over chunks (max 4)"| n_clean' in text
    assert '    n_merge -.->|"no items"| n_combine' in text
    assert _subgraph_members(text)["for each chunk"] == ["n_clean", "n_check"]
    assert '    n_check -->|"otherwise"| n_clean' in text


def test_joins_are_hexagons_and_nodes_are_declared_once() -> None:
    text = to_mermaid(FANNED)
    assert '    n_merge{{"merge<br/><small>t.merge</small>"}}' in text
    assert '    n_combine{{"combine<br/><small>t.combine</small>"}}' in text
    assert '    n_load(["load<br/><small>dq.load</small>"])' in text
    declared = re.findall(r"^\s+(n_\w+)[\[({]", text, flags=re.MULTILINE)
    assert sorted(declared) == sorted(f"n_{name}" for name in FANNED.nodes)
    assert "    n_combine --> n__end((end))" in text
    assert text.count("    end\n") == 3
    # A join is outside every branch; the fan-out and start nodes too.
    for title, members in _subgraph_members(text).items():
        assert not {"n_merge", "n_combine", "n_split", "n_load"} & set(members), title


@settings(max_examples=50)
@given(parallel_graphs())
def test_every_node_is_declared_once_and_each_branch_is_one_subgraph(
    generated: tuple[dict[str, Any], dict[str, list[str]]],
) -> None:
    raw, branches = generated
    graph = Graph.model_validate(raw)
    text = to_mermaid(graph)
    declared = re.findall(r"^\s+(n_\w+)[\[({]", text, flags=re.MULTILINE)
    assert sorted(declared) == sorted(f"n_{name}" for name in graph.nodes)
    members = _subgraph_members(text)
    assert members == {
        f"branch {start}": [f"n_{name}" for name in chain] for start, chain in branches.items()
    }
    for start in branches:
        assert f'    n_split -.->|"parallel"| n_{start}' in text
