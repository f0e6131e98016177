"""The service's use cases on in-memory adapters: delivery, staleness, cancel, inline runs, versions."""

from __future__ import annotations

from typing import Any

import pytest

from engine import (
    FakeClock,
    InProcessDriver,
    Run,
    RunStatus,
    StepDisposition,
    StepMessage,
    ToolContext,
    ToolRegistry,
    WorkflowService,
)
from engine.errors import (
    BadRequestError,
    GraphNotFoundError,
    InvalidGraphError,
    RunFinishedError,
    RunNotFoundError,
)
from engine.model import RunError
from tests.unit.conftest import Definition, log_types

CHAIN: Definition = {
    "name": "chain",
    "start_node": "a",
    "nodes": {"a": "t.inc", "b": "t.mark", "c": "t.inc"},
    "edges": {"a": "b", "b": "c"},
}


def counting(registry: ToolRegistry, name: str, calls: list[tuple[str, int, int]]) -> None:
    """Register a tool that records each call's (node, step, attempt) and adds one to ``n``."""

    @registry.tool(name)
    def tool(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        calls.append((ctx.node, ctx.step, ctx.attempt))
        return {"n": state.get("n", 0) + 1}


def next_message(driver: InProcessDriver) -> StepMessage:
    message = driver.queue.pop()
    assert message is not None
    return message


def test_duplicate_delivery_commits_once_and_ends_in_the_same_state(
    registry: ToolRegistry, driver: InProcessDriver
) -> None:
    calls: list[tuple[str, int, int]] = []
    counting(registry, "t.count", calls)
    definition: Definition = {
        "start_node": "a",
        "nodes": {"a": "t.count", "b": "t.count", "c": "t.count"},
        "edges": {"a": "b", "b": "c"},
    }
    service = driver.service
    graph_id = service.create_graph(definition).graph_id
    reference = driver.run(graph_id, {"n": 0})
    calls.clear()

    run = service.start_run(graph_id, {"n": 0})
    while (message := driver.queue.pop()) is not None:
        first = service.run_step(message)
        assert first.disposition is StepDisposition.COMMITTED
        second = service.run_step(message)
        assert second.disposition in (StepDisposition.STALE, StepDisposition.FINISHED)
        assert second.run.position == first.run.position
    final = service.get_run(run.run_id)
    assert final.status is RunStatus.SUCCEEDED
    assert final.state == reference.state == {"n": 3}
    assert calls == [("a", 0, 1), ("b", 1, 1), ("c", 2, 1)]
    assert log_types(driver, run.run_id) == log_types(driver, reference.run_id)


def test_a_duplicate_racing_the_first_loses_and_commits_nothing(
    registry: ToolRegistry, driver: InProcessDriver
) -> None:
    service = driver.service
    results: list[StepDisposition] = []
    calls: list[int] = []

    @registry.tool("t.racy")
    def racy(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        calls.append(ctx.step)
        if len(calls) == 1:
            results.append(service.run_step(StepMessage(run_id=ctx.run_id, step=ctx.step)).disposition)
        return {"n": state.get("n", 0) + 1}

    graph_id = service.create_graph({"start_node": "a", "nodes": {"a": "t.racy"}}).graph_id
    run = service.start_run(graph_id, {"n": 0})
    outer = service.run_step(next_message(driver))
    assert results == [StepDisposition.COMMITTED], "the copy delivered meanwhile committed first"
    assert outer.disposition is StepDisposition.LOST_RACE
    assert outer.records == ()
    final = service.get_run(run.run_id)
    assert final.state == {"n": 1}
    assert calls == [0, 0], "the tool ran for both copies"
    assert log_types(driver, run.run_id).count("step_started") == 1


def test_a_stale_message_resends_the_current_one(registry: ToolRegistry, driver: InProcessDriver) -> None:
    service = driver.service
    graph_id = service.create_graph(CHAIN).graph_id
    run = service.start_run(graph_id)
    m0 = next_message(driver)
    service.run_step(m0)
    m1 = next_message(driver)
    assert (m1.step, m1.attempt) == (1, 1)
    # The worker that committed step 0 "died" before its message was sent: m1 is lost.
    assert len(driver.queue) == 0
    sent = driver.queue.sent
    redelivered = service.run_step(m0)
    assert redelivered.disposition is StepDisposition.STALE
    assert redelivered.next_message == m1
    assert driver.queue.sent == sent + 1
    assert driver.drain() == 2
    final = service.get_run(run.run_id)
    assert final.status is RunStatus.SUCCEEDED
    assert final.state == {"i": 2, "marks": ["b"]}


def test_any_message_behind_the_run_resends_the_current_one(
    registry: ToolRegistry, driver: InProcessDriver
) -> None:
    service = driver.service
    graph_id = service.create_graph(CHAIN).graph_id
    run = service.start_run(graph_id)
    service.run_step(next_message(driver))
    service.run_step(next_message(driver))
    current = next_message(driver)
    assert current.position == (2, 1)
    far_behind = service.run_step(StepMessage(run_id=run.run_id, step=0))
    assert far_behind.disposition is StepDisposition.STALE
    assert far_behind.next_message == current
    assert driver.queue.pop() == current
    assert service.get_run(run.run_id).position == (2, 1)


def test_a_message_ahead_of_the_run_does_nothing(registry: ToolRegistry, driver: InProcessDriver) -> None:
    service = driver.service
    run = service.start_run(service.create_graph(CHAIN).graph_id)
    sent = driver.queue.sent
    ahead = service.run_step(StepMessage(run_id=run.run_id, step=5))
    assert ahead.disposition is StepDisposition.STALE
    assert ahead.next_message is None
    assert driver.queue.sent == sent
    assert service.get_run(run.run_id).position == (0, 1)


def test_a_stale_retry_message_resends_the_retry_with_its_delay(
    registry: ToolRegistry, driver: InProcessDriver, clock: FakeClock
) -> None:
    @registry.tool("t.fails")
    def fails(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise RuntimeError("down")

    service = driver.service
    retry = {"max_attempts": 3, "interval_seconds": 30}
    graph_id = service.create_graph(
        {"start_node": "a", "nodes": {"a": {"tool": "t.fails", "retry": retry}}}
    ).graph_id
    run = service.start_run(graph_id)
    first = next_message(driver)
    result = service.run_step(first)
    assert result.next_message is not None
    assert result.next_message.position == (0, 2)
    assert result.next_message.not_before == clock() + 30
    early = service.run_step(result.next_message)
    assert early.disposition is StepDisposition.DEFERRED
    assert early.defer_seconds == 30
    again = service.run_step(first)
    assert again.disposition is StepDisposition.STALE
    assert again.next_message == result.next_message
    assert service.get_run(run.run_id).position == (0, 2)


def test_messages_for_a_finished_run_are_acknowledged(
    registry: ToolRegistry, driver: InProcessDriver
) -> None:
    service = driver.service
    run = driver.run(service.create_graph(CHAIN).graph_id)
    assert run.status is RunStatus.SUCCEEDED
    result = service.run_step(StepMessage(run_id=run.run_id, step=run.step))
    assert result.disposition is StepDisposition.FINISHED
    assert service.get_run(run.run_id) == run


def test_a_message_for_an_unknown_run_raises(service: WorkflowService) -> None:
    with pytest.raises(RunNotFoundError):
        service.run_step(StepMessage(run_id="nope", step=0))


def test_cancel_stops_a_run_and_cannot_be_repeated(registry: ToolRegistry, driver: InProcessDriver) -> None:
    service = driver.service
    graph_id = service.create_graph(CHAIN).graph_id
    run = service.start_run(graph_id)
    service.run_step(next_message(driver))
    cancelled = service.cancel(run.run_id, "no longer needed")
    assert cancelled.status is RunStatus.CANCELLED
    assert cancelled.error == RunError(type="Cancelled", message="no longer needed")
    assert cancelled.finished_at is not None
    assert driver.drain() == 1
    final = service.get_run(run.run_id)
    assert final.status is RunStatus.CANCELLED
    assert final.state == {"i": 1}
    types = log_types(driver, run.run_id)
    assert types[-1] == "run_cancelled"
    assert types.count("step_started") == 1
    records = service.list_logs(run.run_id)
    assert [r.seq for r in records] == list(range(len(records)))
    with pytest.raises(RunFinishedError):
        service.cancel(run.run_id)


def test_cancelling_a_finished_run_raises(registry: ToolRegistry, driver: InProcessDriver) -> None:
    run = driver.run(driver.service.create_graph(CHAIN).graph_id)
    with pytest.raises(RunFinishedError) as caught:
        driver.service.cancel(run.run_id)
    assert caught.value.code == "run_finished"
    assert driver.service.get_run(run.run_id).status is RunStatus.SUCCEEDED


def test_cancelling_an_unknown_run_raises(service: WorkflowService) -> None:
    with pytest.raises(RunNotFoundError):
        service.cancel("nope")


def test_fail_run_marks_a_run_failed_once(registry: ToolRegistry, driver: InProcessDriver) -> None:
    service = driver.service
    run = service.start_run(service.create_graph(CHAIN).graph_id)
    error = RunError(type="DeadLetter", message="message kept failing", node="a")
    failed = service.fail_run(run.run_id, error)
    assert failed is not None
    assert failed.status is RunStatus.FAILED
    assert failed.error == error
    assert service.fail_run(run.run_id, error) is None
    assert service.fail_run("unknown", error) is None
    assert log_types(driver, run.run_id) == ["run_started", "run_failed"]


def test_run_inline_completes_a_small_graph(registry: ToolRegistry, driver: InProcessDriver) -> None:
    service = driver.service
    graph_id = service.create_graph(CHAIN).graph_id
    run = service.run_inline(graph_id, {"i": 10})
    assert run.status is RunStatus.SUCCEEDED
    assert run.state == {"i": 12, "marks": ["b"]}
    assert service.get_run(run.run_id) == run
    watchdog = next_message(driver)
    assert watchdog.position == (0, 1)
    assert watchdog.not_before is not None
    assert service.run_step(watchdog).disposition is StepDisposition.FINISHED
    assert len(driver.queue) == 0


def test_run_inline_hands_a_run_over_to_the_queue_when_its_budget_is_spent(
    registry: ToolRegistry, driver: InProcessDriver, clock: FakeClock
) -> None:
    @registry.tool("t.tick")
    def tick(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        clock.sleep(4)
        return {"i": state.get("i", 0) + 1}

    service = driver.service
    definition: Definition = {
        "start_node": "a",
        "nodes": {"a": "t.tick"},
        "edges": {"a": [{"when": {"key": "i", "op": "<", "value": 5}, "to": "a"}, {"to": "__end__"}]},
    }
    graph_id = service.create_graph(definition).graph_id
    run = service.run_inline(graph_id, budget_seconds=10, sleep=clock.sleep)
    assert run.status is RunStatus.RUNNING
    assert run.state == {"i": 3}
    assert run.position == (3, 1)
    assert len(driver.queue) == 2
    driver.drain()
    final = service.get_run(run.run_id)
    assert final.status is RunStatus.SUCCEEDED
    assert final.state == {"i": 5}
    records = service.list_logs(run.run_id)
    assert [r.seq for r in records] == list(range(len(records)))
    assert [str(r.type) for r in records].count("step_started") == 5


def test_run_inline_waits_out_retry_delays_within_its_budget(
    registry: ToolRegistry, driver: InProcessDriver, clock: FakeClock
) -> None:
    attempts: list[int] = []

    @registry.tool("t.once_broken")
    def once_broken(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("first try fails")
        return {"ok": True}

    service = driver.service
    node = {"tool": "t.once_broken", "retry": {"max_attempts": 2, "interval_seconds": 3}}
    graph_id = service.create_graph({"start_node": "a", "nodes": {"a": node}}).graph_id
    started = clock()
    run = service.run_inline(graph_id, budget_seconds=20, sleep=clock.sleep)
    assert run.status is RunStatus.SUCCEEDED
    assert attempts == [1, 2]
    assert clock() - started == 3


def test_start_run_with_an_idempotency_key_returns_the_same_run(
    registry: ToolRegistry, driver: InProcessDriver
) -> None:
    service = driver.service
    graph_id = service.create_graph(CHAIN).graph_id
    first = service.start_run(graph_id, {"i": 1}, idempotency_key="order-42")
    sent = driver.queue.sent
    again = service.start_run(graph_id, {"i": 99}, idempotency_key="order-42")
    assert again.run_id == first.run_id
    assert again.state == {"i": 1}
    assert driver.queue.sent == sent, "no second first message"
    other = service.start_run(graph_id, {"i": 1}, idempotency_key="order-43")
    assert other.run_id != first.run_id
    driver.drain()
    inline = service.run_inline(graph_id, idempotency_key="order-42")
    assert inline.run_id == first.run_id
    assert inline.status is RunStatus.SUCCEEDED
    assert log_types(driver, first.run_id).count("step_started") == 3


def test_start_run_checks_its_input(registry: ToolRegistry, service: WorkflowService) -> None:
    graph_id = service.create_graph(CHAIN).graph_id
    with pytest.raises(BadRequestError):
        service.start_run(graph_id, ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(GraphNotFoundError):
        service.start_run("no-such-graph")


def test_a_run_copies_its_initial_state(registry: ToolRegistry, driver: InProcessDriver) -> None:
    initial: dict[str, Any] = {"i": 0, "nested": {"rows": [1]}}
    service = driver.service
    run = service.start_run(service.create_graph(CHAIN).graph_id, initial)
    initial["i"] = 100
    initial["nested"]["rows"].append(2)
    driver.drain()
    assert service.get_run(run.run_id).state["nested"] == {"rows": [1]}
    assert service.get_run(run.run_id).state["i"] == 2


def test_runs_read_from_the_store_are_copies(registry: ToolRegistry, driver: InProcessDriver) -> None:
    service = driver.service
    run = service.start_run(service.create_graph(CHAIN).graph_id, {"nested": {"rows": [1]}})
    copy = service.get_run(run.run_id)
    copy.state["nested"]["rows"].append("mutated")
    copy.state["extra"] = True
    copy.subscribers.append("sneaky")
    result = service.run_step(next_message(driver))
    result.run.state["nested"]["rows"].append("mutated again")
    result.run.subscribers.append("sneaky")
    stored = service.get_run(run.run_id)
    assert stored.state == {"nested": {"rows": [1]}, "i": 1}
    assert stored.subscribers == []


def test_graph_versions_and_runs_pin_the_version_they_started_with(
    registry: ToolRegistry, driver: InProcessDriver, clock: FakeClock
) -> None:
    @registry.tool("t.v2")
    def v2(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"version": 2}

    service = driver.service
    v1_record = service.create_graph(
        {"name": "pinned", "start_node": "a", "nodes": {"a": "t.inc", "b": "t.inc"}, "edges": {"a": "b"}}
    )
    graph_id = v1_record.graph_id
    assert v1_record.version == 1
    old = service.start_run(graph_id)
    clock.sleep(1)
    v2_record = service.add_graph_version(
        graph_id, {"name": "pinned", "start_node": "a", "nodes": {"a": "t.v2"}}
    )
    assert v2_record.version == 2
    new = service.start_run(graph_id)
    driver.drain()
    old_final = service.get_run(old.run_id)
    new_final = service.get_run(new.run_id)
    assert (old_final.graph_version, old_final.state) == (1, {"i": 2})
    assert (new_final.graph_version, new_final.state) == (2, {"version": 2})
    assert service.get_graph(graph_id).version == 2
    assert service.get_graph(graph_id, 1).definition.nodes["a"].tool == "t.inc"
    assert [r.version for r in service.list_graphs()] == [2]
    explicit = service.start_run(graph_id, version=1)
    assert explicit.graph_version == 1
    with pytest.raises(GraphNotFoundError):
        service.get_graph(graph_id, 3)
    with pytest.raises(GraphNotFoundError):
        service.add_graph_version("unknown", {"start_node": "a", "nodes": {"a": "t.inc"}})
    with pytest.raises(InvalidGraphError):
        service.add_graph_version(graph_id, {"start_node": "a", "nodes": {"a": "t.unknown"}})
    assert service.get_graph(graph_id).version == 2


def test_list_graphs_newest_first(registry: ToolRegistry, service: WorkflowService, clock: FakeClock) -> None:
    ids = []
    for name in ("first", "second", "third"):
        ids.append(service.create_graph({"name": name, "start_node": "a", "nodes": {"a": "t.inc"}}).graph_id)
        clock.sleep(1)
    assert [g.graph_id for g in service.list_graphs()] == ids[::-1]
    assert [g.summary()["name"] for g in service.list_graphs(limit=2)] == ["third", "second"]
    named = service.create_graph({"start_node": "a", "nodes": {"a": "t.inc"}}, graph_id="chosen")
    assert named.graph_id == "chosen"


def test_logs_page_with_after_and_limit(registry: ToolRegistry, driver: InProcessDriver) -> None:
    service = driver.service
    run = driver.run(service.create_graph(CHAIN).graph_id)
    everything = service.list_logs(run.run_id)
    assert service.list_logs(run.run_id, after=3) == everything[4:]
    assert service.list_logs(run.run_id, after=3, limit=2) == everything[4:6]
    assert service.list_logs(run.run_id, after=len(everything)) == []
    with pytest.raises(RunNotFoundError):
        service.list_logs("nope")


def test_subscribers_get_every_committed_record_in_order(
    registry: ToolRegistry, driver: InProcessDriver
) -> None:
    service = driver.service
    run = service.start_run(service.create_graph(CHAIN).graph_id)
    subscribed = service.runs.add_subscriber(run.run_id, "conn-1")
    assert subscribed.next_seq == 1
    driver.drain()
    delivered = driver.sink.delivered["conn-1"]
    assert [r["seq"] for r in delivered] == list(range(1, service.get_run(run.run_id).next_seq))
    assert delivered[-1]["type"] == "run_succeeded"
    service.runs.remove_subscriber(run.run_id, "conn-1")
    assert service.get_run(run.run_id).subscribers == []


def test_run_summary_leaves_out_state(registry: ToolRegistry, driver: InProcessDriver) -> None:
    run: Run = driver.run(driver.service.create_graph(CHAIN).graph_id, {"secret": "x"})
    summary = run.summary()
    assert "state" not in summary
    assert summary["status"] == "SUCCEEDED"
    assert summary["run_id"] == run.run_id


def test_run_inline_with_a_known_idempotency_key_does_not_run_the_queued_run_again(
    registry: ToolRegistry, driver: InProcessDriver
) -> None:
    service = driver.service
    graph_id = service.create_graph(CHAIN).graph_id
    queued = service.start_run(graph_id, {"i": 0}, idempotency_key="order-7")
    sent = driver.queue.sent
    again = service.run_inline(graph_id, {"i": 0}, idempotency_key="order-7")
    assert again.run_id == queued.run_id
    assert again.status is RunStatus.PENDING
    # the unfinished run's position is re-enqueued (the queue drops it as a duplicate here)
    assert driver.queue.sent == sent + 1
    assert len(driver.queue) == 1
    driver.drain()
    assert log_types(driver, queued.run_id).count("step_started") == 3
