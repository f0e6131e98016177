"""Waits, callbacks, long retry delays and redrive through the service, on the in-process driver and a fake clock.

The driver fires the in-memory timers by moving its :class:`FakeClock`, so a
wait of a year takes no real time; what the driver handles while a run waits
is counted.
"""

from __future__ import annotations

import itertools
import time
from http import HTTPStatus
from typing import Any

import pytest

from engine.driver import FakeClock, InProcessDriver
from engine.errors import (
    BadRequestError,
    CallbackExpiredError,
    CallbackNotFoundError,
    CallbackUsedError,
    EngineError,
    PayloadTooLargeError,
    RunNotFoundError,
    RunNotRedrivableError,
    TooDeepError,
)
from engine.limits import MAX_STATE_DEPTH
from engine.model import LogRecord, LogType, Run, RunStatus, StepMessage
from engine.registry import ToolContext, ToolRegistry
from engine.service import MAX_CALLBACK_DATA_BYTES, StepDisposition, WorkflowService
from engine.waits import wake_message
from functions.api.errors import status_for

DAY = 86_400.0


def settle(driver: InProcessDriver) -> int:
    """Handle queued messages (sleeping out short deferrals) without firing a timer; how many were handled."""
    handled = 0
    while (message := driver.queue.pop()) is not None:
        handled += 1
        result = driver.service.run_step(message)
        if result.disposition is StepDisposition.DEFERRED:
            driver.sleep(result.defer_seconds)
            driver.queue.send(message)
    return handled


def logs(service: WorkflowService, run_id: str) -> list[LogRecord]:
    return service.list_logs(run_id, limit=100_000)


def types(service: WorkflowService, run_id: str) -> list[str]:
    return [str(r.type) for r in logs(service, run_id)]


def assert_gap_free(service: WorkflowService, run: Run) -> None:
    records = logs(service, run.run_id)
    assert [r.seq for r in records] == list(range(len(records)))
    assert run.next_seq == len(records)


def tokens(service: WorkflowService, run_id: str) -> list[str]:
    return [r.data["token"] for r in logs(service, run_id) if r.type is LogType.CALLBACK_WAITING and r.data]


def start(driver: InProcessDriver, definition: dict[str, Any], state: dict[str, Any] | None = None) -> Run:
    graph_id = driver.service.create_graph(definition).graph_id
    return driver.service.start_run(graph_id, state)


def status_of(exc: EngineError) -> HTTPStatus | None:
    return status_for(exc)


# waits


def wait_graph(seconds: float) -> dict[str, Any]:
    return {
        "start_node": "a",
        "nodes": {"a": "t.inc", "w": {"wait": {"seconds": seconds}}, "b": "t.inc"},
        "edges": {"a": "w", "w": "b"},
    }


@pytest.mark.parametrize(
    ("seconds", "deferrals"),
    [(1, 1), (20 * 60, 0), (3 * DAY, 0), (365 * DAY, 0)],
    ids=["1s", "20min", "3days", "1year"],
)
def test_a_wait_completes_without_sleeping_and_handles_no_message_while_it_waits(
    driver: InProcessDriver, clock: FakeClock, seconds: float, deferrals: int
) -> None:
    began = clock.now
    wall = time.monotonic()
    run = start(driver, wait_graph(seconds))

    handled = driver.drain()

    run = driver.service.get_run(run.run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert run.state["i"] == 2
    assert run.waiting is None
    assert time.monotonic() - wall < 2.0
    assert seconds <= clock.now - began < seconds + 5
    # a, the wait's start, its wake-up, b; a wait within the queue's delay is one deferral of its wake-up
    assert handled == 4 + deferrals
    assert driver.timers.fired == (0 if deferrals else 1)
    assert len(driver.timers) == 0 and len(driver.queue) == 0
    assert types(driver.service, run.run_id) == [
        "run_started",
        "step_started",
        "step_succeeded",
        "edge_taken",
        "step_started",
        "wait_started",
        "step_succeeded",
        "edge_taken",
        "step_started",
        "step_succeeded",
        "run_succeeded",
    ]
    assert_gap_free(driver.service, run)


def test_a_wait_until_a_time_in_the_state_ends_then(driver: InProcessDriver, clock: FakeClock) -> None:
    definition = {
        "start_node": "w",
        "nodes": {"w": {"wait": {"until_key": "at"}}, "b": "t.inc"},
        "edges": {"w": "b"},
    }
    at = clock.now + 2 * DAY + 0.5
    run = start(driver, definition, {"at": at})

    assert driver.drain() == 3

    assert driver.service.get_run(run.run_id).status is RunStatus.SUCCEEDED
    assert clock.now == at


def test_a_duplicate_of_the_message_that_began_the_wait_schedules_nothing_new(
    driver: InProcessDriver,
) -> None:
    run = start(driver, wait_graph(3 * DAY))
    settle(driver)
    waiting = driver.service.get_run(run.run_id)
    assert waiting.waiting is not None

    again = driver.service.run_step(
        StepMessage(run_id=run.run_id, step=waiting.step, attempt=waiting.attempt)
    )

    assert again.disposition is StepDisposition.WAITING
    assert len(driver.timers) == 1 and len(driver.queue) == 0
    assert driver.drain() == 2
    assert driver.service.get_run(run.run_id).status is RunStatus.SUCCEEDED


def test_cancel_during_a_wait_ends_the_run_at_once_and_nothing_fires(
    driver: InProcessDriver, clock: FakeClock
) -> None:
    run = start(driver, wait_graph(3 * DAY))
    settle(driver)
    assert driver.service.get_run(run.run_id).waiting is not None
    assert len(driver.timers) == 1

    cancelled = driver.service.cancel(run.run_id)

    assert cancelled.status is RunStatus.CANCELLED
    assert cancelled.waiting is None
    assert len(driver.timers) == 0
    before = clock.now
    assert driver.drain() == 0
    assert driver.timers.fired == 0
    assert clock.now == before
    assert types(driver.service, run.run_id)[-1] == "run_cancelled"
    assert driver.service.get_run(run.run_id).state["i"] == 1


def test_cancel_during_a_short_wait_leaves_its_wake_up_nothing_to_do(driver: InProcessDriver) -> None:
    run = start(driver, wait_graph(60))
    handled = 0
    while driver.service.get_run(run.run_id).waiting is None:
        message = driver.queue.pop()
        assert message is not None
        driver.service.run_step(message)
        handled += 1

    driver.service.cancel(run.run_id)

    assert driver.drain() == 1, "the wake-up in the queue is handled once"
    run = driver.service.get_run(run.run_id)
    assert run.status is RunStatus.CANCELLED
    assert types(driver.service, run.run_id)[-1] == "run_cancelled"


# long retry delays


def test_a_retry_delay_of_days_goes_through_the_timers_not_the_queue(clock: FakeClock) -> None:
    registry = ToolRegistry()
    attempts: list[int] = []

    @registry.tool("t.flaky")
    def flaky(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("not yet")
        return {"ok": ctx.attempt}

    driver = InProcessDriver(registry, clock=clock, sleep=clock.sleep)
    definition = {
        "start_node": "f",
        "nodes": {
            "f": {"tool": "t.flaky", "retry": {"max_attempts": 3, "interval_seconds": DAY, "backoff_rate": 3}}
        },
    }
    began = clock.now
    run = start(driver, definition)

    handled = driver.drain()

    run = driver.service.get_run(run.run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert run.state["ok"] == 3
    assert attempts == [1, 2, 3]
    assert handled == 3, "each attempt is one delivery; no deferral while the delay runs"
    assert driver.timers.fired == 2
    assert clock.now - began == pytest.approx(4 * DAY)
    delays = [
        r.data["delay_seconds"]
        for r in logs(driver.service, run.run_id)
        if r.type == "retry_scheduled" and r.data
    ]
    assert delays == [DAY, 3 * DAY]


def test_a_wake_up_that_comes_early_is_handed_back_to_the_timers(
    driver: InProcessDriver, clock: FakeClock
) -> None:
    run = start(driver, wait_graph(3 * DAY))
    settle(driver)
    waiting = driver.service.get_run(run.run_id)
    assert waiting.waiting is not None

    early = driver.service.run_step(wake_message(run.run_id, waiting.waiting))

    assert early.disposition is StepDisposition.SCHEDULED
    assert len(driver.timers) == 1 and len(driver.queue) == 0


# callbacks

REVIEW = {
    "start_node": "review",
    "nodes": {
        "review": "t.mark",
        "approval": {"callback": {"timeout_seconds": DAY, "catch": "expired"}, "catch": "denied"},
        "publish": "t.mark",
        "expired": "t.mark",
        "denied": "t.mark",
    },
    "edges": {"review": "approval", "approval": "publish"},
}


def review(
    *, catch: bool = True, timeout_catch: bool = True, retry: dict[str, Any] | None = None
) -> dict[str, Any]:
    node: dict[str, Any] = {"callback": {"timeout_seconds": DAY}}
    if timeout_catch:
        node["callback"]["catch"] = "expired"
    if catch:
        node["catch"] = "denied"
    if retry:
        node["retry"] = retry
    nodes = {**REVIEW["nodes"], "approval": node}
    if not timeout_catch:
        del nodes["expired"]
    if not catch:
        del nodes["denied"]
    return {**REVIEW, "nodes": nodes}


def waiting_run(driver: InProcessDriver, definition: dict[str, Any]) -> tuple[Run, str]:
    run = start(driver, definition)
    settle(driver)
    run = driver.service.get_run(run.run_id)
    assert run.waiting is not None and run.waiting.kind == "callback"
    (token,) = tokens(driver.service, run.run_id)
    return run, token


def test_an_approved_callback_merges_its_data_and_the_run_goes_on(
    driver: InProcessDriver, clock: FakeClock
) -> None:
    run, token = waiting_run(driver, REVIEW)
    assert token.startswith(f"{run.run_id}.{run.step}.{run.attempt}.")
    assert len(driver.timers) == 1
    clock.sleep(3600)

    resumed = driver.service.resolve_callback(token, data={"note": "fine"}, decision="approve")

    assert resumed.waiting is None
    assert len(driver.timers) == 0, "the time-out was cancelled"
    assert driver.drain() == 1
    run = driver.service.get_run(run.run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert run.state["marks"] == ["review", "publish"]
    assert (run.state["note"], run.state["decision"]) == ("fine", "approve")
    assert driver.timers.fired == 0
    received = [r for r in logs(driver.service, run.run_id) if r.type == "callback_received"]
    assert len(received) == 1 and received[0].data is not None
    assert received[0].data["approved"] is True
    assert_gap_free(driver.service, run)


def test_a_callback_token_is_used_once(driver: InProcessDriver) -> None:
    run, token = waiting_run(driver, REVIEW)
    driver.service.resolve_callback(token, data={"n": 1})

    for approved in (True, False):
        with pytest.raises(CallbackUsedError) as used:
            driver.service.resolve_callback(token, approved=approved, data={"n": 2})
        assert status_of(used.value) is HTTPStatus.CONFLICT

    driver.drain()
    run = driver.service.get_run(run.run_id)
    assert run.state["n"] == 1
    assert types(driver.service, run.run_id).count("callback_received") == 1
    with pytest.raises(CallbackUsedError):
        driver.service.resolve_callback(token)


def test_a_rejected_callback_takes_the_nodes_catch(driver: InProcessDriver) -> None:
    run, token = waiting_run(driver, review(catch=True))

    driver.service.resolve_callback(token, approved=False, reason="not good enough")
    driver.drain()

    run = driver.service.get_run(run.run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert run.state["marks"] == ["review", "denied"]
    assert run.state["error"]["type"] == "CallbackRejected"
    assert run.state["error"]["message"] == "not good enough"
    assert len(driver.timers) == 0 and driver.timers.fired == 0
    with pytest.raises(CallbackUsedError):
        driver.service.resolve_callback(token)


def test_a_rejected_callback_without_a_catch_fails_the_run(driver: InProcessDriver) -> None:
    run, token = waiting_run(driver, review(catch=False))

    driver.service.resolve_callback(token, approved=False, reason="no")
    driver.drain()

    run = driver.service.get_run(run.run_id)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert (run.error.type, run.error.node, run.error.message) == ("CallbackRejected", "approval", "no")
    assert len(driver.timers) == 0


def test_a_rejected_callback_with_retry_issues_a_new_token(driver: InProcessDriver) -> None:
    run, first = waiting_run(driver, review(catch=False, retry={"max_attempts": 2, "interval_seconds": 5}))

    driver.service.resolve_callback(first, approved=False, reason="try again")
    settle(driver)

    run = driver.service.get_run(run.run_id)
    assert run.waiting is not None and run.waiting.position == (run.step, 2)
    issued = tokens(driver.service, run.run_id)
    assert len(issued) == 2 and issued[0] == first
    second = issued[1]
    assert second != first and second.startswith(f"{run.run_id}.{run.step}.2.")
    assert len(driver.timers) == 1
    with pytest.raises(CallbackUsedError):
        driver.service.resolve_callback(first)

    driver.service.resolve_callback(second, data={"second": True})
    driver.drain()

    run = driver.service.get_run(run.run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert run.state["second"] is True
    assert run.state["marks"] == ["review", "publish"]
    assert_gap_free(driver.service, run)


def test_a_callback_that_times_out_takes_its_timeout_catch(driver: InProcessDriver, clock: FakeClock) -> None:
    began = clock.now
    run, token = waiting_run(driver, review(catch=True, timeout_catch=True))

    assert driver.drain() == 2, "the time-out's wake-up, then expired"

    run = driver.service.get_run(run.run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert run.state["marks"] == ["review", "expired"]
    assert run.state["error"]["type"] == "CallbackTimedOut"
    assert driver.timers.fired == 1
    assert clock.now - began == pytest.approx(DAY)
    with pytest.raises(CallbackExpiredError) as expired:
        driver.service.resolve_callback(token)
    assert status_of(expired.value) is HTTPStatus.GONE


def test_a_callback_that_times_out_without_a_catch_fails_the_run(driver: InProcessDriver) -> None:
    run, token = waiting_run(driver, review(catch=True, timeout_catch=False))

    driver.drain()

    run = driver.service.get_run(run.run_id)
    assert run.status is RunStatus.FAILED
    assert run.error is not None and run.error.type == "CallbackTimedOut"
    assert run.state["marks"] == ["review"], "a time-out is not caught by the node's catch"
    with pytest.raises(CallbackExpiredError):
        driver.service.resolve_callback(token, data={"late": 1})


def test_a_callback_used_after_its_time_out_but_before_its_timer_is_expired(
    driver: InProcessDriver, clock: FakeClock
) -> None:
    run, token = waiting_run(driver, REVIEW)
    clock.sleep(DAY)

    with pytest.raises(CallbackExpiredError):
        driver.service.resolve_callback(token, data={"late": 1})

    assert driver.service.get_run(run.run_id).waiting is not None
    driver.drain()
    run = driver.service.get_run(run.run_id)
    assert run.state["marks"] == ["review", "expired"]
    assert "late" not in run.state


def test_a_callback_of_a_cancelled_run_is_used_up(driver: InProcessDriver) -> None:
    run, token = waiting_run(driver, REVIEW)

    driver.service.cancel(run.run_id)

    assert len(driver.timers) == 0
    with pytest.raises(CallbackUsedError):
        driver.service.resolve_callback(token)


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "",
        "a.b.c.d",
        "{run}.{step}.{attempt}",
        "{run}.{step}.{attempt}." + "x" * 43,
        "{run}.{step}.9." + "x" * 43,
        "nosuchrun.1.1." + "x" * 43,
    ],
    ids=["word", "empty", "non-numeric", "no-secret", "wrong-secret", "wrong-attempt", "unknown-run"],
)
def test_an_unknown_or_malformed_token_is_not_found(driver: InProcessDriver, bad: str) -> None:
    run, token = waiting_run(driver, REVIEW)
    bad = bad.format(run=run.run_id, step=run.step, attempt=run.attempt)

    with pytest.raises(CallbackNotFoundError) as missing:
        driver.service.resolve_callback(bad)

    assert status_of(missing.value) is HTTPStatus.NOT_FOUND
    assert driver.service.get_run(run.run_id).waiting is not None
    driver.service.resolve_callback(token)


def test_the_token_of_another_position_is_not_found(driver: InProcessDriver) -> None:
    _, token = waiting_run(driver, REVIEW)
    run_id, step, attempt, secret = token.split(".")

    with pytest.raises(CallbackNotFoundError):
        driver.service.resolve_callback(f"{run_id}.{int(step) + 1}.{attempt}.{secret}")


@pytest.mark.parametrize(
    "data",
    [[1, 2], "text", 3, {"when": {1, 2}}, {"x": object()}],
    ids=["list", "string", "number", "set", "object"],
)
def test_callback_data_must_be_a_json_object(driver: InProcessDriver, data: Any) -> None:
    run, token = waiting_run(driver, REVIEW)

    with pytest.raises(BadRequestError) as bad:
        driver.service.resolve_callback(token, data=data)

    assert status_of(bad.value) is HTTPStatus.BAD_REQUEST
    assert driver.service.get_run(run.run_id).waiting is not None, "the token is still good"
    driver.service.resolve_callback(token, data={"ok": True})


def test_callback_data_too_big_is_refused_and_the_token_still_good(driver: InProcessDriver) -> None:
    run, token = waiting_run(driver, REVIEW)

    with pytest.raises(PayloadTooLargeError) as big:
        driver.service.resolve_callback(token, data={"blob": "x" * MAX_CALLBACK_DATA_BYTES})

    assert status_of(big.value) is HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    driver.service.resolve_callback(token, data={"blob": "x" * (MAX_CALLBACK_DATA_BYTES - 100)})
    driver.drain()
    assert driver.service.get_run(run.run_id).status is RunStatus.SUCCEEDED


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("body", "error", "status"),
    [
        ({"decision": {1, 2}}, BadRequestError, HTTPStatus.BAD_REQUEST),
        ({"data": {"decision": {1, 2}}}, BadRequestError, HTTPStatus.BAD_REQUEST),
        ({"data": {"deep": nested(MAX_STATE_DEPTH)}}, TooDeepError, HTTPStatus.BAD_REQUEST),
        (
            {"decision": "x" * MAX_CALLBACK_DATA_BYTES},
            PayloadTooLargeError,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        ),
        (
            {
                "data": {"a": "x" * (MAX_CALLBACK_DATA_BYTES // 2)},
                "decision": "y" * (MAX_CALLBACK_DATA_BYTES // 2),
            },
            PayloadTooLargeError,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        ),
    ],
    ids=[
        "decision-not-json",
        "data-decision-not-json",
        "data-too-deep",
        "decision-too-big",
        "together-too-big",
    ],
)
def test_a_callback_body_the_state_cannot_take_is_refused_before_the_token_is_used(
    driver: InProcessDriver, body: dict[str, Any], error: type[EngineError], status: HTTPStatus
) -> None:
    run, token = waiting_run(driver, REVIEW)

    with pytest.raises(error) as refused:
        driver.service.resolve_callback(token, **body)

    assert status_of(refused.value) is status
    assert driver.service.get_run(run.run_id).waiting is not None
    assert types(driver.service, run.run_id).count("callback_received") == 0
    driver.service.resolve_callback(token, data={"deep": nested(MAX_STATE_DEPTH - 1)}, decision="ok")
    driver.drain()
    done = driver.service.get_run(run.run_id)
    assert done.state["marks"] == ["review", "publish"]
    assert done.state["decision"] == "ok"


# redrive


def flag_registry() -> tuple[ToolRegistry, dict[str, bool]]:
    registry = ToolRegistry()
    flags = {"broken": True}

    @registry.tool("t.inc")
    def inc(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"i": state.get("i", 0) + 1, f"{ctx.node}_attempt": ctx.attempt}

    @registry.tool("t.fragile")
    def fragile(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        if flags["broken"]:
            raise RuntimeError("the service it calls is down")
        return {"fragile": ctx.attempt}

    return registry, flags


FRAGILE = {
    "start_node": "a",
    "nodes": {"a": "t.inc", "f": "t.fragile", "b": "t.inc"},
    "edges": {"a": "f", "f": "b"},
}


@pytest.fixture
def fragile(clock: FakeClock) -> tuple[InProcessDriver, dict[str, bool]]:
    registry, flags = flag_registry()
    return InProcessDriver(registry, clock=clock, sleep=clock.sleep), flags


def test_a_redrive_resumes_a_failed_run_at_the_node_that_failed_with_its_state(
    fragile: tuple[InProcessDriver, dict[str, bool]],
) -> None:
    driver, flags = fragile
    run = start(driver, FRAGILE)
    driver.drain()
    failed = driver.service.get_run(run.run_id)
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None and failed.error.node == "f"
    before = len(logs(driver.service, run.run_id))
    flags["broken"] = False

    redriven = driver.service.redrive(run.run_id)

    assert redriven.run_id == run.run_id
    assert (redriven.status, redriven.current_node, redriven.position) == (RunStatus.RUNNING, "f", (1, 2))
    assert redriven.error is None and redriven.finished_at is None
    assert driver.drain() == 2
    done = driver.service.get_run(run.run_id)
    assert done.status is RunStatus.SUCCEEDED
    assert (done.state["i"], done.state["a_attempt"], done.state["fragile"]) == (2, 1, 2)
    records = logs(driver.service, run.run_id)
    assert [str(r.type) for r in records[before - 1 : before + 2]] == [
        "run_failed",
        "run_redriven",
        "step_started",
    ]
    assert records[before].data is not None and records[before].data["from_status"] == "FAILED"
    assert types(driver.service, run.run_id).count("run_started") == 1
    assert_gap_free(driver.service, done)


def test_a_run_can_be_redriven_again_after_it_fails_again(
    fragile: tuple[InProcessDriver, dict[str, bool]],
) -> None:
    driver, flags = fragile
    run = start(driver, FRAGILE)
    driver.drain()
    driver.service.redrive(run.run_id)
    driver.drain()
    assert driver.service.get_run(run.run_id).status is RunStatus.FAILED
    flags["broken"] = False

    driver.service.redrive(run.run_id)
    driver.drain()

    done = driver.service.get_run(run.run_id)
    assert done.status is RunStatus.SUCCEEDED
    assert done.state["fragile"] == 3
    assert types(driver.service, run.run_id).count("run_redriven") == 2
    assert_gap_free(driver.service, done)


def test_a_timed_out_run_is_redriven_and_its_deadline_counts_from_the_redrive(clock: FakeClock) -> None:
    registry = ToolRegistry()

    @registry.tool("t.slow")
    def slow(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        clock.sleep(60)
        return {"done": [*state.get("done", []), ctx.node]}

    driver = InProcessDriver(registry, clock=clock, sleep=clock.sleep)
    names = ["a", "b", "c", "d", "e"]
    definition = {
        "start_node": "a",
        "timeout_seconds": 100,
        "nodes": {n: "t.slow" for n in names},
        "edges": dict(itertools.pairwise(names)),
    }
    run = start(driver, definition)
    driver.drain()
    timed_out = driver.service.get_run(run.run_id)
    assert timed_out.status is RunStatus.TIMED_OUT
    assert timed_out.current_node == "c" and timed_out.state["done"] == ["a", "b"]

    redriven = driver.service.redrive(run.run_id)
    driver.drain()

    assert redriven.redriven_at == timed_out.finished_at
    again = driver.service.get_run(run.run_id)
    assert again.status is RunStatus.TIMED_OUT, "100 s from the redrive pass at e"
    assert again.current_node == "e"
    assert again.state["done"] == ["a", "b", "c", "d"]
    assert types(driver.service, run.run_id).count("run_timed_out") == 2
    assert_gap_free(driver.service, again)


def test_a_run_failed_by_the_dead_letter_queue_is_redriven(driver: InProcessDriver) -> None:
    run = start(driver, wait_graph(60))
    message = driver.queue.pop()
    assert message is not None

    dead = driver.service.dead_letter(message, receives=5)

    assert dead.run is not None and dead.run.status is RunStatus.FAILED
    assert dead.error is not None and dead.error.type == "StepDeliveryFailed"
    redriven = driver.service.redrive(run.run_id)
    assert (redriven.current_node, redriven.position) == ("a", (0, 2))
    driver.drain()
    done = driver.service.get_run(run.run_id)
    assert done.status is RunStatus.SUCCEEDED
    assert done.state["i"] == 2
    assert_gap_free(driver.service, done)


def test_a_redriven_callback_node_issues_a_new_token(driver: InProcessDriver) -> None:
    run, first = waiting_run(driver, review(catch=False, timeout_catch=False))
    driver.drain()
    assert driver.service.get_run(run.run_id).status is RunStatus.FAILED

    driver.service.redrive(run.run_id)
    settle(driver)

    issued = tokens(driver.service, run.run_id)
    assert len(issued) == 2 and issued[0] == first
    with pytest.raises(CallbackExpiredError):
        driver.service.resolve_callback(first)
    driver.service.resolve_callback(issued[1])
    driver.drain()
    assert driver.service.get_run(run.run_id).status is RunStatus.SUCCEEDED


def test_a_succeeded_or_running_run_is_not_redriven(driver: InProcessDriver) -> None:
    run = start(driver, wait_graph(3 * DAY))
    settle(driver)

    with pytest.raises(RunNotRedrivableError) as running:
        driver.service.redrive(run.run_id)
    assert status_of(running.value) is HTTPStatus.CONFLICT

    driver.drain()
    assert driver.service.get_run(run.run_id).status is RunStatus.SUCCEEDED
    with pytest.raises(RunNotRedrivableError):
        driver.service.redrive(run.run_id)


def test_a_cancelled_run_is_not_redriven(driver: InProcessDriver) -> None:
    run = start(driver, wait_graph(3 * DAY))
    driver.service.cancel(run.run_id)

    with pytest.raises(RunNotRedrivableError):
        driver.service.redrive(run.run_id)


def test_another_owners_run_is_not_found_for_a_redrive(
    fragile: tuple[InProcessDriver, dict[str, bool]],
) -> None:
    driver, _ = fragile
    run = start(driver, FRAGILE)
    driver.drain()

    with pytest.raises(RunNotFoundError) as missing:
        driver.service.redrive(run.run_id, owner="mallory")

    assert status_of(missing.value) is HTTPStatus.NOT_FOUND
    assert driver.service.get_run(run.run_id).status is RunStatus.FAILED
    with pytest.raises(RunNotFoundError):
        driver.service.redrive("no-such-run")


# a caller whose first call died after its commit


class SendFails(Exception):
    pass


def failing_once(driver: InProcessDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue's next send fails, as when the process dies between the commit and the send."""
    send = driver.queue.send

    def fail(message: StepMessage) -> None:
        monkeypatch.setattr(driver.queue, "send", send)
        raise SendFails("the process died before sending")

    monkeypatch.setattr(driver.queue, "send", fail)


def test_an_approval_that_died_before_sending_keeps_its_wake_up_and_a_second_call_resumes_the_run(
    driver: InProcessDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, token = waiting_run(driver, REVIEW)
    failing_once(driver, monkeypatch)

    with pytest.raises(SendFails):
        driver.service.resolve_callback(token, data={"ok": 1})

    moved = driver.service.get_run(run.run_id)
    assert moved.waiting is None and moved.current_node == "publish"
    assert len(driver.queue) == 0
    assert len(driver.timers) == 1, "the time-out is kept until the next message is sent"
    with pytest.raises(CallbackUsedError):
        driver.service.resolve_callback(token, data={"ok": 2})
    assert len(driver.queue) == 1, "the second call re-sent the run's message"
    driver.drain()
    done = driver.service.get_run(run.run_id)
    assert done.status is RunStatus.SUCCEEDED
    assert done.state["ok"] == 1
    assert done.state["marks"] == ["review", "publish"]


def test_an_approval_that_died_before_sending_resumes_at_its_time_out_if_nobody_calls_again(
    driver: InProcessDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, token = waiting_run(driver, REVIEW)
    failing_once(driver, monkeypatch)
    with pytest.raises(SendFails):
        driver.service.resolve_callback(token)

    driver.drain()

    done = driver.service.get_run(run.run_id)
    assert done.status is RunStatus.SUCCEEDED
    assert done.state["marks"] == ["review", "publish"], "the late wake-up re-sent the run's message"
    assert driver.timers.fired == 1


def test_a_redrive_that_died_before_sending_is_resumed_by_a_second_call(
    fragile: tuple[InProcessDriver, dict[str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    driver, flags = fragile
    run = start(driver, FRAGILE)
    driver.drain()
    flags["broken"] = False
    failing_once(driver, monkeypatch)

    with pytest.raises(SendFails):
        driver.service.redrive(run.run_id)

    assert driver.service.get_run(run.run_id).status is RunStatus.RUNNING
    assert len(driver.queue) == 0
    with pytest.raises(RunNotRedrivableError):
        driver.service.redrive(run.run_id)
    assert len(driver.queue) == 1
    message = driver.queue.pop()
    assert message is not None
    driver.service.run_step(message)
    sent = driver.queue.sent
    with pytest.raises(RunNotRedrivableError):
        driver.service.redrive(run.run_id)
    assert driver.queue.sent == sent, "a run that moved on since its redrive is not sent again"
    driver.drain()
    done = driver.service.get_run(run.run_id)
    assert done.status is RunStatus.SUCCEEDED
    assert types(driver.service, run.run_id).count("run_redriven") == 1
    assert_gap_free(driver.service, done)


# the graph's timeout_seconds during a wait


def test_a_run_times_out_during_a_wait_at_its_deadline_and_a_redrive_waits_again(
    driver: InProcessDriver, clock: FakeClock
) -> None:
    began = clock.now
    run = start(driver, {**wait_graph(DAY), "timeout_seconds": 600})

    driver.drain()

    timed_out = driver.service.get_run(run.run_id)
    assert timed_out.status is RunStatus.TIMED_OUT
    assert timed_out.error is not None and timed_out.error.node == "w"
    assert clock.now - began == pytest.approx(600)
    assert len(driver.timers) == 0 and len(driver.queue) == 0

    driver.service.redrive(run.run_id)
    driver.drain()

    again = driver.service.get_run(run.run_id)
    assert again.status is RunStatus.TIMED_OUT
    assert clock.now - began == pytest.approx(1200), "the deadline counts from the redrive"
    assert types(driver.service, run.run_id).count("wait_started") == 2


def test_a_callback_expires_at_the_runs_deadline(driver: InProcessDriver, clock: FakeClock) -> None:
    run, token = waiting_run(driver, {**REVIEW, "timeout_seconds": 3600})
    assert run.waiting is not None
    assert run.waiting.until == run.created_at + 3600

    clock.sleep(3600)
    with pytest.raises(CallbackExpiredError):
        driver.service.resolve_callback(token)
    driver.drain()

    done = driver.service.get_run(run.run_id)
    assert done.status is RunStatus.TIMED_OUT
    assert done.state["marks"] == ["review"], "a time-out of the run takes no catch"
    with pytest.raises(CallbackExpiredError):
        driver.service.resolve_callback(token)
