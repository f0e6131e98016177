"""The pure step decision: :func:`engine.step.decide` given a tool's result as a value, times and a draw."""

from __future__ import annotations

from typing import Any

import pytest

from engine import conditions
from engine.attempt import run_tool
from engine.graph import Graph
from engine.limits import MAX_STATE_BYTES, MAX_STATE_DEPTH
from engine.model import LogType, Run, RunError, RunStatus, StepMessage
from engine.registry import ToolContext, ToolRegistry
from engine.step import (
    ERROR_MESSAGE_LIMIT,
    CompiledGraph,
    Raised,
    Returned,
    StepOutcome,
    TimedOut,
    ToolResult,
    decide,
    needs_draw,
    run_timed_out,
)

STARTED = 100.0
NOW = 101.5


def compiled(definition: dict[str, Any]) -> CompiledGraph:
    return CompiledGraph(Graph.model_validate({"name": "g", **definition}))


def run_at(
    node: str | None = "a", *, step: int = 0, attempt: int = 1, state: dict[str, Any] | None = None
) -> Run:
    return Run(
        run_id="r",
        graph_id="g",
        graph_version=1,
        status=RunStatus.RUNNING,
        state={"i": 0} if state is None else state,
        current_node=node,
        step=step,
        attempt=attempt,
        next_seq=7,
        created_at=0.0,
        updated_at=0.0,
    )


def decided(graph: CompiledGraph, run: Run, result: ToolResult, draw: float = 1.0) -> StepOutcome:
    return decide(graph, run, result, started=STARTED, now=NOW, duration_ms=12.3456, draw=draw)


def types(outcome: StepOutcome) -> list[LogType]:
    return [record.type for record in outcome.records]


CHAIN = {"start_node": "a", "nodes": {"a": "t.a", "b": "t.b"}, "edges": {"a": "b"}}


def test_a_returned_update_advances_to_the_next_node() -> None:
    outcome = decided(compiled(CHAIN), run_at(), Returned({"i": 1}))
    assert outcome.changes.status is RunStatus.RUNNING
    assert (outcome.changes.current_node, outcome.changes.step, outcome.changes.attempt) == ("b", 1, 1)
    assert outcome.changes.state_updates == {"i": 1}
    assert outcome.changes.updated_at == NOW
    assert outcome.changes.next_seq == 10
    assert types(outcome) == [LogType.STEP_STARTED, LogType.STEP_SUCCEEDED, LogType.EDGE_TAKEN]
    assert [r.seq for r in outcome.records] == [7, 8, 9]
    assert [r.ts for r in outcome.records] == [STARTED, NOW, NOW]
    assert outcome.records[1].duration_ms == 12.346
    assert outcome.next_message == StepMessage(run_id="r", step=1)


def test_the_first_step_of_a_run_is_its_start_node() -> None:
    outcome = decided(compiled(CHAIN), run_at(None), Returned({}))
    assert outcome.changes.current_node == "b"
    assert outcome.records[0].node == "a"


def test_deciding_twice_gives_the_same_outcome_and_leaves_the_run_alone() -> None:
    graph = compiled(CHAIN)
    run = run_at(state={"i": 0, "rows": [1]})
    before = run.model_dump()
    first = decided(graph, run, Returned({"i": 1}))
    assert run.model_dump() == before
    assert decided(graph, run, Returned({"i": 1})) == first


def test_none_is_no_update_and_the_last_node_finishes_the_run() -> None:
    outcome = decided(compiled(CHAIN), run_at("b", step=1), Returned(None))
    assert outcome.changes.status is RunStatus.SUCCEEDED
    assert (outcome.changes.current_node, outcome.changes.step) == ("b", 2)
    assert outcome.changes.finished_at == NOW
    assert outcome.changes.state_updates == {}
    assert types(outcome)[-1] is LogType.RUN_SUCCEEDED
    assert outcome.next_message is None


RETRY = {
    "start_node": "a",
    "nodes": {
        "a": {
            "tool": "t.a",
            "retry": {"max_attempts": 4, "interval_seconds": 2, "backoff_rate": 3, "max_delay_seconds": 10},
        }
    },
}


@pytest.mark.parametrize(("attempt", "delay"), [(1, 2.0), (2, 6.0), (3, 10.0)])
def test_a_raised_error_retries_after_the_backoff_capped_at_the_max_delay(attempt: int, delay: float) -> None:
    outcome = decided(compiled(RETRY), run_at(attempt=attempt), Raised("ConnectionError", "down"), draw=0.5)
    assert outcome.changes.status is RunStatus.RUNNING
    assert (outcome.changes.step, outcome.changes.attempt) == (0, attempt + 1)
    assert outcome.changes.not_before == NOW + delay, "without jitter the draw is ignored"
    assert outcome.changes.state_updates == {}
    assert types(outcome) == [LogType.STEP_STARTED, LogType.STEP_FAILED, LogType.RETRY_SCHEDULED]
    assert outcome.records[2].data == {"delay_seconds": delay}
    assert outcome.next_message == StepMessage(
        run_id="r", step=0, attempt=attempt + 1, not_before=NOW + delay
    )


def test_full_jitter_scales_the_delay_by_the_draw() -> None:
    definition = {
        "start_node": "a",
        "nodes": {
            "a": {"tool": "t.a", "retry": {"max_attempts": 3, "interval_seconds": 4, "jitter": "full"}}
        },
    }
    outcome = decided(compiled(definition), run_at(attempt=2), Raised("ConnectionError", "down"), draw=0.25)
    assert outcome.changes.not_before == NOW + 8 * 0.25


def test_the_draw_is_needed_only_where_a_full_jitter_retry_is_still_to_come() -> None:
    jittered = compiled(
        {"start_node": "a", "nodes": {"a": {"tool": "t.a", "retry": {"max_attempts": 2, "jitter": True}}}}
    )
    assert needs_draw(jittered, run_at(attempt=1))
    assert not needs_draw(jittered, run_at(attempt=2))
    assert not needs_draw(compiled(RETRY), run_at(attempt=1))


def test_the_last_attempt_fails_the_run_with_the_error() -> None:
    outcome = decided(compiled(RETRY), run_at(attempt=4, state={"i": 3}), Raised("ConnectionError", "down"))
    assert outcome.changes.status is RunStatus.FAILED
    assert outcome.changes.error == RunError(type="ConnectionError", message="down", node="a")
    assert (outcome.changes.step, outcome.changes.attempt) == (0, 4)
    assert outcome.changes.finished_at == NOW
    assert outcome.changes.state_updates == {}
    assert types(outcome) == [LogType.STEP_STARTED, LogType.STEP_FAILED, LogType.RUN_FAILED]
    assert outcome.records[1].duration_ms == 12.346
    assert outcome.next_message is None


def test_an_error_without_a_message_is_named_by_its_type_and_a_long_one_is_cut() -> None:
    graph = compiled(CHAIN)
    bare = decided(graph, run_at(), Raised.of(KeyError()))
    assert bare.changes.error is not None and bare.changes.error.message == "KeyError"
    long = decided(graph, run_at(), Raised("ValueError", "x" * (ERROR_MESSAGE_LIMIT + 5)))
    assert long.changes.error is not None
    assert long.changes.error.message == "x" * ERROR_MESSAGE_LIMIT + "... (5 more characters)"


CATCH = {
    "start_node": "a",
    "nodes": {"a": {"tool": "t.a", "catch": "handler"}, "handler": "t.h"},
}


def test_a_caught_failure_moves_to_the_catch_node_with_the_error_in_the_state() -> None:
    outcome = decided(compiled(CATCH), run_at(), Raised("ValueError", "bad input"))
    assert outcome.changes.status is RunStatus.RUNNING
    assert (outcome.changes.current_node, outcome.changes.step, outcome.changes.attempt) == ("handler", 1, 1)
    assert outcome.changes.state_updates == {
        "error": {"type": "ValueError", "message": "bad input", "node": "a"}
    }
    assert outcome.records[-1].data == {"to": "handler", "catch": True}
    assert outcome.next_message == StepMessage(run_id="r", step=1)


def test_a_catch_past_max_steps_fails_the_run_keeping_the_error() -> None:
    outcome = decided(compiled({**CATCH, "max_steps": 1}), run_at(), Raised("ValueError", "bad input"))
    assert outcome.changes.status is RunStatus.FAILED
    assert outcome.changes.error is not None and outcome.changes.error.type == "MaxStepsExceeded"
    assert outcome.changes.state_updates["error"]["message"] == "bad input"


def test_a_timeout_fails_the_attempt_as_a_tool_timeout() -> None:
    outcome = decided(compiled(RETRY), run_at(), TimedOut("tool 't.a' ran longer than 5s"))
    assert outcome.changes.attempt == 2
    failed = outcome.records[1]
    assert failed.type is LogType.STEP_FAILED
    assert failed.data == {
        "error": {"type": "ToolTimeoutError", "message": "tool 't.a' ran longer than 5s", "node": "a"}
    }


def test_max_steps_fails_the_run_before_the_next_node_keeping_the_update() -> None:
    outcome = decided(compiled({**CHAIN, "max_steps": 1}), run_at(), Returned({"i": 1}))
    assert outcome.changes.status is RunStatus.FAILED
    assert outcome.changes.error is not None and outcome.changes.error.type == "MaxStepsExceeded"
    assert "before 'b'" in outcome.changes.error.message
    assert outcome.changes.state_updates == {"i": 1}
    assert types(outcome)[-2:] == [LogType.EDGE_TAKEN, LogType.RUN_FAILED]


BRANCH = {
    "start_node": "a",
    "nodes": {"a": "t.a", "big": "t.b", "small": "t.s"},
    "edges": {
        "a": [
            {"when": {"key": "i", "op": ">", "value": 10}, "to": "big"},
            {"when": {"key": "i", "op": "<=", "value": 10}, "to": "small"},
        ]
    },
}


@pytest.mark.parametrize(("i", "target"), [(11, "big"), (3, "small")])
def test_the_first_condition_that_holds_on_the_updated_state_picks_the_edge(i: int, target: str) -> None:
    outcome = decided(compiled(BRANCH), run_at(), Returned({"i": i}))
    assert outcome.changes.current_node == target
    assert outcome.records[-1].data == {"to": target, "keys": ["i"]}


def test_no_condition_holding_and_no_default_fails_the_run() -> None:
    outcome = decided(compiled(BRANCH), run_at(), Returned({"i": "eleven"}))
    assert outcome.changes.status is RunStatus.FAILED
    error = outcome.changes.error
    assert error is not None and error.type == "NoMatchingEdge" and "looked at i" in error.message
    assert outcome.changes.state_updates == {"i": "eleven"}


def test_a_condition_that_raises_fails_the_run_naming_the_rule() -> None:
    graph = compiled(BRANCH)

    def broken(state: Any) -> conditions.Verdict:
        raise RecursionError("too deep")

    graph._conditions[("a", 0)] = broken
    outcome = decided(graph, run_at(), Returned({"i": 1}))
    assert outcome.changes.status is RunStatus.FAILED
    error = outcome.changes.error
    assert error is not None and error.type == "ConditionFailed" and error.node == "a"
    assert "rule 0 (to 'big') from 'a' failed: RecursionError: too deep" in error.message
    assert outcome.changes.state_updates == {"i": 1}


@pytest.mark.parametrize(
    ("value", "error_type", "says"),
    [
        ([1, 2], "TypeError", "returned list, expected a dict"),
        ({1: "x"}, "TypeError", "the keys [1]"),
        ({"when": {1, 2}}, "TypeError", "not JSON: when is a set"),
        ({"rows": [{"at": object()}]}, "TypeError", "not JSON: rows[0].at is a object"),
    ],
)
def test_a_result_that_is_not_a_json_update_fails_the_attempt(value: Any, error_type: str, says: str) -> None:
    outcome = decided(compiled(RETRY), run_at(), Returned(value))
    assert outcome.changes.attempt == 2, "it is retried like any failure"
    assert outcome.changes.state_updates == {}
    error = outcome.records[1].data
    assert error is not None and error["error"]["type"] == error_type
    assert says in error["error"]["message"]


def test_a_result_nested_too_deep_fails_the_attempt() -> None:
    deep: Any = 0
    for _ in range(MAX_STATE_DEPTH + 1):
        deep = [deep]
    outcome = decided(compiled(CHAIN), run_at(), Returned({"deep": deep}))
    error = outcome.changes.error
    assert error is not None and error.type == "ValueError" and "levels deep" in error.message


def test_a_state_grown_too_large_fails_the_attempt_as_state_too_large() -> None:
    run = run_at(state={"big": "x" * (MAX_STATE_BYTES // 2)})
    outcome = decided(compiled(CHAIN), run, Returned({"more": "y" * (MAX_STATE_BYTES // 2)}))
    assert outcome.changes.status is RunStatus.FAILED
    error = outcome.changes.error
    assert error is not None and error.type == "StateTooLargeError"
    assert f"the limit is {MAX_STATE_BYTES}" in error.message
    assert outcome.changes.state_updates == {}


def test_a_run_past_its_deadline_times_out_before_its_tool_runs() -> None:
    graph = compiled({**CHAIN, "timeout_seconds": 60})
    assert run_timed_out(graph, run_at(), 60.0) is None
    outcome = run_timed_out(graph, run_at(), 60.5)
    assert outcome is not None
    assert outcome.changes.status is RunStatus.TIMED_OUT
    assert outcome.changes.error == RunError(type="RunTimedOut", message="run exceeded 60s", node="a")
    assert outcome.changes.finished_at == 60.5
    assert types(outcome) == [LogType.RUN_TIMED_OUT]
    assert outcome.next_message is None
    assert run_timed_out(compiled(CHAIN), run_at(), 1e9) is None, "a graph without a timeout never times out"


def test_running_the_tool_turns_what_it_did_into_a_result(registry: ToolRegistry) -> None:
    import threading

    release = threading.Event()

    @registry.tool("t.a")
    def returns_a_set(state: dict[str, Any], ctx: ToolContext) -> Any:
        return {"seen": {state["i"]}}

    @registry.tool("t.b")
    def waits(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        release.wait(5)
        return {}

    graph = compiled(
        {
            "start_node": "a",
            "nodes": {"a": "t.a", "b": {"tool": "t.b", "timeout_seconds": 30}, "c": "t.missing"},
        }
    )
    returned = run_tool(graph, run_at(), registry)
    assert returned.result == Returned({"seen": {0}}), "the value is handed over unchecked"
    assert returned.duration_ms >= 0
    try:
        stopped = run_tool(graph, run_at("b"), registry, time_left=0.01)
    finally:
        release.set()
    assert isinstance(stopped.result, TimedOut)
    assert "ran out of the step's time" in stopped.result.message
    missing = run_tool(graph, run_at("c"), registry)
    assert isinstance(missing.result, Raised) and missing.result.type == "ToolNotFoundError"
