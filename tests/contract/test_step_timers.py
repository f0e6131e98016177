"""The StepTimers contract (in memory and EventBridge Scheduler on moto).

moto stores schedules but never fires them: for the scheduler the tests read
the schedule back (its expression, target and input) where the memory adapter
is fired with :meth:`InMemoryTimers.fire_due`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from engine.aws.scheduler import SchedulerTimers, at_expression, schedule_name
from engine.errors import QueueUnavailableError, TimersUnavailableError
from engine.memory import InMemoryStepQueue, InMemoryTimers
from engine.model import StepMessage
from engine.ports import StepTimers
from local.resources import create_scheduler_resources
from tests.contract.conftest import Moto

DUE = datetime(2027, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()


@dataclass
class Timers:
    kind: str
    timers: StepTimers
    pending: Callable[[], dict[str, StepMessage]]
    """What is scheduled and not sent: dedup id -> the message it will send."""


@pytest.fixture(params=["memory", "scheduler"])
def timers(request: pytest.FixtureRequest) -> Timers:
    if request.param == "memory":
        memory = InMemoryTimers(InMemoryStepQueue())
        return Timers("memory", memory, lambda: dict(memory._scheduled))
    env: Moto = request.getfixturevalue("moto")
    client = boto3.client("scheduler", region_name="us-east-1")
    made = create_scheduler_resources(client, boto3.client("iam", region_name="us-east-1"))
    adapter = SchedulerTimers(client, made.group, env.resources.queue_arn, made.role_arn)

    def pending() -> dict[str, StepMessage]:
        out = {}
        for summary in client.list_schedules(GroupName=made.group)["Schedules"]:
            schedule = client.get_schedule(GroupName=made.group, Name=summary["Name"])
            message = StepMessage.model_validate_json(schedule["Target"]["Input"])
            out[message.dedup_id] = message
        return out

    return Timers("scheduler", adapter, pending)


def _timer(step: int = 2, due: float = DUE) -> StepMessage:
    return StepMessage(run_id="run-abc", step=step, attempt=1, not_before=due, timer=True)


def test_a_scheduled_message_is_pending_until_cancelled(timers: Timers) -> None:
    message = _timer()
    timers.timers.schedule(message)
    assert timers.pending() == {message.dedup_id: message}
    timers.timers.cancel(message)
    assert timers.pending() == {}


def test_scheduling_the_same_message_twice_keeps_one(timers: Timers) -> None:
    message = _timer()
    timers.timers.schedule(message)
    timers.timers.schedule(message.model_copy(update={"not_before": DUE + 60}))
    assert timers.pending() == {message.dedup_id: message}


def test_cancelling_what_is_not_scheduled_changes_nothing(timers: Timers) -> None:
    kept = _timer(step=1)
    timers.timers.schedule(kept)
    timers.timers.cancel(_timer(step=5))
    assert list(timers.pending()) == [kept.dedup_id]


def test_messages_of_different_positions_are_scheduled_apart(timers: Timers) -> None:
    first, second = _timer(step=1), _timer(step=2, due=DUE + 3600)
    retry = StepMessage(run_id="run-abc", step=2, attempt=3, not_before=DUE)
    for message in (first, second, retry):
        timers.timers.schedule(message)
    assert timers.pending() == {m.dedup_id: m for m in (first, second, retry)}


def test_memory_timers_send_what_is_due_in_time_order() -> None:
    queue = InMemoryStepQueue()
    timers = InMemoryTimers(queue)
    late, early = _timer(step=1, due=DUE + 10), _timer(step=2, due=DUE)
    timers.schedule(late)
    timers.schedule(early)
    assert timers.fire_due(DUE - 1) == 0
    assert timers.fire_due(DUE + 10) == 2
    assert [queue.pop(), queue.pop(), queue.pop()] == [early, late, None]
    assert len(timers) == 0


def test_a_schedule_sends_the_message_to_the_step_queue_in_its_group_at_its_time(moto: Moto) -> None:
    client = boto3.client("scheduler", region_name="us-east-1")
    made = create_scheduler_resources(client, boto3.client("iam", region_name="us-east-1"))
    SchedulerTimers(client, made.group, moto.resources.queue_arn, made.role_arn).schedule(_timer())
    [summary] = client.list_schedules(GroupName=made.group)["Schedules"]
    schedule = client.get_schedule(GroupName=made.group, Name=summary["Name"])
    assert schedule["ScheduleExpression"] == "at(2027-03-04T05:06:07)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = schedule["Target"]
    assert target["Arn"] == moto.resources.queue_arn
    assert target["RoleArn"] == made.role_arn
    assert target["SqsParameters"] == {"MessageGroupId": "run-abc.timer"}
    assert json.loads(target["Input"]) == json.loads(_timer().model_dump_json(exclude_none=True))


def test_the_step_queue_deduplicates_by_content_for_the_scheduler(moto: Moto) -> None:
    """The scheduler's SQS target sends no deduplication id: the FIFO queue must take one from the body."""
    body = _timer().model_dump_json(exclude_none=True)
    url = moto.resources.queue_url
    for _ in range(2):
        moto.sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="run-abc.timer")
    received = moto.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in received] == [body]


def test_names_fit_the_scheduler_and_differ_per_message() -> None:
    allowed = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.")
    long_id = StepMessage(run_id="r" * 200, step=1, fanout=3, branch=7, timer=True).dedup_id
    names = {schedule_name(key) for key in ("a:1:1:timer", "a.1.1.timer", "a:1:2:timer", long_id)}
    assert len(names) == 4
    assert all(len(n) <= 64 and set(n) <= allowed for n in names)


def test_the_at_time_rounds_up_to_the_second() -> None:
    assert at_expression(DUE + 0.2) == "at(2027-03-04T05:06:08)"
    assert at_expression(DUE) == "at(2027-03-04T05:06:07)"


@pytest.mark.parametrize("operation", ["create_schedule", "delete_schedule"])
def test_a_refusal_is_timers_unavailable(operation: str) -> None:
    client = boto3.client(
        "scheduler", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    timers = SchedulerTimers(client, "group", "arn:aws:sqs:us-east-1:1:q.fifo", "arn:aws:iam::1:role/r")
    with Stubber(client) as stub:
        stub.add_client_error(operation, service_error_code="ThrottlingException", http_status_code=429)
        with pytest.raises(TimersUnavailableError) as raised:
            (timers.schedule if operation == "create_schedule" else timers.cancel)(_timer())
    assert isinstance(raised.value, QueueUnavailableError)
    assert raised.value.details["reason"] == "ThrottlingException"
    assert isinstance(raised.value.__cause__, ClientError)
