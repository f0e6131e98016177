"""engine.limits and the checks built on it: depth, keys, sizes, numbers, log truncation, RE2 patterns,
and the service refusing or failing what exceeds them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import InProcessDriver, RunStatus, ToolContext, ToolRegistry, WorkflowService, conditions, limits
from engine.attempt import execute_step
from engine.errors import BadRequestError, GraphNotFoundError, RunActiveError, StateTooLargeError
from engine.service import LOCAL_OWNER
from engine.step import CompiledGraph

CHAIN = {"name": "chain", "start_node": "a", "nodes": {"a": "t.inc"}}


def nested_list(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [0, "[{", [], {}, [1, [2, [3]]], {"a": {"b": [{"c": "]]]}"}]}, "x": '\\"[['}, nested_list(500)],
)
def test_text_depth_agrees_with_json_depth(value: Any) -> None:
    assert limits.text_depth(json.dumps(value)) == limits.json_depth(value)


def test_depths_of_100000_levels_are_measured_without_recursion() -> None:
    text = "[" * 100_000 + "]" * 100_000
    assert limits.text_depth(text) == 100_000
    assert limits.json_depth(nested_list(100_000)) == 100_000


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("", "empty"),
        ("k" * (limits.MAX_STATE_KEY_LENGTH + 1), "characters"),
        ("a\ud800", "lone surrogate"),
        ("a\x00b", "control character U+0000"),
        ("tab\there", "control character U+0009"),
        (3, "must be strings"),
    ],
)
def test_bad_state_keys(key: Any, fragment: str) -> None:
    problem = limits.key_problem(key)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize("key", ["k", "k" * limits.MAX_STATE_KEY_LENGTH, "\u200fright-to-left", "ключ", "😀"])
def test_good_state_keys(key: str) -> None:
    assert limits.key_problem(key) is None


def test_check_state_says_what_and_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_STATE_BYTES", 100)
    with pytest.raises(StateTooLargeError) as too_large:
        limits.check_state({"pad": "x" * 200})
    assert too_large.value.details == {"size": 210, "limit": 100}  # {"pad":"xx..."}, compact JSON
    with pytest.raises(BadRequestError, match="nests 70 levels deep; the limit is 64"):
        limits.check_state({"d": nested_list(69)})
    with pytest.raises(BadRequestError, match="top-level keys"):
        limits.check_state({f"k{i}": 0 for i in range(limits.MAX_STATE_KEYS + 1)})
    with pytest.raises(BadRequestError, match="NaN or infinity"):
        limits.check_state({"n": float("inf")})
    with pytest.raises(BadRequestError, match="lone surrogate"):
        limits.check_state({"s": ["ok", "\udc00"]})
    limits.check_state({"pad": "x" * 50})


@pytest.mark.parametrize("text", ["1e400", "-1e999", "NaN", "Infinity", "-Infinity", "9" * 4301])
def test_number_hooks_refuse_what_json_cannot_carry(text: str) -> None:
    with pytest.raises(BadRequestError):
        json.loads(f'{{"n": {text}}}', **limits.NUMBER_HOOKS)


def test_number_hooks_keep_ordinary_numbers() -> None:
    text = '{"i": -12, "f": 1.5e300, "big": ' + "9" * 4300 + "}"
    assert json.loads(text, **limits.NUMBER_HOOKS) == json.loads(text)


def test_log_truncation_marks_what_it_cut() -> None:
    assert limits.truncate_message("short") == "short"
    cut = limits.truncate_message("m" * 10_000)
    assert len(cut) == limits.MAX_LOG_MESSAGE and cut.endswith(limits.TRUNCATED)
    assert limits.truncate_data({"a": 1}) == {"a": 1}
    big = limits.truncate_data({"a": "d" * 100_000})
    assert big is not None and big["truncated"] is True and big["bytes"] > limits.MAX_LOG_DATA_BYTES
    assert big["preview"].endswith(limits.TRUNCATED)


# conditions


def test_a_catastrophic_pattern_runs_in_linear_time() -> None:
    verdict = conditions.evaluate(
        {"key": "s", "op": "matches", "value": "(a+)+$"}, {"s": "a" * 200_000 + "!"}
    )
    assert verdict.holds is False
    assert conditions.evaluate({"key": "s", "op": "matches", "value": "(a+)+$"}, {"s": "a" * 200_000}).holds


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=x)", "(?<=x)y", "a" * (limits.MAX_PATTERN_LENGTH + 1)])
def test_patterns_re2_cannot_use_are_problems(pattern: str) -> None:
    problems = conditions.check({"key": "s", "op": "matches", "value": pattern})
    assert len(problems) == 1
    with pytest.raises(ValueError):
        conditions.compile_pattern(pattern)


def test_condition_depth_is_bounded_without_recursion_errors() -> None:
    condition: dict[str, Any] = {"key": "x", "op": "exists"}
    for _ in range(10_000):
        condition = {"not": condition}
    assert conditions.check(condition) == [
        "condition"
        + ".not" * limits.MAX_CONDITION_DEPTH
        + f" nests conditions more than {limits.MAX_CONDITION_DEPTH} deep"
    ]


def test_a_condition_that_raises_fails_the_run_naming_the_node(
    registry: ToolRegistry, service: WorkflowService
) -> None:
    definition = {
        "name": "branch",
        "start_node": "a",
        "nodes": {"a": "t.inc", "b": "t.noop"},
        "edges": {"a": [{"when": {"key": "i", "op": "==", "value": 1}, "to": "b"}, {"to": "__end__"}]},
    }
    record = service.create_graph(definition)
    compiled = CompiledGraph(record.definition)

    def broken(state: Any) -> conditions.Verdict:
        raise RecursionError("maximum recursion depth exceeded")

    compiled._conditions[("a", 0)] = broken
    run = service.start_run(record.graph_id, enqueue=False)
    outcome = execute_step(compiled, run, registry)
    assert outcome.changes.status is RunStatus.FAILED
    error = outcome.changes.error
    assert error is not None and error.type == "ConditionFailed" and error.node == "a"
    assert "rule 0 (to 'b') from 'a' failed: RecursionError" in error.message


# the service


def test_a_start_refused_for_its_state_sends_nothing(
    driver: InProcessDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = driver.service
    graph_id = service.create_graph(CHAIN).graph_id
    monkeypatch.setattr(limits, "MAX_STATE_BYTES", 1000)
    for state in ({"pad": "x" * 2000}, {"": 1}, {"d": nested_list(100)}):
        with pytest.raises((BadRequestError, StateTooLargeError)):
            service.start_run(graph_id, state)
        with pytest.raises((BadRequestError, StateTooLargeError)):
            service.run_inline(graph_id, state)
    assert len(driver.queue) == 0
    assert driver.queue.sent == 0


def test_a_tool_that_grows_the_state_too_large_fails_its_attempt(
    registry: ToolRegistry, driver: InProcessDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    @registry.tool("t.grow")
    def grow(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"pad": "x" * 5000}

    monkeypatch.setattr(limits, "MAX_STATE_BYTES", 1000)
    graph_id = driver.service.create_graph(
        {"start_node": "g", "nodes": {"g": {"tool": "t.grow", "retry": {"max_attempts": 2}}}}
    ).graph_id
    run = driver.run(graph_id)
    assert run.status is RunStatus.FAILED
    assert run.attempt == 2
    assert run.error is not None and run.error.type == "StateTooLargeError"
    assert "5010 bytes as JSON; the limit is 1000" in run.error.message
    assert run.state == {}


def test_delete_run_and_graph(driver: InProcessDriver) -> None:
    service = driver.service
    graph_id = service.create_graph(CHAIN).graph_id
    pending = service.start_run(graph_id, idempotency_key="once")
    with pytest.raises(RunActiveError):
        service.delete_run(pending.run_id)
    driver.drain()
    service.delete_run(pending.run_id)
    assert service.runs.find_run_by_idempotency_key(LOCAL_OWNER, "once") is None
    assert service.delete_graph(graph_id) == 1
    with pytest.raises(GraphNotFoundError):
        service.delete_graph(graph_id)


def test_a_run_whose_graph_was_deleted_fails_at_its_next_step(driver: InProcessDriver) -> None:
    service = driver.service
    graph_id = service.create_graph(CHAIN).graph_id
    run = service.start_run(graph_id)
    service.delete_graph(graph_id)
    driver.drain()
    ended = service.get_run(run.run_id)
    assert ended.status is RunStatus.FAILED
    assert ended.error is not None and ended.error.type == "GraphDeleted"


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8")),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=8)
_states = st.dictionaries(_keys, _json_values, max_size=6)


@given(state=_states, updates=_states)
def test_the_state_size_kept_across_updates_is_the_size_of_its_json(
    state: dict[str, Any], updates: dict[str, Any]
) -> None:
    merged = {**state, **updates}
    expected = len(json.dumps(merged, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    assert limits.state_bytes(merged) == expected
    assert limits.updated_state_bytes(state, updates, limits.state_bytes(state), "s") == expected
    assert limits.updated_state_bytes(state, updates, None, "s") == expected
