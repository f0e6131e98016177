"""Runs through waits, callbacks and redrives under generated faults end as the same run without faults does.

A small model of the SQS FIFO step queue (FIFO within a message group, a
group held while its head is in flight or hidden, a message not deleted
delivered again after the visibility timeout, a send dropped while a message
of the same deduplication id is queued) with the in-memory timers beside it,
and a driver that delivers its messages in an order and with faults a
schedule gives:

* ``duplicate``: the message is handled twice;
* ``redeliver``: handled, but not deleted: delivered again after the
  visibility timeout (a wake-up or a step that already ran comes back);
* ``crash_commit``: the process dies in the commit, before the run is updated;
* ``crash_after_commit``: it dies after the commit, before it sends (or
  schedules) the next message: the message is redelivered.

The driver also plays the callers: it approves or rejects each callback at a
generated moment before its time-out, or lets it time out, and redrives a run
that failed (after the test mends the tool that failed). Those API calls get
faults of their own (a crash before or after their commit), after which the
caller calls again, as a client does after a 5xx.

The generated graphs are chains of tool, wait and callback nodes. Every
callback has a time-out, so no run may be left waiting with nothing in flight.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from engine.driver import FakeClock
from engine.errors import CallbackUsedError, RunNotRedrivableError
from engine.memory import InMemoryGraphStore, InMemoryRunStore, InMemoryTimers
from engine.model import LogRecord, LogType, Run, RunStatus, StepMessage
from engine.registry import ToolContext, ToolRegistry
from engine.service import StepDisposition, WorkflowService
from tests.support.fifo import Entry, FifoQueue

VISIBILITY_SECONDS = 30.0
MAX_DELIVERIES = 2000
DAY = 86_400.0
FAULTS = ("duplicate", "redeliver", "crash_commit", "crash_after_commit")
API_FAULTS = ("crash_commit", "crash_after_commit")


class Crash(BaseException):
    """The process handling a message (or an API call) dies: nothing after this point happens."""


@dataclass
class Armed:
    commit: bool = False
    after_commit: bool = False
    """Die at the first send or schedule after the commit."""
    committed: bool = False

    def clear(self) -> None:
        self.commit = self.after_commit = self.committed = False


# the queue, the timers, the store


def die_if_armed(armed: Armed) -> None:
    if armed.after_commit and armed.committed:
        armed.after_commit = False
        raise Crash("died after the commit, before sending")


class FaultyTimers(InMemoryTimers):
    def __init__(self, queue: FifoQueue, armed: Armed) -> None:
        super().__init__(queue)
        self.armed = armed

    def schedule(self, message: StepMessage) -> None:
        die_if_armed(self.armed)
        super().schedule(message)


class FaultyRuns:
    def __init__(self, inner: InMemoryRunStore, armed: Armed) -> None:
        self.inner = inner
        self.armed = armed
        self.commits = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def commit(self, run: Run, changes: Any, records: list[LogRecord]) -> Run:
        if self.armed.commit:
            self.armed.commit = False
            raise Crash("died in the commit")
        committed = self.inner.commit(run, changes, records)
        self.commits += 1
        self.armed.committed = True
        return committed


# the scenario

Action = tuple[str, float]
"""``("approve" | "reject", fraction of the time-out)`` or ``("timeout", 0)``."""


@dataclass
class Scenario:
    definition: dict[str, Any]
    state: dict[str, Any]
    actions: dict[tuple[str, int], Action] = field(default_factory=dict)
    """What the caller does with the callback of node, attempt; approve at once if not given."""
    broken: frozenset[str] = frozenset()
    """Tool nodes that fail every attempt until the test mends them, before a redrive."""
    redrive: bool = False


def tools(broken: set[str]) -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool("d.tag")
    def tag(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        if ctx.node in broken:
            raise RuntimeError(f"{ctx.node} is broken")
        if ctx.attempt <= state.get("fails", {}).get(ctx.node, 0):
            raise ConnectionError(f"{ctx.node} attempt {ctx.attempt} failed")
        return {"path": [*state.get("path", []), ctx.node], f"{ctx.node}_attempt": ctx.attempt}

    return registry


# the driver


Schedule = Callable[[int], tuple[int, str]]
ApiSchedule = Callable[[], str]


def in_order(available: int) -> tuple[int, str]:
    return 0, "ok"


def no_api_faults() -> str:
    return "ok"


class FaultDriver:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.clock = FakeClock()
        self.armed = Armed()
        self.broken = set(scenario.broken)
        self.queue = FifoQueue(self.clock, lambda: die_if_armed(self.armed))
        self.timers = FaultyTimers(self.queue, self.armed)
        self.runs = FaultyRuns(InMemoryRunStore(), self.armed)
        self.service = WorkflowService(
            graphs=InMemoryGraphStore(),
            runs=self.runs,  # type: ignore[arg-type]
            queue=self.queue,
            registry=tools(self.broken),
            clock=self.clock,
            rng=lambda: 1.0,
            timers=self.timers,
        )
        self.deliveries = 0
        self.crashes = 0
        self.api_calls = 0
        self.redriven = False
        self.used: set[tuple[str, int]] = set()

    def run(self, schedule: Schedule = in_order, api: ApiSchedule = no_api_faults) -> Run:
        graph_id = self.service.create_graph(self.scenario.definition).graph_id
        run_id = self.service.start_run(graph_id, self.scenario.state).run_id
        while True:
            assert self.deliveries < MAX_DELIVERIES, "the run does not settle"
            run = self.service.runs.get_run(run_id)
            if run.status is RunStatus.FAILED and self.scenario.redrive and not self.redriven:
                self.redriven = True
                self.broken.clear()
                self.call(api(), lambda: self.service.redrive(run_id), RunNotRedrivableError)
                continue
            due = self.callback_due(run)
            if due is not None and due <= self.clock.now:
                self.use_callback(run, api())
                continue
            heads = self.queue.heads()
            if heads:
                index, fault = schedule(len(heads))
                self.deliver(heads[index], fault)
                continue
            times = [t for t in (self.queue.next_visible(), self.timers.next_due(), due) if t is not None]
            if not times:
                return self.service.runs.get_run(run_id)
            self.clock.now = max(self.clock.now, min(times))
            self.timers.fire_due(self.clock.now)

    def action(self, run: Run) -> Action | None:
        waiting = run.waiting
        if run.status.terminal or waiting is None or waiting.kind != "callback":
            return None
        key = (waiting.node, waiting.attempt)
        if key in self.used:
            return None
        action = self.scenario.actions.get(key, ("approve", 0.0))
        return None if action[0] == "timeout" else action

    def callback_due(self, run: Run) -> float | None:
        action = self.action(run)
        if action is None:
            return None
        assert run.waiting is not None
        return run.waiting.since + action[1] * (run.waiting.until - run.waiting.since)

    def use_callback(self, run: Run, fault: str) -> None:
        assert run.waiting is not None
        node, attempt = run.waiting.node, run.waiting.attempt
        position = f"{run.run_id}.{run.waiting.step}.{attempt}."
        (token,) = [
            r.data["token"]
            for r in self.service.runs.list_logs(run.run_id, limit=100_000)
            if r.type is LogType.CALLBACK_WAITING and r.data and r.data["token"].startswith(position)
        ]
        kind, _ = self.action(run) or ("approve", 0.0)
        self.used.add((node, attempt))

        def use() -> Run:
            if kind == "approve":
                return self.service.resolve_callback(token, data={f"{node}_ok": attempt}, decision=node)
            return self.service.resolve_callback(token, approved=False, reason=f"{node} {attempt} refused")

        self.call(fault, use, CallbackUsedError)

    def call(self, fault: str, call: Callable[[], Run], repeated: type[Exception]) -> None:
        """An API call with ``fault``; after a crash the caller calls again, and a second use is refused."""
        self.api_calls += 1
        self.arm(fault)
        try:
            call()
            return
        except Crash:
            self.crashes += 1
        finally:
            self.armed.clear()
        with contextlib.suppress(repeated):
            call()

    def arm(self, fault: str) -> None:
        self.armed.clear()
        self.armed.commit = fault == "crash_commit"
        self.armed.after_commit = fault == "crash_after_commit"

    def deliver(self, entry: Entry, fault: str) -> None:
        self.deliveries += 1
        entry.in_flight = True
        self.arm(fault)
        try:
            result = self.service.run_step(entry.message)
            if fault == "duplicate":
                self.armed.clear()
                self.service.run_step(entry.message)
        except Crash:
            self.crashes += 1
            entry.in_flight = False
            entry.visible_at = self.clock.now + VISIBILITY_SECONDS
            return
        finally:
            self.armed.clear()
        entry.in_flight = False
        if result.disposition is StepDisposition.DEFERRED:
            entry.visible_at = self.clock.now + max(1, math.ceil(result.defer_seconds))
        elif fault == "redeliver":
            entry.visible_at = self.clock.now + VISIBILITY_SECONDS
        else:
            self.queue.delete(entry)


# generated scenarios

WAIT_SECONDS = (1, 600, 1200, 3 * DAY, 365 * DAY)
TIMEOUTS = (60, 3600, 2 * DAY)
INTERVALS = (0, 10, DAY)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    kinds = draw(st.lists(st.sampled_from(("tool", "wait", "callback")), min_size=1, max_size=6))
    names = [f"n{i}" for i in range(len(kinds))]
    nodes: dict[str, Any] = {}
    edges: dict[str, Any] = dict(itertools.pairwise(names))
    fails: dict[str, int] = {}
    actions: dict[tuple[str, int], Action] = {}
    catches: set[str] = set()
    tool_nodes: list[str] = []
    for name, kind in zip(names, kinds, strict=True):
        if kind == "wait":
            nodes[name] = {"wait": {"seconds": draw(st.sampled_from(WAIT_SECONDS))}}
            continue
        retry = {
            "max_attempts": draw(st.integers(1, 3)),
            "interval_seconds": draw(st.sampled_from(INTERVALS)),
        }
        if kind == "tool":
            tool_nodes.append(name)
            fails[name] = draw(st.integers(0, retry["max_attempts"] - 1))
            nodes[name] = {"tool": "d.tag", "retry": retry}
            continue
        spec: dict[str, Any] = {"timeout_seconds": draw(st.sampled_from(TIMEOUTS))}
        node: dict[str, Any] = {"callback": spec, "retry": retry}
        if draw(st.booleans()):
            spec["catch"] = "expired"
            catches.add("expired")
        if draw(st.booleans()):
            node["catch"] = "denied"
            catches.add("denied")
        nodes[name] = node
        for attempt in range(1, retry["max_attempts"] + 2):
            kind_of = draw(st.sampled_from(("approve", "approve", "reject", "timeout")))
            fraction = draw(st.sampled_from((0.0, 0.25, 0.99))) if kind_of != "timeout" else 0.0
            actions[(name, attempt)] = (kind_of, fraction)
    for name in sorted(catches):
        nodes[name] = {"tool": "d.tag"}
    broken: frozenset[str] = frozenset()
    if tool_nodes and draw(st.integers(0, 2)):
        broken = frozenset({draw(st.sampled_from(tool_nodes))})
    definition = {
        "name": "durable",
        "start_node": names[0],
        "nodes": nodes,
        "edges": edges,
        "max_steps": 1000,
    }
    return Scenario(definition, {"fails": fails}, actions, broken, redrive=draw(st.integers(0, 3)) > 0)


def schedule_from(data: st.DataObject, faults: int) -> tuple[Schedule, ApiSchedule]:
    left = [faults]

    def fault_of(choices: tuple[str, ...]) -> str:
        if left[0] <= 0:
            return "ok"
        fault = data.draw(st.sampled_from(("ok", "ok", *choices)), label="fault")
        if fault != "ok":
            left[0] -= 1
        return fault

    def pick(available: int) -> tuple[int, str]:
        index = data.draw(st.integers(0, available - 1), label="message") if available > 1 else 0
        return index, fault_of(FAULTS)

    return pick, lambda: fault_of(API_FAULTS)


# what must hold

COUNTED = (
    "step_started",
    "step_succeeded",
    "step_failed",
    "retry_scheduled",
    "wait_started",
    "callback_waiting",
    "callback_received",
    "run_redriven",
)


def counts(records: list[LogRecord]) -> Counter[tuple[str, int, str | None, int | None]]:
    return Counter((str(r.type), r.step, r.node, r.attempt) for r in records if r.type in COUNTED)


def reference(scenario: Scenario) -> tuple[Run, list[LogRecord]]:
    driver = FaultDriver(scenario)
    run = driver.run()
    return run, driver.service.runs.list_logs(run.run_id, limit=100_000)


def check(driver: FaultDriver, run: Run, expected: tuple[Run, list[LogRecord]]) -> None:
    ref_run, ref_records = expected
    records = driver.service.runs.list_logs(run.run_id, limit=100_000)
    assert len(driver.queue) == 0 and len(driver.timers) == 0
    assert run.status.terminal, f"run left {run.status} at {run.current_node} with nothing in flight"
    assert ref_run.status.terminal
    assert (run.status, run.error, run.current_node, run.position) == (
        ref_run.status,
        ref_run.error,
        ref_run.current_node,
        ref_run.position,
    )
    assert dict(run.state) == dict(ref_run.state)
    assert [r.seq for r in records] == list(range(len(records)))
    assert run.next_seq == len(records)
    seen = counts(records)
    assert not seen or max(seen.values()) == 1, [k for k, v in seen.items() if v > 1]
    assert seen == counts(ref_records), "each step commits once, as without faults"
    assert [str(r.type) for r in records if r.type not in COUNTED] == [
        str(r.type) for r in ref_records if r.type not in COUNTED
    ]


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios(), data=st.data())
def test_durable_runs_end_as_without_faults_under_any_fault_schedule(
    scenario: Scenario, data: st.DataObject
) -> None:
    expected = reference(scenario)
    driver = FaultDriver(scenario)
    schedule, api = schedule_from(data, faults=10)

    run = driver.run(schedule, api)

    check(driver, run, expected)
    event(f"status: {run.status.value}")
    event(f"redriven: {driver.redriven}")
    event(f"crashes: {min(driver.crashes, 3)}")


# every fault at every delivery and every API call of a fixed scenario

FIXED = Scenario(
    definition={
        "name": "review",
        "start_node": "prepare",
        "nodes": {
            "prepare": {"tool": "d.tag", "retry": {"max_attempts": 2, "interval_seconds": DAY}},
            "pause": {"wait": {"seconds": 3 * DAY}},
            "approval": {
                "callback": {"timeout_seconds": DAY, "catch": "expired"},
                "retry": {"max_attempts": 2, "interval_seconds": 10},
            },
            "short": {"wait": {"seconds": 5}},
            "publish": {"tool": "d.tag"},
            "expired": {"tool": "d.tag"},
        },
        "edges": {"prepare": "pause", "pause": "approval", "approval": "short", "short": "publish"},
    },
    state={"fails": {"prepare": 1}},
    actions={("approval", 1): ("reject", 0.5), ("approval", 2): ("approve", 0.25)},
    broken=frozenset({"publish"}),
    redrive=True,
)


def fixed_fault_at(driver: FaultDriver, fault: str, at: int, api_at: int) -> tuple[Schedule, ApiSchedule]:
    def schedule(available: int) -> tuple[int, str]:
        return 0, fault if driver.deliveries == at else "ok"

    def api() -> str:
        return fault if fault in API_FAULTS and driver.api_calls == api_at else "ok"

    return schedule, api


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_at_each_delivery_and_api_call(fault: str) -> None:
    expected = reference(FIXED)
    clean = FaultDriver(FIXED)
    clean.run()
    assert clean.api_calls == 3, "a rejection, an approval, a redrive"
    places = [(at, -1) for at in range(clean.deliveries)]
    if fault in API_FAULTS:
        places += [(-1, api_at) for api_at in range(clean.api_calls)]
    fired = 0
    for at, api_at in places:
        driver = FaultDriver(FIXED)

        run = driver.run(*fixed_fault_at(driver, fault, at, api_at))

        check(driver, run, expected)
        fired += driver.crashes
    if fault in API_FAULTS:
        assert fired >= clean.api_calls, "the fault fired"


def test_the_fixed_scenario_waits_redrives_and_succeeds() -> None:
    run, records = reference(FIXED)

    assert run.status is RunStatus.SUCCEEDED
    assert run.state["path"] == ["prepare", "publish"]
    assert run.state["approval_ok"] == 2
    assert run.state["publish_attempt"] == 2
    types = [str(r.type) for r in records]
    assert types.count("callback_waiting") == 2
    assert types.count("run_redriven") == 1
    assert types.index("run_failed") < types.index("run_redriven")
