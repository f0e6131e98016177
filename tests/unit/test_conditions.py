"""Edge conditions: every operator and combinator, missing keys, type mismatches, dotted paths."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine import conditions
from engine.conditions import OPS, Verdict, check, compile_condition, evaluate, normalise_op, resolve
from engine.graph import EdgeRule, Graph

STATE: dict[str, Any] = {
    "n": 3,
    "x": 2.5,
    "flag": True,
    "name": "orders-2024.csv",
    "tags": ["raw", "csv"],
    "nothing": None,
    "stats": {"rows": 10, "cols": {"count": 4}},
    "runs": [{"score": 0.5}, {"score": 0.9}],
}


def holds(condition: dict[str, Any], state: Any = None) -> bool:
    verdict = evaluate(condition, STATE if state is None else state)
    assert isinstance(verdict, Verdict)
    assert verdict.reason
    return verdict.holds


def cond(key: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"key": key, "op": op, "value": value}


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("==", 3, True),
        ("==", 4, False),
        ("!=", 4, True),
        ("!=", 3, False),
        (">", 2, True),
        (">", 3, False),
        (">=", 3, True),
        (">=", 4, False),
        ("<", 4, True),
        ("<", 3, False),
        ("<=", 3, True),
        ("<=", 2, False),
        ("in", [1, 3], True),
        ("in", [1, 2], False),
        ("not_in", [1, 2], True),
        ("not_in", [3], False),
    ],
)
def test_comparison_ops_on_a_number(op: str, value: Any, expected: bool) -> None:
    assert holds(cond("n", op, value)) is expected


def test_int_and_float_compare_with_each_other() -> None:
    assert holds(cond("x", ">", 2))
    assert holds(cond("n", "<", 3.5))
    assert holds(cond("n", "==", 3.0))


def test_strings_and_lists_order_among_their_own_kind() -> None:
    assert holds(cond("name", ">", "a"))
    assert not holds(cond("name", "<", "a"))
    assert holds(cond("tags", ">=", ["raw"]))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("tags", "csv", True),
        ("tags", "json", False),
        ("name", "2024", True),
        ("name", "xlsx", False),
        ("stats", "rows", True),
        ("stats", "missing", False),
    ],
)
def test_contains_on_lists_strings_and_dict_keys(key: str, value: Any, expected: bool) -> None:
    assert holds(cond(key, "contains", value)) is expected


def test_in_and_not_in_a_string_test_substrings() -> None:
    assert holds(cond("name", "in", "data/orders-2024.csv.gz"))
    assert holds(cond("name", "not_in", "something else"))


def test_exists_and_not_exists() -> None:
    assert holds({"key": "stats.rows", "op": "exists"})
    assert holds({"key": "nothing", "op": "exists"}), "a key holding null exists"
    assert not holds({"key": "stats.absent", "op": "exists"})
    assert holds({"key": "stats.absent", "op": "not_exists"})
    assert not holds({"key": "n", "op": "not_exists"})


def test_matches_searches_a_regular_expression() -> None:
    assert holds(cond("name", "matches", r"\d{4}\.csv$"))
    assert not holds(cond("name", "matches", r"^\d"))
    verdict = evaluate(cond("n", "matches", r"\d"), STATE)
    assert not verdict.holds
    assert "not a string" in verdict.reason


def test_operator_aliases() -> None:
    assert normalise_op("gt") == ">"
    assert normalise_op("=") == "=="
    assert normalise_op("bogus") is None
    assert normalise_op(3) is None
    assert holds(cond("n", "gte", 3))
    assert holds(cond("n", "ne", 4))


@pytest.mark.parametrize("op", [op for op in OPS if op != "not_exists"])
def test_a_missing_key_is_false_for_every_op_but_not_exists(op: str) -> None:
    value: Any = [1] if op in ("in", "not_in") else ("x" if op == "matches" else 1)
    for key in ("absent", "stats.absent", "stats.rows.deeper", "runs.5.score", "tags.x"):
        verdict = evaluate(cond(key, op, value), STATE)
        assert verdict.holds is False, (key, op)
        assert "missing" in verdict.reason
        assert verdict.keys == (key,)


def test_not_equal_is_false_for_a_missing_key() -> None:
    verdict = evaluate(cond("absent", "!=", 1), STATE)
    assert not verdict.holds
    assert verdict.reason == "absent is missing"


@pytest.mark.parametrize(
    ("key", "op", "value"),
    [
        ("name", ">", 2),
        ("nothing", "<", 1),
        ("n", ">", "2"),
        ("flag", ">", 0),
        ("n", ">=", True),
        ("stats", "<", {"rows": 1}),
        ("tags", ">", "raw"),
    ],
)
def test_values_that_cannot_be_ordered_make_the_comparison_false(key: str, op: str, value: Any) -> None:
    verdict = evaluate(cond(key, op, value), STATE)
    assert verdict.holds is False
    assert "cannot be compared" in verdict.reason


def test_equality_is_python_equality_without_coercion() -> None:
    assert not holds(cond("n", "==", "3"))
    assert holds(cond("n", "!=", "3"))
    assert holds(cond("stats.cols", "==", {"count": 4}))


@pytest.mark.parametrize(
    ("key", "op", "value", "reason"),
    [
        ("n", "contains", 1, "cannot contain"),
        ("nothing", "contains", 1, "cannot contain"),
        ("tags", "contains", ["raw"], "is false"),
        ("n", "in", "123", "not a string"),
        ("stats", "in", "stats", "not a string"),
        ("n", "in", 5, "needs a list or string"),
        ("n", "not_in", 5, "needs a list or string"),
    ],
)
def test_wrong_kinds_for_membership_ops_are_false(key: str, op: str, value: Any, reason: str) -> None:
    verdict = compile_condition(cond(key, op, value))(STATE)
    assert verdict.holds is False
    assert reason in verdict.reason


def test_membership_of_structured_values() -> None:
    assert holds(cond("stats.cols", "in", [{"count": 4}, {"count": 5}]))
    assert holds(cond("runs", "contains", {"score": 0.9}))


def test_unhashable_value_in_dict_contains_is_false_not_an_error() -> None:
    verdict = evaluate(cond("stats", "contains", ["rows"]), STATE)
    assert not verdict.holds
    assert "cannot contain" in verdict.reason


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("stats.rows", 10),
        ("stats.cols.count", 4),
        ("runs.0.score", 0.5),
        ("runs.-1.score", 0.9),
        ("tags.1", "csv"),
        ("nothing", None),
    ],
)
def test_dotted_paths_index_dicts_by_name_and_lists_by_position(path: str, expected: Any) -> None:
    assert resolve(STATE, path) == expected
    assert holds(cond(path, "==", expected))


@pytest.mark.parametrize(
    "path", ["runs.2.score", "runs.-3", "runs.first", "name.0", "n.x", "stats.cols.count.x"]
)
def test_paths_that_lead_nowhere_are_missing(path: str) -> None:
    assert resolve(STATE, path) is conditions._MISSING
    assert holds({"key": path, "op": "not_exists"})


def test_all_any_not() -> None:
    yes = cond("n", "==", 3)
    no = cond("n", "==", 4)
    assert holds({"all": [yes, yes]})
    assert not holds({"all": [yes, no]})
    assert holds({"any": [no, yes]})
    assert not holds({"any": [no, no]})
    assert holds({"not": no})
    assert not holds({"not": yes})
    assert holds({"all": [yes, {"any": [no, {"not": no}]}]})


def test_combinator_verdicts_say_why_and_name_every_key_read() -> None:
    verdict = evaluate(
        {"all": [cond("n", ">", 1), {"any": [cond("absent", "==", 1), cond("x", "<", 1)]}]}, STATE
    )
    assert not verdict.holds
    assert verdict.reason.startswith("all: any: ")
    assert "absent is missing" in verdict.reason
    assert "x=2.5 < 1 is false" in verdict.reason
    assert verdict.keys == ("n", "absent", "x")
    negated = evaluate({"not": cond("absent", "exists")}, STATE)
    assert negated.holds
    assert negated.reason == "not (absent is missing)"
    assert negated.keys == ("absent",)


def test_all_stops_at_the_first_false_and_any_at_the_first_true() -> None:
    verdict = evaluate({"all": [cond("n", "==", 4), cond("x", "==", 1)]}, STATE)
    assert verdict.keys == ("n",)
    verdict = evaluate({"any": [cond("n", "==", 3), cond("x", "==", 1)]}, STATE)
    assert verdict.holds
    assert verdict.keys == ("n",)


def test_evaluation_never_raises_on_odd_states() -> None:
    for state in (None, 3, "text", [], [1, 2], {"n": object()}):
        for op in OPS:
            value: Any = [1] if op in ("in", "not_in") else ("x" if op == "matches" else 1)
            verdict = evaluate(cond("n", op, value), state)
            assert isinstance(verdict.holds, bool)


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ("n > 2", "must be an object"),
        ({"key": "n", "op": "bigger", "value": 2}, "unknown operator 'bigger'"),
        ({"key": "n", "value": 2}, "unknown operator None"),
        ({"op": ">", "value": 2}, "needs a 'key'"),
        ({"key": "a..b", "op": ">", "value": 2}, "needs a 'key'"),
        ({"key": "", "op": ">", "value": 2}, "needs a 'key'"),
        ({"key": "n", "op": ">"}, "needs a 'value'"),
        ({"key": "n", "op": "in", "value": 3}, "needs a list or string"),
        ({"key": "n", "op": "matches", "value": 3}, "regular expression string"),
        ({"key": "n", "op": "matches", "value": "("}, "invalid regular expression"),
        ({"key": "n", "op": ">", "value": 2, "extra": 1}, "unknown fields ['extra']"),
        ({"all": []}, "non-empty list"),
        ({"any": {"key": "n"}}, "non-empty list"),
        ({"all": [{"key": "n", "op": "exists"}], "key": "n"}, "mixes 'all'"),
        ({"not": {"key": "n", "op": "??"}}, "condition.not has unknown operator"),
        ({"all": [{"key": "n", "op": "exists"}, {"key": "m"}]}, "condition.all[1]"),
    ],
)
def test_malformed_conditions_are_reported_and_evaluate_false(condition: Any, fragment: str) -> None:
    problems = check(condition)
    assert problems
    assert any(fragment in p for p in problems), problems
    verdict = evaluate(condition, STATE)
    assert verdict.holds is False
    assert verdict.reason.startswith("malformed condition: ")


def test_check_reports_every_problem_of_a_condition() -> None:
    problems = check({"all": [{"key": "", "op": ">"}, {"key": "n", "op": "nope"}]}, "when")
    assert any(p.startswith("when.all[0] needs a 'key'") for p in problems)
    assert any(p.startswith("when.all[0] with op '>' needs a 'value'") for p in problems)
    assert any(p.startswith("when.all[1] has unknown operator 'nope'") for p in problems)


def test_well_formed_conditions_have_no_problems() -> None:
    for op in OPS:
        value: Any = ["a"] if op in ("in", "not_in") else "a"
        assert check({"key": "a.0.b", "op": op, "value": value}) == []
    assert check({"key": "a", "op": "exists"}) == []
    assert check({"not": {"any": [{"key": "a", "op": "exists"}]}}) == []


SEED = '{"key": "anomaly_count", "op": ">", "value": 2}'


def test_seed_format_loads_from_json_as_written() -> None:
    seed = json.loads(SEED)
    assert check(seed) == []
    assert evaluate(seed, {"anomaly_count": 3}).holds
    assert not evaluate(seed, {"anomaly_count": 2}).holds
    assert not evaluate(seed, {}).holds
    verdict = evaluate(seed, {"anomaly_count": 5})
    assert verdict.reason == "anomaly_count=5 > 2 is true"
    assert verdict.keys == ("anomaly_count",)


@pytest.mark.parametrize("field", ["when", "condition"])
def test_edge_rule_takes_the_condition_under_when_or_condition(field: str) -> None:
    rule = EdgeRule.model_validate(json.loads(f'{{"{field}": {SEED}, "to": "generate_rules"}}'))
    assert rule.when == json.loads(SEED)
    assert rule.to == "generate_rules"
    graph = Graph.model_validate(
        json.loads(
            f'{{"start_node": "evaluate", "nodes": {{"evaluate": "dq.evaluate", "generate_rules": "dq.rules"}},'
            f' "edges": {{"evaluate": [{{"{field}": {SEED}, "to": "generate_rules"}}, {{"to": "__end__"}}]}}}}'
        )
    )
    edge = graph.edges["evaluate"]
    assert isinstance(edge, list)
    assert edge[0].when == {"key": "anomaly_count", "op": ">", "value": 2}
    assert edge[1].when is None
    dumped = graph.model_dump(mode="json")
    assert Graph.model_validate(dumped) == graph
