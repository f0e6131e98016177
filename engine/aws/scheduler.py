"""Timers and graph triggers on EventBridge Scheduler.

:class:`SchedulerTimers` is the :class:`engine.ports.StepTimers` of a deployment:
each message due far ahead becomes a one-time schedule, ``at(...)`` in UTC,
whose target is the step FIFO queue (``SqsParameters.MessageGroupId`` the
message's group, ``Input`` the message's JSON as :class:`engine.aws.sqs.SqsStepQueue`
sends it), deleted by the scheduler once it has fired
(``ActionAfterCompletion=DELETE``). The scheduler's SQS target takes no
deduplication id, so the step queue has ``ContentBasedDeduplication``: a timer
message's body names its run, position and ``timer`` flag, so no two different
messages share a body.

:class:`SchedulerTriggers` is the :class:`engine.ports.GraphTriggers`: each
``schedule`` trigger of a graph is a recurring schedule whose target is the
trigger function, its ``Input`` the :class:`engine.triggers.TriggerEvent` with
``scheduled_time`` the firing's time (:data:`SCHEDULED_TIME`), so a firing
delivered twice starts one run.

A schedule's name is derived from what it stands for (a message's
``dedup_id``, a graph and trigger index), so creating one that exists is
``ConflictException``: already scheduled, not an error. Any other refusal, or
no answer, is :class:`engine.errors.TimersUnavailableError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from engine.errors import TimersUnavailableError
from engine.model import StepMessage
from engine.triggers import TriggerEvent

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient

NAME_LIMIT = 64
_UNSAFE = re.compile(r"[^0-9a-zA-Z_.-]")
TRIGGER_PREFIX = "trigger-"
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
"""The context attribute the scheduler replaces with the firing's time (ISO 8601, UTC) in a target's input."""


def schedule_name(key: str, prefix: str = "") -> str:
    """A schedule name for ``key``: its readable part (``[0-9a-zA-Z-_.]``) and a hash of all of it, within 64."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    readable = _UNSAFE.sub(".", key)[: NAME_LIMIT - len(prefix) - len(digest) - 1]
    return f"{prefix}{readable}-{digest}"


def at_expression(epoch_seconds: float) -> str:
    """``at(YYYY-MM-DDThh:mm:ss)`` in UTC, rounded up to the second (a schedule never fires early)."""
    moment = datetime.fromtimestamp(math.ceil(epoch_seconds), UTC)
    return f"at({moment.strftime('%Y-%m-%dT%H:%M:%S')})"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _Schedules:
    def __init__(self, client: EventBridgeSchedulerClient, group: str) -> None:
        self.client = client
        self.group = group

    def _create(self, name: str, **arguments: Any) -> None:
        try:
            self.client.create_schedule(
                Name=name, GroupName=self.group, FlexibleTimeWindow={"Mode": "OFF"}, **arguments
            )
        except ClientError as exc:
            if _code(exc) == "ConflictException":
                return
            raise TimersUnavailableError(
                "the scheduler refused the schedule", reason=_code(exc) or type(exc).__name__
            ) from exc
        except BotoCoreError as exc:
            raise TimersUnavailableError("the scheduler did not answer", reason=type(exc).__name__) from exc

    def _delete(self, name: str) -> None:
        try:
            self.client.delete_schedule(Name=name, GroupName=self.group)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return
            raise TimersUnavailableError(
                "the scheduler did not delete the schedule", reason=_code(exc) or type(exc).__name__
            ) from exc
        except BotoCoreError as exc:
            raise TimersUnavailableError("the scheduler did not answer", reason=type(exc).__name__) from exc


class SchedulerTimers(_Schedules):
    """One-time schedules in ``group`` that send step messages to the FIFO queue ``target_queue_arn``.

    The scheduler assumes ``role_arn`` (allowed ``sqs:SendMessage`` on that queue) to send.
    """

    def __init__(
        self, client: EventBridgeSchedulerClient, group: str, target_queue_arn: str, role_arn: str
    ) -> None:
        super().__init__(client, group)
        self.target_queue_arn = target_queue_arn
        self.role_arn = role_arn

    def schedule(self, message: StepMessage) -> None:
        if message.not_before is None:
            raise ValueError("a timer message needs a not_before")
        self._create(
            schedule_name(message.dedup_id),
            ScheduleExpression=at_expression(message.not_before),
            ScheduleExpressionTimezone="UTC",
            ActionAfterCompletion="DELETE",
            Target={
                "Arn": self.target_queue_arn,
                "RoleArn": self.role_arn,
                "Input": message.model_dump_json(exclude_none=True),
                "SqsParameters": {"MessageGroupId": message.group},
            },
        )

    def cancel(self, message: StepMessage) -> None:
        self._delete(schedule_name(message.dedup_id))


def trigger_name(graph_id: str, index: int) -> str:
    """The schedule name of a graph's ``index``-th trigger."""
    return schedule_name(f"{graph_id}.{index}", TRIGGER_PREFIX)


class SchedulerTriggers(_Schedules):
    """Recurring schedules in ``group`` that invoke the trigger function ``target_function_arn``.

    The scheduler assumes ``role_arn`` (allowed ``lambda:InvokeFunction`` on that function).
    A graph's schedules are found by name: :func:`trigger_name` of its id and each index.
    """

    def __init__(
        self, client: EventBridgeSchedulerClient, group: str, target_function_arn: str, role_arn: str
    ) -> None:
        super().__init__(client, group)
        self.target_function_arn = target_function_arn
        self.role_arn = role_arn

    def put(self, event: TriggerEvent, expression: str) -> None:
        if event.trigger is None:
            raise ValueError("a trigger schedule needs the trigger's index")
        name = trigger_name(event.graph_id, event.trigger)
        self._delete(name)
        self._create(
            name,
            ScheduleExpression=expression,
            ScheduleExpressionTimezone="UTC",
            Target={
                "Arn": self.target_function_arn,
                "RoleArn": self.role_arn,
                "Input": json.dumps(
                    {**event.model_dump(exclude_none=True), "scheduled_time": SCHEDULED_TIME}
                ),
            },
        )

    def remove(self, graph_id: str, index: int) -> None:
        self._delete(trigger_name(graph_id, index))
