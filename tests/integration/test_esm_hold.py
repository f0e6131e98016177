"""The local event source mapping's hold: a batch is not received again while its invocation may run.

The queue's visibility timeout is 0 here, far below any function's timeout (which
Lambda would refuse), so without the hold every receive during an invocation
would get the batch again.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.esm import EventSourceMapping
from tests.integration.conftest import AwsEnv


@pytest.fixture
def env(aws: AwsEnv) -> AwsEnv:
    aws.sqs.set_queue_attributes(QueueUrl=aws.resources.queue_url, Attributes={"VisibilityTimeout": "0"})
    aws.sqs.send_message(
        QueueUrl=aws.resources.queue_url,
        MessageBody=json.dumps({"run_id": "r1", "step": 0, "attempt": 1}),
        MessageGroupId="r1",
        MessageDeduplicationId="r1-0",
    )
    return aws


def receive(env: AwsEnv) -> list[dict[str, Any]]:
    response = env.sqs.receive_message(
        QueueUrl=env.resources.queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )
    return list(response.get("Messages", []))


def mapping(env: AwsEnv, handler: Any, **hold: int) -> EventSourceMapping:
    r = env.resources
    return EventSourceMapping(env.sqs, r.queue_url, r.queue_arn, handler, **hold)


def test_a_batch_is_not_received_again_while_its_invocation_runs(env: AwsEnv) -> None:
    seen_during: list[list[dict[str, Any]]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen_during.append(receive(env))
        return {"batchItemFailures": []}

    outcome = mapping(env, handler, hold_seconds=30, retry_seconds=0).poll_once()
    assert (outcome.received, outcome.failed) == (1, 0)
    assert seen_during == [[]]
    assert receive(env) == []


def test_without_a_hold_the_queue_visibility_timeout_applies(env: AwsEnv) -> None:
    seen_during: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen_during.append(len(receive(env)))
        return {"batchItemFailures": []}

    mapping(env, handler).poll_once()
    assert seen_during == [1]


def test_a_failed_invocation_is_visible_again_after_retry_seconds(env: AwsEnv) -> None:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("the environment died")

    outcome = mapping(env, handler, hold_seconds=30, retry_seconds=0).poll_once()
    assert outcome.failed == 1 and isinstance(outcome.error, RuntimeError)
    [again] = receive(env)
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_reported_failure_keeps_the_visibility_the_handler_gave_it(env: AwsEnv) -> None:
    """The step handler hides a deferred record until it is due; the mapping leaves that alone."""

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        [record] = event["Records"]
        return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}

    outcome = mapping(env, handler, hold_seconds=30, retry_seconds=0).poll_once()
    assert outcome.failed == 1
    assert receive(env) == []
