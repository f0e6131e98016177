"""The step semantics: tools, edges, loops, retries, catch, timeouts and the run's log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from engine import FakeClock, InProcessDriver, LogType, Run, RunStatus, StepMessage, ToolContext, ToolRegistry
from engine.attempt import execute_step
from engine.graph import Graph
from engine.model import LogRecord
from engine.step import CompiledGraph
from tests.unit.conftest import Definition, log_types

RunGraph = Callable[..., Run]


def loop_definition(limit: int, max_steps: int = 100) -> Definition:
    """``a`` (adds one to ``i``) -> ``b`` -> ``c``, back to ``a`` while ``i < limit``, else the end."""
    return {
        "name": "loop",
        "start_node": "a",
        "nodes": {"a": "t.inc", "b": "t.mark", "c": "t.noop"},
        "edges": {
            "a": "b",
            "b": "c",
            "c": [{"when": {"key": "i", "op": "<", "value": limit}, "to": "a"}, {"to": "__end__"}],
        },
        "max_steps": max_steps,
    }


def flaky(registry: ToolRegistry, name: str, failures: int, calls: list[ToolContext]) -> None:
    """Register a tool that raises ``ConnectionError`` on its first ``failures`` calls."""

    @registry.tool(name)
    def tool(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        calls.append(ctx)
        if len(calls) <= failures:
            raise ConnectionError(f"flaky call {len(calls)}")
        return {"flaky_ok": len(calls)}


def records_of(driver: InProcessDriver, run: Run, type_: LogType) -> list[LogRecord]:
    return [r for r in driver.service.list_logs(run.run_id) if r.type is type_]


def retry_delays(driver: InProcessDriver, run: Run) -> list[float]:
    return [r.data["delay_seconds"] for r in records_of(driver, run, LogType.RETRY_SCHEDULED) if r.data]


def test_a_loop_ends_when_its_condition_stops_holding(run_graph: RunGraph, driver: InProcessDriver) -> None:
    run = run_graph(loop_definition(3), {"i": 0})
    assert run.status is RunStatus.SUCCEEDED
    assert run.state["i"] == 3
    assert run.state["marks"] == ["b", "b", "b"]
    assert run.step == 9
    assert run.current_node == "c"
    assert run.error is None
    assert run.finished_at is not None
    edges = records_of(driver, run, LogType.EDGE_TAKEN)
    assert [e.data["to"] for e in edges if e.data] == ["b", "c", "a"] * 2 + ["b", "c"]
    assert "c -> a (i=1 < 3 is true)" in edges[2].message
    assert edges[2].data is not None and edges[2].data["keys"] == ["i"]
    final = records_of(driver, run, LogType.RUN_SUCCEEDED)
    assert len(final) == 1
    assert final[0].node == "c"


def test_max_steps_ends_a_runaway_loop_naming_the_node(run_graph: RunGraph, driver: InProcessDriver) -> None:
    run = run_graph(loop_definition(1_000, max_steps=5), {"i": 0})
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.type == "MaxStepsExceeded"
    assert run.error.node == "b"
    assert "max_steps=5" in run.error.message
    assert "'c'" in run.error.message
    assert len(records_of(driver, run, LogType.STEP_SUCCEEDED)) == 5
    assert run.state["i"] == 2
    assert run.state["marks"] == ["b", "b"], "the last step's updates are kept"
    failed = records_of(driver, run, LogType.RUN_FAILED)
    assert len(failed) == 1
    assert failed[0].message.startswith("MaxStepsExceeded: ")
    assert failed[0].node == "b"


def test_exactly_max_steps_steps_may_run(run_graph: RunGraph) -> None:
    run = run_graph(loop_definition(2, max_steps=6), {"i": 0})
    assert run.status is RunStatus.SUCCEEDED
    assert run.step == 6


def test_retries_wait_interval_times_backoff_to_the_power_of_the_attempt(
    registry: ToolRegistry, run_graph: RunGraph, driver: InProcessDriver, clock: FakeClock
) -> None:
    calls: list[ToolContext] = []
    flaky(registry, "t.flaky", 3, calls)
    started = clock()
    run = run_graph(
        {
            "start_node": "a",
            "nodes": {
                "a": {
                    "tool": "t.flaky",
                    "retry": {"max_attempts": 4, "interval_seconds": 1.5, "backoff_rate": 2},
                }
            },
        }
    )
    assert run.status is RunStatus.SUCCEEDED
    assert run.state == {"flaky_ok": 4}
    assert retry_delays(driver, run) == [1.5, 3.0, 6.0]
    assert clock() - started == pytest.approx(10.5), "each retry waited out its delay"
    assert [c.attempt for c in calls] == [1, 2, 3, 4]
    assert {c.step for c in calls} == {0}
    scheduled = records_of(driver, run, LogType.RETRY_SCHEDULED)
    assert [r.attempt for r in scheduled] == [2, 3, 4]
    assert "attempt 2 of 4 in 1.5s" in scheduled[0].message
    failures = records_of(driver, run, LogType.STEP_FAILED)
    assert [f.message for f in failures] == [
        f"a attempt {n} failed: ConnectionError: flaky call {n}" for n in (1, 2, 3)
    ]


def test_retry_delays_are_capped_by_max_delay(
    registry: ToolRegistry, run_graph: RunGraph, driver: InProcessDriver
) -> None:
    flaky(registry, "t.flaky", 4, [])
    retry = {"max_attempts": 5, "interval_seconds": 1, "backoff_rate": 3, "max_delay_seconds": 5}
    run = run_graph({"start_node": "a", "nodes": {"a": {"tool": "t.flaky", "retry": retry}}})
    assert run.status is RunStatus.SUCCEEDED
    assert retry_delays(driver, run) == [1, 3, 5, 5]


def test_full_jitter_draws_each_delay_between_zero_and_the_backoff(
    registry: ToolRegistry,
    run_graph: RunGraph,
    driver: InProcessDriver,
    rng_values: list[float],
    clock: FakeClock,
) -> None:
    flaky(registry, "t.flaky", 3, [])
    rng_values.extend([0.5, 0.25, 0.1])
    retry = {
        "max_attempts": 4,
        "interval_seconds": 2,
        "backoff_rate": 2,
        "max_delay_seconds": 6,
        "jitter": "full",
    }
    started = clock()
    run = run_graph({"start_node": "a", "nodes": {"a": {"tool": "t.flaky", "retry": retry}}})
    assert run.status is RunStatus.SUCCEEDED
    assert retry_delays(driver, run) == pytest.approx([2 * 0.5, 4 * 0.25, 6 * 0.1])
    assert clock() - started == pytest.approx(2.6)


def test_after_the_last_retry_the_catch_node_runs_with_the_error_in_state(
    registry: ToolRegistry, run_graph: RunGraph, driver: InProcessDriver
) -> None:
    calls: list[ToolContext] = []
    flaky(registry, "t.flaky", 10, calls)
    seen: list[dict[str, Any]] = []

    @registry.tool("t.rescue")
    def rescue(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        seen.append(dict(state))
        return {"rescued": True}

    run = run_graph(
        {
            "start_node": "a",
            "nodes": {
                "a": {
                    "tool": "t.flaky",
                    "retry": {"max_attempts": 2, "interval_seconds": 0},
                    "catch": "rescue",
                },
                "next": "t.noop",
                "rescue": "t.rescue",
            },
            "edges": {"a": "next"},
        },
        {"keep": 1},
    )
    assert run.status is RunStatus.SUCCEEDED
    assert len(calls) == 2
    error = {"type": "ConnectionError", "message": "flaky call 2", "node": "a"}
    assert seen == [{"keep": 1, "error": error}]
    assert run.state == {"keep": 1, "error": error, "rescued": True}
    assert run.current_node == "rescue"
    assert log_types(driver, run.run_id) == [
        "run_started",
        "step_started",
        "step_failed",
        "retry_scheduled",
        "step_started",
        "step_failed",
        "edge_taken",
        "step_started",
        "step_succeeded",
        "run_succeeded",
    ]
    catch = records_of(driver, run, LogType.EDGE_TAKEN)[0]
    assert catch.data == {"to": "rescue", "catch": True}
    assert "catch after 2 attempt(s)" in catch.message


def test_failure_without_catch_fails_the_run_with_type_message_and_node(
    registry: ToolRegistry, run_graph: RunGraph, driver: InProcessDriver
) -> None:
    flaky(registry, "t.flaky", 10, [])
    run = run_graph(
        {
            "start_node": "first",
            "nodes": {
                "first": "t.inc",
                "second": {"tool": "t.flaky", "retry": {"max_attempts": 3, "interval_seconds": 0}},
            },
            "edges": {"first": "second"},
        }
    )
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert (run.error.type, run.error.message, run.error.node) == (
        "ConnectionError",
        "flaky call 3",
        "second",
    )
    assert run.state == {"i": 1}
    assert run.step == 1
    assert run.attempt == 3
    failed = records_of(driver, run, LogType.RUN_FAILED)
    assert len(failed) == 1
    assert failed[0].message == "ConnectionError: flaky call 3"
    assert failed[0].data == {
        "error": {"type": "ConnectionError", "message": "flaky call 3", "node": "second"}
    }
    assert len(records_of(driver, run, LogType.STEP_FAILED)) == 3


def test_an_exception_without_a_message_is_named_by_its_type(
    registry: ToolRegistry, run_graph: RunGraph
) -> None:
    @registry.tool("t.bare")
    def bare(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise KeyError

    run = run_graph({"start_node": "a", "nodes": {"a": "t.bare"}})
    assert run.error is not None
    assert (run.error.type, run.error.message) == ("KeyError", "KeyError")


def test_async_and_sync_tools_mix_in_one_graph(registry: ToolRegistry, run_graph: RunGraph) -> None:
    @registry.tool("t.async_double")
    async def double(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"i": state["i"] * 2, "trail": [*state.get("trail", []), f"async@{ctx.step}"]}

    @registry.tool("t.sync_add")
    def add(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"i": state["i"] + 1, "trail": [*state.get("trail", []), f"sync@{ctx.step}"]}

    run = run_graph(
        {
            "start_node": "double",
            "nodes": {"double": "t.async_double", "add": "t.sync_add"},
            "edges": {
                "double": "add",
                "add": [{"when": {"key": "i", "op": "<", "value": 20}, "to": "double"}, {"to": "__end__"}],
            },
        },
        {"i": 1},
    )
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.state["i"] == 31
    assert run.state["trail"] == [
        "async@0",
        "sync@1",
        "async@2",
        "sync@3",
        "async@4",
        "sync@5",
        "async@6",
        "sync@7",
    ]


def test_an_async_tool_runs_when_an_event_loop_is_already_running(
    registry: ToolRegistry, driver: InProcessDriver
) -> None:
    @registry.tool("t.async_one")
    async def one(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"one": 1}

    graph_id = driver.service.create_graph({"start_node": "a", "nodes": {"a": "t.async_one"}}).graph_id

    async def caller() -> Run:
        return driver.run(graph_id)

    run = asyncio.run(caller())
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.state == {"one": 1}


def test_a_sync_tool_past_its_timeout_fails_the_attempt(registry: ToolRegistry, run_graph: RunGraph) -> None:
    @registry.tool("t.slow")
    def slow(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        time.sleep(1)
        return {"slow": True}

    run = run_graph({"start_node": "a", "nodes": {"a": {"tool": "t.slow", "timeout_seconds": 0.05}}})
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.type == "ToolTimeoutError"
    assert run.error.node == "a"
    assert "ran longer than 0.05s" in run.error.message
    assert "slow" not in run.state


def test_an_async_tool_past_its_timeout_fails_the_attempt_then_retries(
    registry: ToolRegistry, run_graph: RunGraph, driver: InProcessDriver
) -> None:
    attempts: list[int] = []

    @registry.tool("t.slow_async")
    async def slow(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            await asyncio.sleep(1)
        return {"done": ctx.attempt}

    node = {
        "tool": "t.slow_async",
        "timeout_seconds": 0.05,
        "retry": {"max_attempts": 2, "interval_seconds": 0},
    }
    run = run_graph({"start_node": "a", "nodes": {"a": node}})
    assert run.status is RunStatus.SUCCEEDED
    assert run.state == {"done": 2}
    assert attempts == [1, 2]
    failed = records_of(driver, run, LogType.STEP_FAILED)
    assert len(failed) == 1
    assert "ToolTimeoutError" in failed[0].message


def test_a_tool_within_its_timeout_succeeds(registry: ToolRegistry, run_graph: RunGraph) -> None:
    @registry.tool("t.quick_fail")
    def quick_fail(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise ValueError("bad input")

    ok = run_graph({"start_node": "a", "nodes": {"a": {"tool": "t.inc", "timeout_seconds": 5}}})
    assert ok.status is RunStatus.SUCCEEDED
    assert ok.state == {"i": 1}
    failed = run_graph({"start_node": "a", "nodes": {"a": {"tool": "t.quick_fail", "timeout_seconds": 5}}})
    assert failed.error is not None
    assert (failed.error.type, failed.error.message) == ("ValueError", "bad input")


def test_no_matching_edge_and_no_default_fails_naming_node_and_keys(
    run_graph: RunGraph, driver: InProcessDriver
) -> None:
    run = run_graph(
        {
            "start_node": "a",
            "nodes": {"a": "t.inc", "big": "t.noop", "named": "t.noop"},
            "edges": {
                "a": [
                    {"when": {"key": "i", "op": ">", "value": 10}, "to": "big"},
                    {"when": {"key": "meta.name", "op": "exists"}, "to": "named"},
                ]
            },
        }
    )
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.type == "NoMatchingEdge"
    assert run.error.node == "a"
    assert "no edge from 'a' matched" in run.error.message
    assert "looked at i, meta.name" in run.error.message
    assert "i=1 > 10 is false" in run.error.message
    assert "meta.name is missing" in run.error.message
    assert run.state == {"i": 1}, "the node's own updates are kept"
    assert log_types(driver, run.run_id)[-1] == "run_failed"


def test_the_end_edge_target_ends_the_run(run_graph: RunGraph, driver: InProcessDriver) -> None:
    direct = run_graph({"start_node": "a", "nodes": {"a": "t.inc"}, "edges": {"a": "__end__"}})
    assert direct.status is RunStatus.SUCCEEDED
    assert direct.state == {"i": 1}
    assert direct.step == 1
    by_rule = run_graph(
        {
            "start_node": "a",
            "nodes": {"a": "t.inc", "b": "t.inc"},
            "edges": {"a": [{"when": {"key": "i", "op": "==", "value": 1}, "to": "__end__"}, {"to": "b"}]},
        }
    )
    assert by_rule.status is RunStatus.SUCCEEDED
    assert by_rule.current_node == "a"
    assert by_rule.state == {"i": 1}
    assert log_types(driver, by_rule.run_id) == [
        "run_started",
        "step_started",
        "step_succeeded",
        "run_succeeded",
    ]


def test_a_node_without_edges_ends_the_run(run_graph: RunGraph) -> None:
    run = run_graph({"start_node": "a", "nodes": {"a": "t.inc", "b": "t.inc"}, "edges": {"a": "b"}})
    assert run.status is RunStatus.SUCCEEDED
    assert run.state == {"i": 2}
    assert run.current_node == "b"


def test_the_idempotency_key_is_the_same_for_every_attempt_of_a_step(
    registry: ToolRegistry, run_graph: RunGraph
) -> None:
    calls: list[ToolContext] = []
    flaky(registry, "t.flaky", 2, calls)
    seen: list[ToolContext] = []

    @registry.tool("t.seen")
    def record(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        seen.append(ctx)
        return {}

    run = run_graph(
        {
            "start_node": "first",
            "nodes": {
                "first": "t.seen",
                "second": {"tool": "t.flaky", "retry": {"max_attempts": 3, "interval_seconds": 0}},
            },
            "edges": {"first": "second"},
        }
    )
    assert run.status is RunStatus.SUCCEEDED
    assert [c.idempotency_key for c in calls] == [f"{run.run_id}:1"] * 3
    assert seen[0].idempotency_key == f"{run.run_id}:0"
    assert calls[0].run_id == run.run_id
    assert calls[0].graph_id == run.graph_id
    assert calls[0].node == "second"


@pytest.mark.parametrize(("returned", "kind"), [([1, 2], "list"), ("done", "str"), (42, "int")])
def test_a_tool_returning_a_non_dict_fails_clearly(
    registry: ToolRegistry, run_graph: RunGraph, returned: Any, kind: str
) -> None:
    @registry.tool("t.odd")
    def odd(state: dict[str, Any], ctx: ToolContext) -> Any:
        return returned

    run = run_graph({"start_node": "a", "nodes": {"a": "t.odd"}})
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.type == "TypeError"
    assert run.error.node == "a"
    assert run.error.message == f"tool 't.odd' returned {kind}, expected a dict of state updates"


def test_a_tool_returning_non_string_keys_fails_clearly(registry: ToolRegistry, run_graph: RunGraph) -> None:
    @registry.tool("t.int_keys")
    def int_keys(state: dict[str, Any], ctx: ToolContext) -> Any:
        return {1: "one"}

    run = run_graph({"start_node": "a", "nodes": {"a": "t.int_keys"}})
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.type == "TypeError"
    assert "keys must be strings" in run.error.message


def test_a_tool_returning_none_changes_nothing(registry: ToolRegistry, run_graph: RunGraph) -> None:
    @registry.tool("t.none")
    def none(state: dict[str, Any], ctx: ToolContext) -> None:
        return None

    run = run_graph({"start_node": "a", "nodes": {"a": "t.none"}}, {"x": 1})
    assert run.status is RunStatus.SUCCEEDED
    assert run.state == {"x": 1}


def test_log_records_have_contiguous_seq_from_zero_and_types_in_order(
    run_graph: RunGraph, driver: InProcessDriver
) -> None:
    run = run_graph(loop_definition(2), {"i": 0})
    records = driver.service.list_logs(run.run_id)
    assert [r.seq for r in records] == list(range(len(records)))
    assert run.next_seq == len(records)
    assert all(r.run_id == run.run_id for r in records)
    per_step = ["step_started", "step_succeeded", "edge_taken"]
    assert [str(r.type) for r in records] == [
        "run_started",
        *per_step * 5,
        "step_started",
        "step_succeeded",
        "run_succeeded",
    ]
    assert [r.step for r in records[1:4]] == [0, 0, 0]
    assert [r.node for r in records[1:7]] == ["a", "a", "a", "b", "b", "b"]
    assert records[0].data == {"graph_id": run.graph_id, "graph_version": 1}
    started = records[1]
    assert started.attempt == 1
    assert started.message == "a (t.inc) attempt 1"
    succeeded = records[2]
    assert succeeded.message == "a updated i"
    assert succeeded.duration_ms is not None
    assert succeeded.duration_ms >= 0
    assert [r.ts for r in records] == sorted(r.ts for r in records)


def test_a_run_past_the_graph_timeout_times_out(
    registry: ToolRegistry, run_graph: RunGraph, clock: FakeClock, driver: InProcessDriver
) -> None:
    @registry.tool("t.slow_clock")
    def slow(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        clock.sleep(6)
        return {"i": state.get("i", 0) + 1}

    run = run_graph(
        {
            "start_node": "a",
            "nodes": {"a": "t.slow_clock"},
            "edges": {"a": [{"when": {"key": "i", "op": "<", "value": 10}, "to": "a"}, {"to": "__end__"}]},
            "timeout_seconds": 10,
        }
    )
    assert run.status is RunStatus.TIMED_OUT
    assert run.error is not None
    assert run.error.type == "RunTimedOut"
    assert run.state["i"] == 2
    assert log_types(driver, run.run_id)[-1] == "run_timed_out"


def test_a_tool_cannot_change_the_stored_state_in_place(registry: ToolRegistry, run_graph: RunGraph) -> None:
    @registry.tool("t.vandal")
    def vandal(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        state["rows"].append("vandal")
        state["meta"]["owner"] = "vandal"
        state["top"] = "vandal"
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails after scribbling")
        return {"seen_rows": list(state["rows"])}

    initial = {"rows": ["r1"], "meta": {"owner": "me"}, "top": "me"}
    run = run_graph(
        {
            "start_node": "a",
            "nodes": {"a": {"tool": "t.vandal", "retry": {"max_attempts": 2, "interval_seconds": 0}}},
        },
        initial,
    )
    assert run.status is RunStatus.SUCCEEDED
    assert run.state["seen_rows"] == ["r1", "vandal"], (
        "the retry saw the state as committed, not as scribbled"
    )
    assert run.state["rows"] == ["r1"]
    assert run.state["meta"] == {"owner": "me"}
    assert run.state["top"] == "me"
    assert initial == {"rows": ["r1"], "meta": {"owner": "me"}, "top": "me"}


def test_execute_step_is_pure(registry: ToolRegistry) -> None:
    graph = Graph.model_validate(loop_definition(5))
    compiled = CompiledGraph(graph)
    run = Run(
        run_id="r",
        graph_id="g",
        graph_version=1,
        state={"i": 0},
        current_node="a",
        next_seq=1,
        created_at=0.0,
        updated_at=0.0,
    )
    before = run.model_dump()
    outcome = execute_step(compiled, run, registry, clock=lambda: 5.0)
    assert run.model_dump() == before
    assert outcome.changes.state_updates == {"i": 1}
    assert outcome.changes.step == 1
    assert outcome.changes.current_node == "b"
    assert outcome.changes.status is RunStatus.RUNNING
    assert outcome.changes.next_seq == 4
    assert [r.seq for r in outcome.records] == [1, 2, 3]
    assert all(r.ts == 5.0 for r in outcome.records)
    assert outcome.next_message == StepMessage(run_id="r", step=1)
    again = execute_step(compiled, run, registry, clock=lambda: 5.0)
    assert again.changes == outcome.changes


def test_a_timeout_error_raised_by_an_async_tool_itself_keeps_its_type(
    registry: ToolRegistry, run_graph: RunGraph
) -> None:
    @registry.tool("t.own_timeout")
    async def own_timeout(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise TimeoutError("upstream took too long")

    run = run_graph({"start_node": "a", "nodes": {"a": {"tool": "t.own_timeout", "timeout_seconds": 5}}})
    assert run.error is not None
    assert (run.error.type, run.error.message) == ("TimeoutError", "upstream took too long")


@pytest.mark.parametrize(
    ("value", "where"),
    [({1, 2}, "out is a set"), ({"nested": [1, {"when": time}]}, "out.nested[1].when is a module")],
)
def test_a_tool_returning_values_that_are_not_json_fails_the_attempt(
    registry: ToolRegistry, run_graph: RunGraph, value: Any, where: str
) -> None:
    @registry.tool("t.not_json")
    def not_json(state: dict[str, Any], ctx: ToolContext) -> Any:
        return {"out": value}

    run = run_graph({"start_node": "a", "nodes": {"a": "t.not_json"}})
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.message == f"tool 't.not_json' returned state that is not JSON: {where}"
    assert "out" not in run.state


def test_a_huge_error_message_is_cut_to_a_storable_size(registry: ToolRegistry, run_graph: RunGraph) -> None:
    @registry.tool("t.shouts")
    def shouts(state: dict[str, Any], ctx: ToolContext) -> Any:
        raise ValueError("x" * 1_000_000)

    run = run_graph({"start_node": "a", "nodes": {"a": "t.shouts"}})
    assert run.error is not None
    assert run.error.message.startswith("x" * 2000 + "... (998000 more characters)")
    assert len(run.error.message) < 2100
