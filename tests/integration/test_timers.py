"""Waits through EventBridge Scheduler on moto: the step and DLQ handlers wired with SchedulerTimers.

moto keeps schedules but never fires them: a test fires one by hand, as the
scheduler does (its ``Input`` sent to its target queue in its message group,
then the schedule deleted). The handlers' clock is moved with ``LOCAL_CLOCK_FILE``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from engine.model import RunStatus, StepMessage
from engine.service import LONG_DELAY_SECONDS
from functions.shared import wiring
from functions.step import app as step_app
from local.esm import EventSourceMapping
from local.lambda_context import LocalContext
from local.resources import SchedulerResources, create_scheduler_resources
from tests.integration.conftest import AwsEnv
from tests.support.events import load_event

DAY = 86400.0
WAIT_GRAPH: dict[str, Any] = {
    "name": "three-days",
    "start_node": "before",
    "nodes": {"before": "test.noop", "pause": {"wait": {"seconds": 3 * DAY}}, "after": "test.noop"},
    "edges": {"before": "pause", "pause": "after"},
}


@dataclass
class Env:
    aws: AwsEnv
    scheduler: Any
    made: SchedulerResources
    clock_file: Path
    invocations: int = 0

    def advance(self, seconds: float) -> None:
        offset = float(self.clock_file.read_text()) + seconds
        self.clock_file.write_text(repr(offset))

    def schedules(self) -> list[dict[str, Any]]:
        return [
            self.scheduler.get_schedule(GroupName=self.made.group, Name=s["Name"])
            for s in self.scheduler.list_schedules(GroupName=self.made.group)["Schedules"]
        ]

    def fire(self, schedule: dict[str, Any]) -> None:
        """What the scheduler does at the schedule's time."""
        target = schedule["Target"]
        assert target["Arn"] == self.aws.resources.queue_arn
        self.aws.sqs.send_message(
            QueueUrl=self.aws.resources.queue_url,
            MessageBody=target["Input"],
            MessageGroupId=target["SqsParameters"]["MessageGroupId"],
        )
        self.scheduler.delete_schedule(GroupName=self.made.group, Name=schedule["Name"])

    def drain(self) -> int:
        def counted(event: dict[str, Any], context: Any) -> Any:
            self.invocations += 1
            return step_app.lambda_handler(event, context)

        r = self.aws.resources
        return EventSourceMapping(self.aws.sqs, r.queue_url, r.queue_arn, counted).drain()


@pytest.fixture
def env(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Env:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", "engine.tools.dq,tests.support.tools")
    aws.sqs.set_queue_attributes(QueueUrl=aws.resources.queue_url, Attributes={"VisibilityTimeout": "0"})
    scheduler = boto3.client("scheduler", region_name="us-east-1")
    made = create_scheduler_resources(scheduler, boto3.client("iam", region_name="us-east-1"))
    clock_file = tmp_path / "offset"
    clock_file.write_text("0.0")
    monkeypatch.setenv("SCHEDULER_GROUP", made.group)
    monkeypatch.setenv("SCHEDULER_ROLE_ARN", made.role_arn)
    monkeypatch.setenv("STEP_QUEUE_ARN", aws.resources.queue_arn)
    monkeypatch.setenv("LOCAL_CLOCK_FILE", str(clock_file))
    wiring.reset()
    return Env(aws, scheduler, made, clock_file)


def _start(graph: dict[str, Any]) -> str:
    service = wiring.service()
    return service.start_run(service.create_graph(graph).graph_id, {}).run_id


def test_a_three_day_wait_is_a_schedule_that_resumes_the_run(env: Env) -> None:
    run_id = _start(WAIT_GRAPH)
    started = time.time()
    env.drain()
    run = wiring.service().get_run(run_id)
    assert (run.status, run.current_node) == (RunStatus.RUNNING, "pause")
    assert run.waiting is not None
    [schedule] = env.schedules()
    due = run.waiting.until
    assert abs(due - (started + 3 * DAY)) < 60
    expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(due) + (due % 1 > 0)))
    assert schedule["ScheduleExpression"] == f"at({expected})"
    assert schedule["Target"]["SqsParameters"] == {"MessageGroupId": f"{run_id}.timer"}
    waiting_invocations = env.invocations
    assert env.drain() == 0, "nothing is queued while the run waits"

    env.advance(3 * DAY + 1)
    env.fire(schedule)
    env.drain()

    run = wiring.service().get_run(run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert env.invocations - waiting_invocations == 2, "the wake-up, then the node after the wait"
    assert env.schedules() == []


def test_cancel_during_a_wait_deletes_its_schedule(env: Env) -> None:
    run_id = _start(WAIT_GRAPH)
    env.drain()
    assert len(env.schedules()) == 1

    wiring.service().cancel(run_id)

    assert env.schedules() == []
    assert wiring.service().get_run(run_id).status is RunStatus.CANCELLED


def test_a_wake_up_that_arrives_early_is_scheduled_again_and_its_record_deleted(env: Env) -> None:
    run_id = _start(WAIT_GRAPH)
    env.drain()
    [schedule] = env.schedules()
    env.fire(schedule)  # a day early
    env.advance(2 * DAY)
    event = load_event("step_sqs")
    [message] = env.aws.sqs.receive_message(QueueUrl=env.aws.resources.queue_url)["Messages"]
    event["Records"][0]["body"] = message["Body"]

    assert step_app.lambda_handler(event, LocalContext()) == {"batchItemFailures": []}

    [again] = env.schedules()
    assert again["ScheduleExpression"] == schedule["ScheduleExpression"]
    assert StepMessage.model_validate_json(again["Target"]["Input"]).timer
    assert wiring.service().get_run(run_id).current_node == "pause"


def test_a_duplicate_at_the_waiting_position_is_acknowledged(env: Env) -> None:
    run_id = _start(WAIT_GRAPH)
    env.drain()
    run = wiring.service().get_run(run_id)
    event = load_event("step_sqs")
    event["Records"][0]["body"] = json.dumps({"run_id": run_id, "step": run.step, "attempt": run.attempt})

    assert step_app.lambda_handler(event, LocalContext()) == {"batchItemFailures": []}
    assert wiring.service().get_run(run_id).position == run.position


def test_a_retry_due_in_two_days_goes_to_the_scheduler_not_the_queue(env: Env) -> None:
    message = StepMessage(run_id="r1", step=3, attempt=2, not_before=time.time() + 2 * DAY)
    assert message.not_before is not None and message.not_before - time.time() > LONG_DELAY_SECONDS
    wiring.service()._send(message)
    [schedule] = env.schedules()
    assert StepMessage.model_validate_json(schedule["Target"]["Input"]) == message
    assert schedule["Target"]["SqsParameters"] == {"MessageGroupId": "r1"}


def test_the_local_stacks_snapshot_keeps_pending_schedules(env: Env) -> None:
    from local import snapshot

    _start(WAIT_GRAPH)
    env.drain()
    [schedule] = env.schedules()
    document = snapshot.dump()
    env.scheduler.delete_schedule(GroupName=env.made.group, Name=schedule["Name"])

    counts = snapshot.load({**document, "dynamodb": {}, "sqs": {}, "s3": {}})

    assert counts["schedules"] == 1
    [restored] = env.schedules()
    for field in ("Name", "ScheduleExpression", "Target", "ActionAfterCompletion", "FlexibleTimeWindow"):
        assert restored[field] == schedule[field]


def test_without_the_scheduler_settings_the_service_has_no_timers(aws: AwsEnv) -> None:
    wiring.reset()
    service = wiring.service()
    assert service.timers is None and service.triggers is None
    assert service.clock is time.time
