"""Graph triggers: schedule expressions, their firing times, and the service keeping schedules with graph versions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from engine import FakeClock, InProcessDriver, RunStatus
from engine.errors import GraphNotFoundError, InvalidGraphError
from engine.memory import InMemoryTriggers
from engine.triggers import TriggerEvent, check_expression, next_fire

HOUR = 3600.0


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 hour)",
        "rate(5 minutes)",
        "rate(1 day)",
        "cron(0 12 * * ? *)",
        "cron(0/15 8-17 ? * MON-FRI *)",
        "cron(0 0 L * ? *)",
        "at(2027-01-01T00:00:00)",
    ],
)
def test_the_schedulers_expressions_are_accepted(expression: str) -> None:
    check_expression(expression)


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("rate(1 hours)", "rate(1 hour)"),
        ("rate(2 hour)", "rate(2 hours)"),
        ("rate(0 minutes)", "positive"),
        ("rate(5 seconds)", "not a schedule expression"),
        ("cron(0 12 * * * *)", "exactly one of"),
        ("cron(0 12 * *)", "six fields"),
        ("cron(61 * * * ? *)", "outside 0-59"),
        ("cron(0 12 $ * ? *)", "character"),
        ("at(2027-13-01T00:00:00)", "not a valid date"),
        ("every hour", "not a schedule expression"),
    ],
)
def test_other_expressions_are_refused_saying_why(expression: str, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
        check_expression(expression)


def test_a_rate_fires_every_period_from_its_anchor() -> None:
    anchor = ts("2027-01-01T00:10:00")
    assert next_fire("rate(1 hour)", anchor, anchor) == anchor + HOUR
    assert next_fire("rate(1 hour)", anchor + HOUR, anchor) == anchor + 2 * HOUR
    assert next_fire("rate(1 hour)", anchor + 5.5 * HOUR, anchor) == anchor + 6 * HOUR


def test_a_cron_fires_at_its_next_matching_minute() -> None:
    saturday = ts("2027-01-02T13:00:00")
    assert next_fire("cron(0 12 * * ? *)", saturday, 0) == ts("2027-01-03T12:00:00")
    assert next_fire("cron(30 9 ? * MON-FRI *)", saturday, 0) == ts("2027-01-04T09:30:00")
    assert next_fire("cron(0/20 * * * ? *)", ts("2027-01-01T10:05:00"), 0) == ts("2027-01-01T10:20:00")
    assert next_fire("cron(0 0 1 JAN ? 2027)", ts("2027-06-01T00:00:00"), 0) is None
    with pytest.raises(ValueError, match="not computed"):
        next_fire("cron(0 0 L * ? *)", saturday, 0)


def test_an_at_fires_once() -> None:
    moment = ts("2027-01-01T00:00:00")
    assert next_fire("at(2027-01-01T00:00:00)", moment - 1, 0) == moment
    assert next_fire("at(2027-01-01T00:00:00)", moment, 0) is None


def test_memory_triggers_fire_each_period_passed_with_its_time() -> None:
    clock = FakeClock()
    triggers = InMemoryTriggers(clock)
    triggers.put(TriggerEvent(graph_id="g", trigger=0, initial_state={"a": 1}), "rate(1 hour)")
    start = clock()
    assert triggers.fire_due(start + HOUR - 1) == []
    fired = triggers.fire_due(start + 3 * HOUR)
    assert [e.initial_state for e in fired] == [{"a": 1}] * 3
    assert len({e.key() for e in fired}) == 3, "each firing has its own idempotency key"
    assert triggers.fire_due(start + 3 * HOUR) == []


TRIGGERED: dict[str, Any] = {
    "name": "triggered",
    "start_node": "a",
    "nodes": {"a": "t.inc"},
    "triggers": [
        {"schedule": "rate(1 hour)", "initial_state": {"i": 10}},
        {"schedule": "cron(0 12 * * ? *)", "initial_state": {"i": 20}},
    ],
}


@pytest.fixture
def triggers(driver: InProcessDriver, clock: FakeClock) -> InMemoryTriggers:
    made = InMemoryTriggers(clock)
    driver.service.triggers = made
    return made


def test_an_invalid_trigger_is_a_graph_problem(driver: InProcessDriver) -> None:
    with pytest.raises(InvalidGraphError) as raised:
        driver.service.create_graph({**TRIGGERED, "triggers": [{"schedule": "rate(1 hours)"}]})
    assert any("triggers" in p.where for p in raised.value.problems), raised.value.problems


def test_a_graphs_triggers_follow_its_versions(driver: InProcessDriver, triggers: InMemoryTriggers) -> None:
    service = driver.service
    graph_id = service.create_graph(TRIGGERED).graph_id
    assert {k: v[1] for k, v in triggers.schedules.items()} == {
        (graph_id, 0): "rate(1 hour)",
        (graph_id, 1): "cron(0 12 * * ? *)",
    }
    first = triggers.schedules[(graph_id, 0)]

    service.add_graph_version(graph_id, {**TRIGGERED, "triggers": TRIGGERED["triggers"][:1]})
    assert list(triggers.schedules) == [(graph_id, 0)]
    assert triggers.schedules[(graph_id, 0)] is first, "an unchanged trigger keeps its schedule"

    service.add_graph_version(graph_id, {**TRIGGERED, "triggers": [{"schedule": "rate(1 hour)"}]})
    assert triggers.schedules[(graph_id, 0)][0].initial_state == {}, "a changed trigger is replaced"

    service.delete_graph(graph_id)
    assert triggers.schedules == {}


def test_a_firing_starts_one_run_of_the_latest_version(
    driver: InProcessDriver, triggers: InMemoryTriggers, clock: FakeClock
) -> None:
    service = driver.service
    graph_id = service.create_graph(TRIGGERED).graph_id
    service.add_graph_version(graph_id, TRIGGERED)
    [event] = triggers.fire_due(clock() + HOUR)

    run = service.start_triggered_run(event)
    assert run is not None
    assert service.start_triggered_run(event) == run, "a repeated delivery starts nothing new"
    driver.drain()

    done = service.get_run(run.run_id)
    assert (done.status, done.graph_version, done.state["i"]) == (RunStatus.SUCCEEDED, 2, 11)
    assert done.owner == "local"


def test_a_firing_of_a_removed_trigger_or_a_deleted_graph_starts_nothing(
    driver: InProcessDriver, triggers: InMemoryTriggers
) -> None:
    service = driver.service
    graph_id = service.create_graph(TRIGGERED).graph_id
    late = TriggerEvent(graph_id=graph_id, trigger=1, scheduled_time="2027-01-01T12:00:00Z")
    service.add_graph_version(graph_id, {**TRIGGERED, "triggers": []})
    assert service.start_triggered_run(late) is None
    service.delete_graph(graph_id)
    with pytest.raises(GraphNotFoundError):
        service.start_triggered_run(late)


def test_an_event_from_elsewhere_starts_a_run_with_its_own_key(
    driver: InProcessDriver, triggers: InMemoryTriggers
) -> None:
    service = driver.service
    graph_id = service.create_graph(TRIGGERED).graph_id
    upload = TriggerEvent(
        graph_id=graph_id, initial_state={"i": 0, "key": "in/a.csv"}, idempotency_key="evt-1"
    )
    first = service.start_triggered_run(upload)
    assert first is not None and first.state["key"] == "in/a.csv"
    assert service.start_triggered_run(upload) == first
    other = service.start_triggered_run(upload.model_copy(update={"idempotency_key": "evt-2"}))
    assert other is not None and other.run_id != first.run_id
