"""The step Lambda on moto: the step protocol under duplicates, crashes, retries and poison messages."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from engine.model import LogType, RunStatus
from functions.dlq import app as dlq_app
from functions.shared import wiring
from functions.step import app as step_app
from local.esm import EventSourceMapping
from local.lambda_context import LocalContext
from tests.integration.conftest import AwsEnv
from tests.support.events import load_event
from tests.support.tools import FLAKY_GRAPH, LOOP_GRAPH


@pytest.fixture
def env(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> AwsEnv:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", "engine.tools.dq,tests.support.tools")
    aws.sqs.set_queue_attributes(QueueUrl=aws.resources.queue_url, Attributes={"VisibilityTimeout": "0"})
    wiring.reset()
    return aws


def steps_esm(env: AwsEnv, handler: Any = step_app.lambda_handler) -> EventSourceMapping:
    r = env.resources
    return EventSourceMapping(env.sqs, r.queue_url, r.queue_arn, handler)


def dlq_esm(env: AwsEnv) -> EventSourceMapping:
    r = env.resources
    return EventSourceMapping(env.sqs, r.dlq_url, r.dlq_arn, dlq_app.lambda_handler)


def start(graph: dict[str, Any], state: dict[str, Any] | None = None) -> str:
    service = wiring.service()
    record = service.create_graph(graph)
    return service.start_run(record.graph_id, state or {}).run_id


def assert_log_contiguous(run_id: str) -> list[Any]:
    records = wiring.service().list_logs(run_id)
    assert [r.seq for r in records] == list(range(len(records)))
    return records


def test_sample_event_with_no_run_is_retried_not_lost(env: AwsEnv) -> None:
    response = step_app.lambda_handler(load_event("step_sqs"), LocalContext())
    [failure] = response["batchItemFailures"]
    assert failure["itemIdentifier"] == load_event("step_sqs")["Records"][0]["messageId"]


def test_sample_event_advances_its_run(env: AwsEnv) -> None:
    service = wiring.service()
    graph = service.create_graph(LOOP_GRAPH)
    event = load_event("step_sqs")
    run = service.start_run(graph.graph_id, {"i": 0}, enqueue=False)
    event["Records"][0]["body"] = json.dumps({"run_id": run.run_id, "step": 0, "attempt": 1})
    assert step_app.lambda_handler(event, LocalContext()) == {"batchItemFailures": []}
    after = service.get_run(run.run_id)
    assert (after.step, after.current_node, after.state["i"]) == (1, "b", 1)


def test_runs_to_completion_through_the_queue(env: AwsEnv) -> None:
    run_ids = [start(LOOP_GRAPH, {"i": 0}) for _ in range(3)]
    steps_esm(env).drain()
    for run_id in run_ids:
        run = wiring.service().get_run(run_id)
        assert run.status is RunStatus.SUCCEEDED
        assert run.state["i"] == 3
        assert run.step == 9
        records = assert_log_contiguous(run_id)
        assert records[-1].type is LogType.RUN_SUCCEEDED


def test_every_message_delivered_twice_commits_each_step_once(env: AwsEnv) -> None:
    once = start(LOOP_GRAPH, {"i": 0})
    steps_esm(env).drain()

    def twice(event: dict[str, Any], context: Any) -> Any:
        step_app.lambda_handler(event, context)
        return step_app.lambda_handler(event, context)

    run_id = start(LOOP_GRAPH, {"i": 0})
    steps_esm(env, twice).drain()
    service = wiring.service()
    assert service.get_run(run_id).state == service.get_run(once).state
    records = assert_log_contiguous(run_id)
    succeeded = [(r.step, r.node) for r in records if r.type is LogType.STEP_SUCCEEDED]
    assert len(succeeded) == len(set(succeeded)) == 9
    assert [r.type for r in records] == [r.type for r in assert_log_contiguous(once)]


def test_crash_between_commit_and_enqueue_does_not_strand_the_run(
    env: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = start(LOOP_GRAPH, {"i": 0})
    queue = wiring.service().queue
    original = queue.send
    crashes = {"left": 2}

    def send(message: Any) -> None:
        if message.step in (2, 5) and crashes["left"] and message.attempt == 1:
            crashes["left"] -= 1
            raise RuntimeError("process died before the next step was enqueued")
        original(message)

    monkeypatch.setattr(queue, "send", send)
    steps_esm(env).drain()
    assert crashes["left"] == 0
    run = wiring.service().get_run(run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert run.state["i"] == 3
    succeeded = [r.step for r in assert_log_contiguous(run_id) if r.type is LogType.STEP_SUCCEEDED]
    assert succeeded == list(range(9))


def test_retry_waits_without_blocking_other_runs(env: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry is an hour away, so however slow the machine, the other run ends while it waits.

    Then the test moves the service's clock past the retry's time and makes the
    deferred message visible (as SQS does when its visibility timeout ends).
    """
    hour = 3600
    slow_retry = {
        **FLAKY_GRAPH,
        "nodes": {"try": {"tool": "test.flaky", "retry": {"max_attempts": 3, "interval_seconds": hour}}},
    }
    flaky = start(slow_retry)
    other = start(LOOP_GRAPH, {"i": 0})
    handles: dict[str, str] = {}

    def recording(event: dict[str, Any], context: Any) -> Any:
        handles.update({r["body"]: r["receiptHandle"] for r in event["Records"]})
        return step_app.lambda_handler(event, context)

    esm = steps_esm(env, recording)
    esm.drain()
    service = wiring.service()
    assert service.get_run(other).status is RunStatus.SUCCEEDED
    waiting = service.get_run(flaky)
    assert waiting.status is RunStatus.RUNNING
    assert waiting.attempt == 2
    attributes = env.sqs.get_queue_attributes(
        QueueUrl=env.resources.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    [retry] = [b for b in handles if (json.loads(b)["run_id"], json.loads(b)["attempt"]) == (flaky, 2)]
    now = service.clock()
    monkeypatch.setattr(service, "clock", lambda: now + hour)
    env.sqs.change_message_visibility(
        QueueUrl=env.resources.queue_url, ReceiptHandle=handles[retry], VisibilityTimeout=0
    )
    esm.drain()
    run = service.get_run(flaky)
    assert run.status is RunStatus.SUCCEEDED
    assert run.state["flaky_ok"] == 2
    assert run.state["flaky_key"] == f"{flaky}:0"
    types = [r.type for r in assert_log_contiguous(flaky)]
    assert LogType.RETRY_SCHEDULED in types


def test_poison_message_ends_in_the_dlq_and_fails_its_run(
    env: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    poisoned = start(LOOP_GRAPH, {"i": 0})
    healthy = start(LOOP_GRAPH, {"i": 0})
    store = wiring.store()
    original = store.commit

    def commit(run: Any, changes: Any, records: Any) -> Any:
        if run.run_id == poisoned and changes.status is not RunStatus.FAILED:
            raise RuntimeError("simulated storage fault on every step commit")
        return original(run, changes, records)

    monkeypatch.setattr(store, "commit", commit)
    steps_esm(env).drain()
    assert wiring.service().get_run(healthy).status is RunStatus.SUCCEEDED
    dead = env.sqs.get_queue_attributes(
        QueueUrl=env.resources.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert dead == "1"
    assert dlq_esm(env).drain() == 1
    run = wiring.service().get_run(poisoned)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.type == "StepDeliveryFailed"
    assert "dead-letter" in run.error.message
    assert "the message kept failing: RuntimeError: simulated storage fault" in run.error.message
    assert assert_log_contiguous(poisoned)[-1].type is LogType.RUN_FAILED


def test_dlq_sample_event_for_a_missing_run_is_acknowledged(env: AwsEnv) -> None:
    assert dlq_app.lambda_handler(load_event("dlq_sqs"), LocalContext()) == {"batchItemFailures": []}


def test_a_first_step_that_overtakes_its_run_waits_for_it(
    env: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = wiring.store()
    original = store.create_run
    late: list[threading.Thread] = []

    def create_later(run: Any, records: Any) -> Any:
        thread = threading.Timer(0.3, original, (run, records))
        thread.start()
        late.append(thread)
        return run

    monkeypatch.setattr(store, "create_run", create_later)
    run_id = start(LOOP_GRAPH, {"i": 0})
    mapping = steps_esm(env)
    outcome = mapping.poll_once()
    assert (outcome.received, outcome.failed) == (1, 0)
    late[0].join()
    mapping.drain()
    assert wiring.service().get_run(run_id).status is RunStatus.SUCCEEDED


def test_an_inline_run_handed_to_the_queue_does_not_wait_for_its_watchdog(env: AwsEnv) -> None:
    service = wiring.service()
    graph_id = service.create_graph(LOOP_GRAPH).graph_id
    run = service.run_inline(graph_id, {"i": 0}, budget_seconds=0)
    assert run.status is RunStatus.RUNNING
    steps_esm(env).drain()
    assert service.get_run(run.run_id).status is RunStatus.SUCCEEDED
    queued = env.sqs.get_queue_attributes(
        QueueUrl=env.resources.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]["ApproximateNumberOfMessagesNotVisible"]
    assert queued == "1", "the watchdog waits, deferred, in a message group of its own"
