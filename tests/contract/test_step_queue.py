"""The StepQueue contract (memory and SQS FIFO): messages arrive as sent, a duplicate may be dropped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from engine.aws.sqs import SqsStepQueue
from engine.memory import InMemoryStepQueue
from engine.model import StepMessage
from engine.ports import StepQueue
from tests.contract.conftest import Moto


@dataclass
class Queue:
    queue: StepQueue
    receive: Callable[[], list[StepMessage]]


def _drain_sqs(env: Moto, attributes: list[dict[str, Any]] | None = None) -> list[StepMessage]:
    out: list[StepMessage] = []
    while True:
        messages = env.sqs.receive_message(
            QueueUrl=env.resources.queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return out
        for message in messages:
            out.append(StepMessage.model_validate_json(message["Body"]))
            if attributes is not None:
                attributes.append(message["Attributes"])
            env.sqs.delete_message(QueueUrl=env.resources.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture(params=["memory", "sqs"])
def queue(request: pytest.FixtureRequest) -> Queue:
    if request.param == "memory":
        memory = InMemoryStepQueue()

        def pop_all() -> list[StepMessage]:
            out = []
            while (message := memory.pop()) is not None:
                out.append(message)
            return out

        return Queue(memory, pop_all)
    env: Moto = request.getfixturevalue("moto")
    return Queue(SqsStepQueue(env.sqs, env.resources.queue_url), lambda: _drain_sqs(env))


def test_messages_arrive_as_sent(queue: Queue) -> None:
    sent = [
        StepMessage(run_id="run-1", step=0),
        StepMessage(run_id="run-1", step=1, attempt=2, not_before=1_700_000_123.5),
    ]
    for message in sent:
        queue.queue.send(message)
    assert queue.receive() == sent


def test_a_duplicate_sent_while_the_first_is_queued_is_dropped(queue: Queue) -> None:
    message = StepMessage(run_id="run-1", step=4)
    queue.queue.send(message)
    queue.queue.send(message)
    queue.queue.send(StepMessage(run_id="run-1", step=4, attempt=2))
    assert queue.receive() == [message, StepMessage(run_id="run-1", step=4, attempt=2)]


def test_sqs_groups_by_run_and_deduplicates_by_position(moto: Moto) -> None:
    message = StepMessage(run_id="run-7", step=3, attempt=2, not_before=1_700_000_123.5)
    SqsStepQueue(moto.sqs, moto.resources.queue_url).send(message)
    attributes: list[dict[str, Any]] = []
    assert _drain_sqs(moto, attributes) == [message]
    assert attributes[0]["MessageGroupId"] == "run-7"
    assert attributes[0]["MessageDeduplicationId"] == message.dedup_id
