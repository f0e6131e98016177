"""Poison messages on moto: a tool that kills, hangs or exhausts memory fails only its own run.

A first delivery that kills the step invocation is played by receiving the
batch and not deleting it (what SQS sees when a Lambda dies): its records come
back with ``ApproximateReceiveCount`` 2, as suspects, and run their tools in a
forked child. The step function's time is the context's (a short one here).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from engine.model import DeliveryProblem, RunStatus, StepMessage
from engine.service import LOCAL_OWNER
from functions.dlq import app as dlq_app
from functions.shared import wiring
from functions.step import app as step_app
from local.esm import EventSourceMapping
from local.lambda_context import LocalContext
from tests.integration.conftest import AwsEnv
from tests.support.events import load_event
from tests.support.tools import loop_graph

STEP_TIMEOUT = 10.0
INNOCENT = loop_graph(1, "innocent")


def one_node(tool: str, **node: Any) -> dict[str, Any]:
    return {"name": tool, "start_node": "poison", "nodes": {"poison": {"tool": tool, **node}}}


@pytest.fixture
def env(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> AwsEnv:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", "engine.tools.dq,tests.support.tools")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
    aws.sqs.set_queue_attributes(QueueUrl=aws.resources.queue_url, Attributes={"VisibilityTimeout": "0"})
    wiring.reset()
    return aws


def short_lived(event: dict[str, Any], context: Any) -> Any:
    """The step handler as a function of :data:`STEP_TIMEOUT` seconds."""
    return step_app.lambda_handler(event, LocalContext(function_name="step", timeout_seconds=STEP_TIMEOUT))


def steps(env: AwsEnv) -> EventSourceMapping:
    r = env.resources
    return EventSourceMapping(env.sqs, r.queue_url, r.queue_arn, short_lived)


def start(graph: dict[str, Any], state: dict[str, Any] | None = None) -> str:
    service = wiring.service()
    return service.start_run(service.create_graph(graph).graph_id, state or {}).run_id


def die_unseen(env: AwsEnv) -> int:
    """Receive every message in batches and delete none, as if each batch's invocation died; then let them reappear."""
    url = env.resources.queue_url
    handles: list[str] = []
    while True:
        messages = env.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
            "Messages", []
        )
        if not messages:
            break
        handles.extend(m["ReceiptHandle"] for m in messages)
    for handle in handles:  # their visibility timeout ends
        env.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    return len(handles)


def record(body: StepMessage, receives: int, index: int) -> dict[str, Any]:
    """A record of ``events/step_sqs.json`` carrying ``body``, delivered ``receives`` times."""
    [template] = load_event("step_sqs")["Records"]
    out: dict[str, Any] = copy.deepcopy(template)
    out["messageId"] = f"message-{index}"
    out["body"] = body.model_dump_json()
    out["attributes"]["ApproximateReceiveCount"] = str(receives)
    out["attributes"]["MessageGroupId"] = body.group
    out["attributes"]["MessageDeduplicationId"] = body.dedup_id
    return out


def test_a_suspect_that_kills_its_process_fails_its_run_and_the_rest_of_its_batch_goes_on(
    env: AwsEnv,
) -> None:
    poison = start(one_node("test.die"))
    innocents = [start(INNOCENT, {"i": 0}) for _ in range(5)]
    ids = [innocents[0], poison, *innocents[1:]]
    event = {"Records": [record(StepMessage(run_id=i, step=0), 2, n) for n, i in enumerate(ids)]}

    response = short_lived(event, None)

    assert response == {"batchItemFailures": []}
    run = wiring.service().get_run(poison)
    assert run.status is RunStatus.FAILED
    assert run.error is not None and run.error.type == "ToolProcessDied"
    assert run.error.message == "the tool's process died: signal 9 (SIGKILL)"
    for run_id in innocents:
        assert wiring.service().get_run(run_id).position == (1, 1)


def test_poison_runs_fail_with_their_reason_while_twenty_batch_mates_succeed(env: AwsEnv) -> None:
    poisons = {
        start(one_node("test.die")): ("ToolProcessDied", "signal 9"),
        start(one_node("test.exit"), {"code": 3}): ("ToolProcessDied", "exit status 3"),
        start(one_node("test.hang")): ("ToolTimeoutError", "ran out of the step's time"),
        start(one_node("test.hog")): ("ToolMemoryExhausted", "ran out of memory"),
    }
    innocents = [start(INNOCENT, {"i": 0}) for _ in range(20)]
    assert die_unseen(env) == 24

    steps(env).drain()

    service = wiring.service()
    for run_id, (type_, text) in poisons.items():
        run = service.get_run(run_id)
        assert run.status is RunStatus.FAILED, run
        assert run.error is not None and run.error.type == type_
        assert text in run.error.message
    for run_id in innocents:
        assert service.get_run(run_id).status is RunStatus.SUCCEEDED
    dead = env.sqs.get_queue_attributes(
        QueueUrl=env.resources.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert dead == "0"


def test_a_node_that_overruns_its_timeout_takes_its_catch(env: AwsEnv) -> None:
    graph = {
        "name": "caught",
        "start_node": "slow",
        "nodes": {
            "slow": {"tool": "test.hang", "timeout_seconds": 0.5, "catch": "after"},
            "after": {"tool": "test.noop"},
        },
    }
    run_id = start(graph, {"hang_seconds": 3})
    steps(env).drain()
    run = wiring.service().get_run(run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert run.current_node == "after"
    assert run.state["error"]["type"] == "ToolTimeoutError"


def test_a_record_whose_node_does_not_fit_the_time_left_is_handed_back_unrun(env: AwsEnv) -> None:
    graph = one_node("test.noop", timeout_seconds=STEP_TIMEOUT)
    run_id = start(graph)
    event = {"Records": [record(StepMessage(run_id=run_id, step=0), 1, 0)]}
    event["Records"][0]["receiptHandle"] = env.sqs.receive_message(QueueUrl=env.resources.queue_url)[
        "Messages"
    ][0]["ReceiptHandle"]

    response = short_lived(event, None)

    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    run = wiring.service().get_run(run_id)
    assert run.position == (0, 1) and run.status is RunStatus.PENDING
    assert run.delivery is not None and run.delivery.problem is DeliveryProblem.HANDED_BACK

    dlq = load_event("step_sqs")
    dlq["Records"][0]["body"] = json.dumps({"run_id": run_id, "step": 0, "attempt": 1})
    dlq["Records"][0]["attributes"]["ApproximateReceiveCount"] = "6"
    assert dlq_app.lambda_handler(dlq, LocalContext()) == {"batchItemFailures": []}
    failed = wiring.service().get_run(run_id)
    assert failed.error is not None and failed.error.type == "StepOutOfTime"
    assert "ran out of the function's time" in failed.error.message


def test_the_dlq_ignores_a_stale_duplicate_and_fails_the_current_position(env: AwsEnv) -> None:
    run_id = start(INNOCENT, {"i": 0})
    service = wiring.service()
    service.run_step(StepMessage(run_id=run_id, step=0))

    stale = load_event("step_sqs")
    stale["Records"][0]["body"] = json.dumps({"run_id": run_id, "step": 0, "attempt": 1})
    assert dlq_app.lambda_handler(stale, LocalContext()) == {"batchItemFailures": []}
    assert service.get_run(run_id).status is RunStatus.RUNNING

    service.note_failed_delivery(StepMessage(run_id=run_id, step=1), RuntimeError("boom"), receives=5)
    current = load_event("step_sqs")
    current["Records"][0]["body"] = json.dumps({"run_id": run_id, "step": 1, "attempt": 1})
    current["Records"][0]["attributes"]["ApproximateReceiveCount"] = "6"
    assert dlq_app.lambda_handler(current, LocalContext()) == {"batchItemFailures": []}
    run = service.get_run(run_id)
    assert run.status is RunStatus.FAILED
    assert run.error is not None and run.error.type == "StepDeliveryFailed"
    assert "after 6 deliveries: the message kept failing: RuntimeError: boom" in run.error.message


def test_an_inline_start_whose_watchdog_send_fails_leaves_no_run_and_a_retry_runs_it(
    env: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = wiring.service()
    graph_id = service.create_graph(INNOCENT).graph_id
    queue = service.queue
    original = queue.send
    failures = [RuntimeError("SQS throttled the send")]

    def send(message: StepMessage) -> None:
        if failures:
            raise failures.pop()
        original(message)

    monkeypatch.setattr(queue, "send", send)
    with pytest.raises(RuntimeError, match="throttled"):
        service.run_inline(graph_id, {"i": 0}, idempotency_key="order-1")
    assert service.runs.find_run_by_idempotency_key(LOCAL_OWNER, "order-1") is None

    run = service.run_inline(graph_id, {"i": 0}, idempotency_key="order-1")
    assert run.status is RunStatus.SUCCEEDED


def test_with_isolation_always_even_a_first_delivery_runs_in_a_child(
    env: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEP_ISOLATION", "always")
    wiring.reset()
    poison = start(one_node("test.die"))
    innocent = start(INNOCENT, {"i": 0})
    event = {
        "Records": [record(StepMessage(run_id=i, step=0), 1, n) for n, i in enumerate((poison, innocent))]
    }

    assert short_lived(event, None) == {"batchItemFailures": []}
    error = wiring.service().get_run(poison).error
    assert error is not None and error.type == "ToolProcessDied"
    assert wiring.service().get_run(innocent).position == (1, 1)


@pytest.mark.parametrize(
    ("mode", "receives", "isolated"), [("never", 5, False), ("suspects", 1, False), ("suspects", 2, True)]
)
def test_step_isolation_decides_which_records_are_isolated(
    env: AwsEnv, monkeypatch: pytest.MonkeyPatch, mode: str, receives: int, isolated: bool
) -> None:
    monkeypatch.setenv("STEP_ISOLATION", mode)
    wiring.reset()
    assert wiring.settings().isolates(receives) is isolated


def test_an_unknown_step_isolation_is_refused(env: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEP_ISOLATION", "sometimes")
    wiring.reset()
    with pytest.raises(ValueError, match="STEP_ISOLATION must be one of suspects, always, never"):
        wiring.settings()


def test_a_failed_post_to_subscribers_leaves_the_step_committed_and_the_next_one_queued(
    env: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.model import LogRecord, Run

    class Refusing:
        def publish(self, run: Run, records: list[LogRecord]) -> None:
            raise RuntimeError("429 Too Many Requests")

    service = wiring.service()
    monkeypatch.setattr(service, "sink", Refusing())
    run_id = start(INNOCENT, {"i": 0})
    service.runs.add_subscriber(run_id, "conn-1")
    mapping, failed = steps(env), 0
    while (outcome := mapping.poll_once()).received:
        failed += outcome.failed
    assert failed == 0, "no record fails for its publish"
    assert service.get_run(run_id).status is RunStatus.SUCCEEDED
