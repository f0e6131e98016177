"""The service's side of failure isolation: isolated attempts, the time budget, dead letters, inline starts, publishing."""

from __future__ import annotations

import time
from typing import Any

import pytest

from engine import InProcessDriver, Run, RunStatus, StepDisposition, StepMessage, ToolContext, ToolRegistry
from engine.errors import InvalidGraphError, PayloadTooLargeError
from engine.memory import InMemoryStepQueue
from engine.model import DeliveryProblem, LogRecord
from engine.runner import ForkRunner
from engine.service import (
    LOCAL_OWNER,
    STEP_MARGIN_SECONDS,
    DeadLetterDisposition,
    WorkflowService,
    max_node_timeout,
)

CHAIN: dict[str, Any] = {
    "name": "chain",
    "start_node": "a",
    "nodes": {"a": "t.inc", "b": "t.inc"},
    "edges": {"a": "b"},
}


@pytest.fixture
def service(driver: InProcessDriver) -> WorkflowService:
    return driver.service


def first(service: WorkflowService, graph: dict[str, Any] = CHAIN) -> tuple[Run, StepMessage]:
    run = service.start_run(service.create_graph(graph).graph_id, {"i": 0})
    return run, StepMessage(run_id=run.run_id, step=0)


def pid_graph(registry: ToolRegistry, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    import os

    @registry.tool("t.pid", description="Reports its process id")
    def pid(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"pid": os.getpid()}

    return {"name": "pid", "start_node": "a", "nodes": {"a": {"tool": "t.pid", **(extra or {})}}}


# isolated attempts


def test_an_isolated_step_runs_its_tool_in_a_child_and_notes_that_it_started(
    service: WorkflowService, registry: ToolRegistry
) -> None:
    import os

    service.isolated_runner = ForkRunner()
    run, message = first(service, pid_graph(registry))
    seen: list[Any] = []
    original = service.runs.commit

    def commit(*args: Any) -> Run:
        seen.append(service.runs.get_run(run.run_id).delivery)
        return original(*args)

    service.runs.commit = commit  # type: ignore[method-assign]
    result = service.run_step(message, isolate=True, time_left=20, receives=2)

    assert result.disposition is StepDisposition.COMMITTED
    assert result.run.status is RunStatus.SUCCEEDED
    assert result.run.state["pid"] != os.getpid()
    [note] = seen
    assert note is not None and note.problem is DeliveryProblem.STARTED
    assert (note.position, note.receives) == ((0, 1), 2)


def test_a_step_not_isolated_writes_no_delivery_note(service: WorkflowService) -> None:
    run, message = first(service)
    service.run_step(message, time_left=20)
    assert service.get_run(run.run_id).delivery is None


def test_an_isolated_tool_is_stopped_at_the_invocations_time_left(
    service: WorkflowService, registry: ToolRegistry
) -> None:
    @registry.tool("t.sleep", description="Sleeps")
    def sleep(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        time.sleep(60)
        return {}

    service.isolated_runner = ForkRunner()
    _, message = first(service, {"name": "s", "start_node": "a", "nodes": {"a": "t.sleep"}})
    result = service.run_step(message, isolate=True, time_left=STEP_MARGIN_SECONDS + 0.3)

    assert result.run.status is RunStatus.FAILED
    assert result.run.error is not None
    assert result.run.error.type == "ToolTimeoutError"
    assert "ran out of the step's time" in result.run.error.message


# the time budget


def test_a_node_whose_timeout_does_not_fit_the_time_left_is_handed_back_unrun(
    service: WorkflowService, registry: ToolRegistry
) -> None:
    run, message = first(service, pid_graph(registry, {"timeout_seconds": 10}))
    result = service.run_step(message, time_left=10 + STEP_MARGIN_SECONDS - 0.5, receives=1)

    assert result.disposition is StepDisposition.HANDED_BACK
    assert "needs 10s" in result.reason
    stored = service.get_run(run.run_id)
    assert stored.position == (0, 1) and "pid" not in stored.state
    assert stored.delivery is not None and stored.delivery.problem is DeliveryProblem.HANDED_BACK

    done = service.run_step(message, time_left=10 + STEP_MARGIN_SECONDS + 0.5)
    assert done.disposition is StepDisposition.COMMITTED


def test_a_step_without_a_node_timeout_is_handed_back_only_inside_the_margin(
    service: WorkflowService,
) -> None:
    _, message = first(service)
    assert (
        service.run_step(message, time_left=STEP_MARGIN_SECONDS / 2).disposition
        is StepDisposition.HANDED_BACK
    )
    assert (
        service.run_step(message, time_left=STEP_MARGIN_SECONDS * 2).disposition is StepDisposition.COMMITTED
    )


def test_node_timeouts_longer_than_the_step_function_allows_are_refused(service: WorkflowService) -> None:
    service.max_node_timeout_seconds = max_node_timeout(30)
    graph = {"name": "slow", "start_node": "a", "nodes": {"a": {"tool": "t.inc", "timeout_seconds": 60}}}
    with pytest.raises(InvalidGraphError) as caught:
        service.create_graph(graph)
    [problem] = caught.value.problems
    assert problem.where == "nodes.a.timeout_seconds"
    assert "'a'" in problem.message and "60" in problem.message and "27s" in problem.message
    graph["nodes"]["a"]["timeout_seconds"] = 27  # type: ignore[index]
    service.create_graph(graph)


# dead letters


def test_a_dead_letter_for_the_current_position_fails_the_run_with_the_noted_reason(
    service: WorkflowService,
) -> None:
    _, message = first(service)
    assert service.note_failed_delivery(message, PayloadTooLargeError("state item is 500 KB"), receives=3)

    result = service.dead_letter(message, receives=5)

    assert result.disposition is DeadLetterDisposition.FAILED
    assert result.run is not None and result.run.status is RunStatus.FAILED
    assert result.error is not None and result.error.type == "StateTooLarge"
    assert "after 5 deliveries" in result.error.message
    assert "the state is too large: PayloadTooLargeError: state item is 500 KB" in result.error.message


@pytest.mark.parametrize(
    ("problem", "type_", "text"),
    [
        (DeliveryProblem.STARTED, "StepProcessDied", "died or ran out of the function's time"),
        (DeliveryProblem.HANDED_BACK, "StepOutOfTime", "ran out of the function's time"),
        (DeliveryProblem.FAILED, "StepDeliveryFailed", "the message kept failing"),
    ],
)
def test_each_delivery_problem_reads_as_its_own_reason(
    service: WorkflowService, problem: DeliveryProblem, type_: str, text: str
) -> None:
    from engine.model import DeliveryNote

    run, message = first(service)
    service.runs.note_delivery(
        run.run_id, DeliveryNote(step=0, attempt=1, problem=problem, detail="x", at=1.0)
    )
    result = service.dead_letter(message, receives=5)
    assert result.error is not None
    assert (result.error.type, text in result.error.message) == (type_, True)


def test_a_dead_letter_without_a_note_says_nothing_was_recorded(service: WorkflowService) -> None:
    _, message = first(service)
    result = service.dead_letter(message, receives=6)
    assert result.error is not None and result.error.type == "StepDeliveryFailed"
    assert "no error was recorded" in result.error.message


def test_a_stale_dead_letter_changes_nothing(service: WorkflowService) -> None:
    run, message = first(service)
    service.run_step(message)

    result = service.dead_letter(message, receives=6)

    assert result.disposition is DeadLetterDisposition.STALE
    assert service.get_run(run.run_id).status is RunStatus.RUNNING
    assert service.get_run(run.run_id).position == (1, 1)


def test_a_dead_letter_for_a_missing_or_finished_run_is_acknowledged(
    service: WorkflowService, driver: InProcessDriver
) -> None:
    assert (
        service.dead_letter(StepMessage(run_id="nope", step=0)).disposition is DeadLetterDisposition.MISSING
    )
    run, _ = first(service)
    driver.drain()
    assert (
        service.dead_letter(StepMessage(run_id=run.run_id, step=2)).disposition
        is DeadLetterDisposition.FINISHED
    )


def test_a_note_for_an_older_position_does_not_explain_the_current_one(service: WorkflowService) -> None:
    run, message = first(service)
    service.note_failed_delivery(message, RuntimeError("old"))
    service.run_step(message)
    current = StepMessage(run_id=run.run_id, step=1)
    result = service.dead_letter(current, receives=5)
    assert result.error is not None and "no error was recorded" in result.error.message


# inline starts


class FailingOnce(InMemoryStepQueue):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def send(self, message: StepMessage) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("queue unavailable")
        super().send(message)


def test_an_inline_start_whose_watchdog_cannot_be_sent_stores_no_run(
    registry: ToolRegistry, driver: InProcessDriver
) -> None:
    service = driver.service
    service.queue = queue = FailingOnce()
    graph_id = service.create_graph(CHAIN).graph_id

    with pytest.raises(ConnectionError):
        service.run_inline(graph_id, {"i": 0}, idempotency_key="k-1")
    assert service.runs.find_run_by_idempotency_key(LOCAL_OWNER, "k-1") is None

    run = service.run_inline(graph_id, {"i": 0}, idempotency_key="k-1")
    assert run.status is RunStatus.SUCCEEDED
    assert len(queue) == 1  # the watchdog, which will find the run finished


def test_an_inline_retry_resumes_an_unfinished_run(registry: ToolRegistry, driver: InProcessDriver) -> None:
    service = driver.service
    graph_id = service.create_graph(CHAIN).graph_id
    stuck = service.run_inline(graph_id, {"i": 0}, idempotency_key="k-2", budget_seconds=0)
    while driver.queue.pop() is not None:  # the messages are lost
        pass

    again = service.run_inline(graph_id, {"i": 0}, idempotency_key="k-2")
    assert again.run_id == stuck.run_id
    driver.drain()
    assert service.get_run(stuck.run_id).status is RunStatus.SUCCEEDED


# publishing


class BrokenSink:
    def publish(self, run: Run, records: list[LogRecord]) -> None:
        raise RuntimeError("429 Too Many Requests")


def test_a_failed_publish_neither_fails_the_step_nor_keeps_the_next_one_from_the_queue(
    driver: InProcessDriver,
) -> None:
    service = driver.service
    heard: list[tuple[str, str]] = []
    service.sink = BrokenSink()
    service.on_publish_error = lambda run, exc: heard.append((run.run_id, str(exc)))
    run, message = first(service)
    assert driver.queue.pop() == message
    service.runs.add_subscriber(run.run_id, "conn-1")

    result = service.run_step(message)

    assert result.disposition is StepDisposition.COMMITTED
    assert driver.queue.pop() == StepMessage(run_id=run.run_id, step=1)
    assert heard == [(run.run_id, "429 Too Many Requests")]
