"""The Mermaid diagram of a graph."""

from __future__ import annotations

import re

from engine.graph import Graph
from engine.mermaid import describe_condition, to_mermaid

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
