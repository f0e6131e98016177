"""The GraphTriggers contract (in memory and EventBridge Scheduler on moto): one schedule per trigger index."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from engine.aws.scheduler import SCHEDULED_TIME, SchedulerTriggers, trigger_name
from engine.memory import InMemoryTriggers
from engine.ports import GraphTriggers
from engine.triggers import TriggerEvent
from local.resources import create_scheduler_resources

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:graphflow-trigger"


@dataclass
class Triggers:
    triggers: GraphTriggers
    current: Callable[[], dict[tuple[str, int], tuple[str, TriggerEvent]]]
    """(graph, index) -> (expression, the event it sends, without its firing time)."""


@pytest.fixture(params=["memory", "scheduler"])
def triggers(request: pytest.FixtureRequest) -> Triggers:
    if request.param == "memory":
        memory = InMemoryTriggers(lambda: 1_800_000_000.0)
        return Triggers(memory, lambda: {k: (v[1], v[0]) for k, v in memory.schedules.items()})
    request.getfixturevalue("moto")
    client = boto3.client("scheduler", region_name="us-east-1")
    made = create_scheduler_resources(client, boto3.client("iam", region_name="us-east-1"))
    adapter = SchedulerTriggers(client, made.group, FUNCTION_ARN, made.role_arn)

    def current() -> dict[tuple[str, int], tuple[str, TriggerEvent]]:
        out = {}
        for summary in client.list_schedules(GroupName=made.group)["Schedules"]:
            schedule = client.get_schedule(GroupName=made.group, Name=summary["Name"])
            body = json.loads(schedule["Target"]["Input"])
            assert body.pop("scheduled_time") == SCHEDULED_TIME
            event = TriggerEvent.model_validate(body)
            assert event.trigger is not None and summary["Name"] == trigger_name(
                event.graph_id, event.trigger
            )
            assert schedule["Target"]["Arn"] == FUNCTION_ARN
            out[(event.graph_id, event.trigger)] = (schedule["ScheduleExpression"], event)
        return out

    return Triggers(adapter, current)


def _event(graph: str = "g1", index: int = 0, **state: Any) -> TriggerEvent:
    return TriggerEvent(graph_id=graph, trigger=index, initial_state=state)


def test_a_put_trigger_is_scheduled_with_its_event(triggers: Triggers) -> None:
    triggers.triggers.put(_event(a=1), "rate(1 hour)")
    triggers.triggers.put(_event(index=1), "cron(0 12 * * ? *)")
    assert triggers.current() == {
        ("g1", 0): ("rate(1 hour)", _event(a=1)),
        ("g1", 1): ("cron(0 12 * * ? *)", _event(index=1)),
    }


def test_putting_a_trigger_again_replaces_it(triggers: Triggers) -> None:
    triggers.triggers.put(_event(a=1), "rate(1 hour)")
    triggers.triggers.put(_event(a=2), "rate(2 hours)")
    assert triggers.current() == {("g1", 0): ("rate(2 hours)", _event(a=2))}


def test_removing_a_trigger_leaves_the_others(triggers: Triggers) -> None:
    triggers.triggers.put(_event(), "rate(1 hour)")
    triggers.triggers.put(_event(graph="g2"), "rate(1 hour)")
    triggers.triggers.remove("g1", 0)
    triggers.triggers.remove("g1", 5)
    assert list(triggers.current()) == [("g2", 0)]


def test_a_trigger_needs_its_index(triggers: Triggers) -> None:
    with pytest.raises(ValueError, match="index"):
        triggers.triggers.put(TriggerEvent(graph_id="g1"), "rate(1 hour)")
    assert triggers.current() == {}
