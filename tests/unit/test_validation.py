"""Graph validation: every problem reported at once, each naming its node or edge."""

from __future__ import annotations

from typing import Any

import pytest

from engine import InvalidGraphError, Problem, ToolRegistry, WorkflowService
from engine.errors import EngineError
from engine.graph import loads_definition
from engine.validation import find_problems, parse_graph, validate_graph


def problems_of(raw: Any, registry: ToolRegistry) -> list[Problem]:
    with pytest.raises(InvalidGraphError) as caught:
        validate_graph(raw, registry)
    error = caught.value
    assert error.code == "invalid_graph"
    assert error.problems
    for problem in error.problems:
        assert str(problem) in error.message
    return error.problems


def where(problems: list[Problem]) -> list[str]:
    return [p.where for p in problems]


def find(problems: list[Problem], where: str, fragment: str) -> Problem:
    for problem in problems:
        if problem.where == where and fragment in problem.message:
            return problem
    raise AssertionError(f"no problem at {where!r} with {fragment!r} in {problems}")


def test_a_valid_graph_has_no_problems(registry: ToolRegistry) -> None:
    graph = validate_graph(
        {
            "start_node": "a",
            "nodes": {"a": "t.inc", "b": "t.noop"},
            "edges": {
                "a": "b",
                "b": [{"when": {"key": "i", "op": "<", "value": 3}, "to": "a"}, {"to": "__end__"}],
            },
        },
        registry,
    )
    assert find_problems(graph, registry) == []


def test_unknown_tool(registry: ToolRegistry) -> None:
    problems = problems_of({"start_node": "a", "nodes": {"a": "t.nope"}}, registry)
    assert where(problems) == ["nodes.a.tool"]
    assert "unknown tool 't.nope'" in problems[0].message


def test_edge_to_unknown_node(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": "t.noop", "b": "t.noop"},
            "edges": {
                "a": [{"when": {"key": "x", "op": "exists"}, "to": "ghost"}, {"to": "b"}],
                "b": "phantom",
            },
        },
        registry,
    )
    find(problems, "edges.a[0]", "edge to unknown node 'ghost'")
    find(problems, "edges.b", "edge to unknown node 'phantom'")
    assert len(problems) == 2


def test_edge_from_unknown_node(registry: ToolRegistry) -> None:
    problems = problems_of({"start_node": "a", "nodes": {"a": "t.noop"}, "edges": {"nobody": "a"}}, registry)
    find(problems, "edges.nobody", "edge from unknown node 'nobody'")


def test_catch_to_unknown_node(registry: ToolRegistry) -> None:
    problems = problems_of(
        {"start_node": "a", "nodes": {"a": {"tool": "t.noop", "catch": "rescue"}}}, registry
    )
    find(problems, "nodes.a.catch", "unknown node 'rescue'")


def test_unknown_start_node(registry: ToolRegistry) -> None:
    problems = problems_of({"start_node": "begin", "nodes": {"a": "t.noop"}}, registry)
    assert where(problems) == ["start_node"]
    assert "'begin' is not a node" in problems[0].message


def test_unreachable_nodes(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": "t.noop", "b": "t.noop", "island": "t.noop", "rescue": "t.noop"},
            "edges": {"a": "b", "island": "b"},
        },
        registry,
    )
    assert sorted(where(problems)) == ["nodes.island", "nodes.rescue"]
    find(problems, "nodes.island", "unreachable from start node 'a'")


def test_a_catch_target_is_reachable(registry: ToolRegistry) -> None:
    validate_graph(
        {"start_node": "a", "nodes": {"a": {"tool": "t.noop", "catch": "rescue"}, "rescue": "t.noop"}},
        registry,
    )


def test_unknown_operator(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": "t.noop", "b": "t.noop"},
            "edges": {
                "a": [{"when": {"key": "x", "op": "approximately", "value": 1}, "to": "b"}, {"to": "b"}]
            },
        },
        registry,
    )
    assert where(problems) == ["edges.a[0]"]
    assert "unknown operator 'approximately'" in problems[0].message


@pytest.mark.parametrize(
    ("when", "fragment"),
    [
        ({"key": "x", "op": ">"}, "needs a 'value'"),
        ({"op": ">", "value": 1}, "needs a 'key'"),
        ({"all": []}, "non-empty list"),
        ({"not": {"key": "x", "op": "matches", "value": "("}}, "invalid regular expression"),
        ({"key": "x", "op": "exists", "because": "why"}, "unknown fields"),
    ],
)
def test_malformed_condition(registry: ToolRegistry, when: dict[str, Any], fragment: str) -> None:
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": "t.noop", "b": "t.noop"},
            "edges": {"a": [{"condition": when, "to": "b"}, {"to": "b"}]},
        },
        registry,
    )
    find(problems, "edges.a[0]", fragment)


def test_a_condition_that_is_not_an_object_names_the_rule(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": "t.noop", "b": "t.noop"},
            "edges": {"a": [{"when": "x > 1", "to": "b"}, {"to": "b"}]},
        },
        registry,
    )
    assert where(problems) == ["edges.a[0].when"]


def test_a_rule_without_a_target_names_the_rule(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": "t.noop", "b": "t.noop"},
            "edges": {"a": [{"to": "b", "when": {"key": "x", "op": "exists"}}, {"goto": "b"}]},
        },
        registry,
    )
    assert sorted(where(problems)) == ["edges.a[1].goto", "edges.a[1].to"]


def test_a_rule_with_when_and_condition_names_the_rule(registry: ToolRegistry) -> None:
    condition = {"key": "x", "op": "exists"}
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": "t.noop", "b": "t.noop"},
            "edges": {"a": [{"when": condition, "condition": condition, "to": "b"}]},
        },
        registry,
    )
    assert where(problems) == ["edges.a[0]"]
    assert "not both" in problems[0].message


def test_an_edge_of_the_wrong_shape_is_one_problem(registry: ToolRegistry) -> None:
    problems = problems_of(
        {"start_node": "a", "nodes": {"a": "t.noop", "b": "t.noop"}, "edges": {"a": {"to": "b"}}}, registry
    )
    assert where(problems) == ["edges.a"]
    assert "node name or a list" in problems[0].message


def test_rules_after_a_default_are_never_taken(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": "t.noop", "b": "t.noop", "c": "t.noop"},
            "edges": {"a": [{"to": "b"}, {"when": {"key": "x", "op": "exists"}, "to": "c"}]},
        },
        registry,
    )
    find(problems, "edges.a[1]", "never taken")


def test_an_empty_rule_list_is_rejected(registry: ToolRegistry) -> None:
    problems = problems_of({"start_node": "a", "nodes": {"a": "t.noop"}, "edges": {"a": []}}, registry)
    find(problems, "edges.a", "no rules")


def test_the_end_name_is_reserved(registry: ToolRegistry) -> None:
    problems = problems_of(
        {"start_node": "a", "nodes": {"a": "t.noop", "__end__": "t.noop"}, "edges": {"a": "__end__"}},
        registry,
    )
    find(problems, "nodes.__end__", "reserved")


def test_a_cycle_with_no_path_to_an_end(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": "t.noop", "b": "t.noop", "c": "t.noop"},
            "edges": {
                "a": "b",
                "b": [{"when": {"key": "i", "op": "<", "value": 3}, "to": "c"}, {"to": "a"}],
                "c": "a",
            },
        },
        registry,
    )
    problem = find(problems, "edges", "no path leads to an end")
    assert "'a', 'b', 'c'" in problem.message


def test_a_trap_after_a_branch_is_named_alone(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": "t.noop", "done": "t.noop", "spin": "t.noop"},
            "edges": {
                "a": [{"when": {"key": "x", "op": "exists"}, "to": "spin"}, {"to": "done"}],
                "spin": "spin",
            },
        },
        registry,
    )
    problem = find(problems, "edges", "no path leads to an end")
    assert "'spin'" in problem.message
    assert "'a'" not in problem.message


def test_loops_with_an_exit_are_accepted(registry: ToolRegistry) -> None:
    validate_graph(
        {
            "start_node": "a",
            "nodes": {"a": "t.inc", "b": "t.noop", "report": "t.noop"},
            "edges": {
                "a": "b",
                "b": [{"when": {"key": "i", "op": "<", "value": 3}, "to": "a"}, {"to": "report"}],
            },
        },
        registry,
    )
    validate_graph({"start_node": "a", "nodes": {"a": "t.inc"}, "edges": {"a": "__end__"}}, registry)


def test_duplicate_node_names_in_json_text(registry: ToolRegistry) -> None:
    text = """
    {"start_node": "a",
     "nodes": {"a": {"tool": "t.noop"}, "b": "t.noop", "a": {"tool": "t.inc"}},
     "edges": {"a": "b"}}
    """
    problems = problems_of(loads_definition(text), registry)
    assert where(problems) == ["nodes.a"]
    assert "used more than once" in problems[0].message


def test_edges_from_one_node_given_twice_in_json_text(registry: ToolRegistry) -> None:
    text = """
    {"start_node": "a",
     "nodes": {"a": "t.noop", "b": "t.noop", "c": "t.noop"},
     "edges": {"a": "b", "b": "c", "a": "c"}}
    """
    problems = problems_of(loads_definition(text), registry)
    assert where(problems) == ["edges.a", "nodes.b"]
    assert "more than once" in problems[0].message
    assert "unreachable" in problems[1].message


def test_repeated_node_names_do_not_hide_other_problems(registry: ToolRegistry) -> None:
    text = """
    {"start_node": "a",
     "nodes": {"a": "t.noop", "a": "t.missing", "b": "t.noop"},
     "edges": {"a": "b", "b": "nowhere"}}
    """
    problems = problems_of(loads_definition(text), registry)
    assert where(problems) == ["nodes.a", "nodes.a.tool", "edges.b"]
    assert problems[1].message.startswith("unknown tool 't.missing'")
    assert problems[2].message == "edge to unknown node 'nowhere'"


def test_duplicate_node_names_in_the_list_form(registry: ToolRegistry) -> None:
    raw = {
        "start_node": "a",
        "nodes": [
            {"name": "a", "tool": "t.noop"},
            {"name": "b", "tool": "t.noop"},
            {"name": "b", "tool": "t.inc"},
            {"name": "a", "tool": "t.inc"},
        ],
        "edges": {"a": "b"},
    }
    problems = problems_of(raw, registry)
    assert where(problems) == ["nodes.a", "nodes.b"]


def test_duplicate_names_are_reported_with_field_errors(registry: ToolRegistry) -> None:
    raw = {"start_node": "a", "nodes": [{"name": "a", "tool": "t.noop"}, {"name": "a", "tool": ""}]}
    with pytest.raises(InvalidGraphError) as caught:
        parse_graph(raw)
    assert "nodes.a" in where(caught.value.problems)
    assert any(p.where.startswith("nodes.a.tool") for p in caught.value.problems)


def test_every_problem_is_reported_at_once(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": "t.noop", "b": "t.unknown", "lost": "t.noop", "loop": "t.noop"},
            "edges": {
                "a": [
                    {"when": {"key": "x", "op": "~", "value": 1}, "to": "b"},
                    {"when": {"key": "x", "op": "exists"}, "to": "loop"},
                    {"to": "nowhere"},
                ],
                "loop": "loop",
            },
        },
        registry,
    )
    find(problems, "nodes.b.tool", "unknown tool 't.unknown'")
    find(problems, "edges.a[0]", "unknown operator '~'")
    find(problems, "edges.a[2]", "unknown node 'nowhere'")
    find(problems, "nodes.lost", "unreachable")
    find(problems, "edges", "'loop'")
    assert len(problems) == 5


def test_field_errors_are_problems_with_their_location(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": {"tool": "t.noop", "retry": {"max_attempts": 0}}},
            "max_steps": -1,
        },
        registry,
    )
    assert sorted(where(problems)) == ["max_steps", "nodes.a.retry.max_attempts"]


def test_a_definition_that_is_not_an_object(registry: ToolRegistry) -> None:
    problems = problems_of(["a", "b"], registry)
    assert where(problems) == ["graph"]


def test_create_graph_rejects_with_an_engine_error(service: WorkflowService) -> None:
    with pytest.raises(EngineError) as caught:
        service.create_graph({"start_node": "x", "nodes": {"a": "t.nope"}})
    assert isinstance(caught.value, InvalidGraphError)
    assert sorted(where(caught.value.problems)) == ["nodes.a.tool", "start_node"]
    assert service.list_graphs() == []


def test_an_unknown_tool_names_the_closest_tools_and_where_to_list_them(registry: ToolRegistry) -> None:
    problems = problems_of({"start_node": "a", "nodes": {"a": "t.inv"}}, registry)
    message = problems[0].message
    assert message.startswith("unknown tool 't.inv'; did you mean 't.inc'")
    assert "GET /tools (or wf tools)" in message


def test_a_misspelt_node_name_gets_the_closest_names(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "profile",
            "nodes": {"profile": "t.noop", "report": "t.noop"},
            "edges": {"profile": "reprot", "prfile": "report"},
        },
        registry,
    )
    find(problems, "edges.profile", "edge to unknown node 'reprot'; did you mean 'report'?")
    find(problems, "edges.prfile", "edge from unknown node 'prfile'; did you mean 'profile'?")


def test_an_edge_given_as_a_list_of_node_names_says_what_to_write(registry: ToolRegistry) -> None:
    problems = problems_of(
        {
            "start_node": "a",
            "nodes": {"a": "t.noop", "b": "t.noop", "c": "t.noop"},
            "edges": {"a": ["b", "c"]},
        },
        registry,
    )
    assert where(problems) == ["edges.a"]
    message = problems[0].message
    assert message.startswith(
        'edge from \'a\' must be a node name ("b"), or a list of rules [{"when": {...}, "to": "b"}, {"to": "c"}]'
    )
    assert "a list of node names is not an edge" in message
    assert "valid dictionary" not in message


def test_an_edge_of_the_wrong_type_shows_the_accepted_forms(registry: ToolRegistry) -> None:
    problems = problems_of({"start_node": "a", "nodes": {"a": "t.noop"}, "edges": {"a": 3}}, registry)
    assert where(problems) == ["edges.a"]
    assert 'must be a node name ("b"), or a list of rules' in problems[0].message


def test_a_malformed_node_shows_the_accepted_forms(registry: ToolRegistry) -> None:
    problems = problems_of({"start_node": "a", "nodes": {"a": 3}}, registry)
    assert where(problems) == ["nodes.a"]
    assert problems[0].message.startswith(
        'a node is a tool name ("dq.profile") or an object such as {"tool": '
    )


def test_a_misspelt_field_gets_the_closest_and_the_accepted_fields(registry: ToolRegistry) -> None:
    problems = problems_of(
        {"start_node": "a", "nodes": {"a": {"tool": "t.noop", "retry": {"max_atempts": 2}}}, "edge": {}},
        registry,
    )
    find(problems, "edge", "did you mean 'edges'? (accepted: name, description, start_node, nodes, edges")
    find(problems, "nodes.a.retry.max_atempts", "did you mean 'max_attempts'?")


def test_a_node_list_entry_without_a_name_shows_both_forms(registry: ToolRegistry) -> None:
    problems = problems_of({"start_node": "a", "nodes": [{"tool": "t.noop"}]}, registry)
    find(problems, "nodes", '[{"name": "a", "tool": "dq.profile"}]; or give nodes as {"a": "dq.profile"}')
