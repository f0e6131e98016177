"""Parallel branches and maps under generated faults: the run ends as a fault-free run of the same graph does.

A small model of the SQS FIFO step queue (:class:`FifoQueue`: FIFO within a
message group, a group held while its head is in flight or hidden, a message
not deleted delivered again after the visibility timeout, a send dropped while
a message of the same deduplication id is queued) and a driver that delivers
its messages in an order and with faults a schedule gives:

* ``duplicate``: the message is handled twice;
* ``redeliver``: handled, but not deleted: delivered again after the visibility
  timeout, other groups' messages in between;
* ``race``: between reading the run and committing, the message of another
  group is handled to the end (the step's commit then loses to it);
* ``concurrent_copy``: the same, the other message a copy of this one (SQS
  delivered it again while the first delivery was still running);
* ``crash_tool``: the process dies in the tool;
* ``crash_commit``: it dies in the commit before the run is updated (on
  DynamoDB, after the values and log items were written);
* ``crash_after_commit``: it dies after the commit, before sending a message;
* ``crash_mid_send``: it dies after sending the first of the commit's messages.

A crashed delivery is not deleted: it comes back after the visibility timeout.
Each schedule runs over the in-memory adapters and, with fewer examples, over
the DynamoDB store on moto; the reference is the same graph run without faults
on the in-memory adapters.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.aws.dynamodb import DynamoStore
from engine.aws.s3 import S3BlobStore
from engine.driver import FakeClock
from engine.memory import InMemoryGraphStore, InMemoryRunStore
from engine.model import LogRecord, Run, RunStatus, StepMessage
from engine.ports import GraphStore, RunStore
from engine.registry import ToolContext, ToolRegistry
from engine.service import StepDisposition, WorkflowService
from tests.support.fifo import Entry, FifoQueue
from tests.support.moto_env import REGION, moto_account

VISIBILITY_SECONDS = 30.0
MAX_DELIVERIES = 3000
FAULTS = (
    "duplicate",
    "redeliver",
    "race",
    "concurrent_copy",
    "crash_tool",
    "crash_commit",
    "crash_after_commit",
    "crash_mid_send",
)
CRASHES = ("crash_tool", "crash_commit", "crash_after_commit", "crash_mid_send")


class Crash(BaseException):
    """The process handling a message dies: nothing after this point of the delivery happens."""


@dataclass
class Armed:
    """Faults armed for the delivery being handled; each fires once."""

    tool: bool = False
    commit: bool = False
    after_commit: bool = False
    sends_before_crash: int | None = None
    race: Callable[[], None] | None = None
    inner_commit: Callable[[], None] | None = None
    """Arms the store's own crash inside its commit (the DynamoDB client's ``UpdateItem``); else the commit crashes before it writes."""

    def clear(self) -> None:
        self.tool = self.commit = self.after_commit = False
        self.sends_before_crash = None
        self.race = None


# tools: failures depend on the attempt only, so any delivery order gives the same results


def tools(armed: Armed) -> ToolRegistry:
    registry = ToolRegistry()

    def crash_or_fail(state: dict[str, Any], ctx: ToolContext) -> None:
        if armed.tool:
            armed.tool = False
            raise Crash(f"died in {ctx.node}")
        if ctx.attempt <= state.get("fails", {}).get(ctx.node, 0):
            raise ConnectionError(f"{ctx.node} attempt {ctx.attempt} failed")
        if state.get("doomed") == ctx.node and state.get("doomed_item") in (None, state.get("item_index")):
            raise ValueError(f"{ctx.node} always fails")

    @registry.tool("p.tag")
    def tag(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        crash_or_fail(state, ctx)
        return {"path": [ctx.node], "count": 1, f"{ctx.node}_attempt": ctx.attempt}

    @registry.tool("p.items")
    def items(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        crash_or_fail(state, ctx)
        return {"items": [i * 3 + 1 for i in range(int(state["n"]))]}

    @registry.tool("p.acc")
    def acc(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        crash_or_fail(state, ctx)
        return {"acc": state.get("acc", state["item"]) * 2 + 1, "total": state["item"]}

    return registry


# the queue and the driver


def crash_at_armed_send(armed: Armed) -> Callable[[], None]:
    """The queue's send hook: die at the send ``armed.sends_before_crash`` counts down to."""

    def before_send() -> None:
        if armed.sends_before_crash is not None:
            if armed.sends_before_crash == 0:
                armed.sends_before_crash = None
                raise Crash("died while sending")
            armed.sends_before_crash -= 1

    return before_send


class FaultyRuns:
    """A run store whose commit can crash before it writes, after it wrote, or let another message in first."""

    def __init__(self, inner: RunStore, armed: Armed) -> None:
        self.inner = inner
        self.armed = armed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def commit(self, run: Run, changes: Any, records: list[LogRecord]) -> Run:
        armed = self.armed
        if armed.race is not None:
            race, armed.race = armed.race, None
            race()
        if armed.commit:
            armed.commit = False
            if armed.inner_commit is None:
                raise Crash("died in the commit")
            armed.inner_commit()
        committed = self.inner.commit(run, changes, records)
        if armed.after_commit:
            armed.after_commit = False
            raise Crash("died after the commit")
        return committed


Schedule = Callable[[int], tuple[int, str]]
"""Given how many messages may be received now, which one and with which fault (``ok`` for none)."""


class FaultDriver:
    def __init__(
        self,
        registry: ToolRegistry,
        armed: Armed,
        *,
        runs: RunStore | None = None,
        graphs: GraphStore | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.armed = armed
        self.queue = FifoQueue(self.clock, crash_at_armed_send(armed))
        self.service = WorkflowService(
            graphs=graphs or InMemoryGraphStore(),
            runs=FaultyRuns(runs or InMemoryRunStore(), armed),
            queue=self.queue,
            registry=registry,
            clock=self.clock,
            rng=lambda: 1.0,
        )
        self.deliveries = 0
        self.crashes = 0
        self.races = 0

    def run(self, definition: dict[str, Any], state: dict[str, Any], schedule: Schedule) -> Run:
        graph_id = self.service.create_graph(definition).graph_id
        run = self.service.start_run(graph_id, state)
        while len(self.queue):
            heads = self.queue.heads()
            if not heads:
                due = self.queue.next_visible()
                assert due is not None, "every queued message is in flight with nothing running"
                self.clock.now = max(self.clock.now, due)
                continue
            index, fault = schedule(len(heads))
            self.deliver(heads[index], fault)
            assert self.deliveries < MAX_DELIVERIES, "the run does not settle"
        return self.service.runs.get_run(run.run_id)

    def deliver(self, entry: Entry, fault: str) -> None:
        self.deliveries += 1
        entry.in_flight = True
        self._arm(entry, fault)
        try:
            result = self.service.run_step(entry.message)
            if fault == "duplicate":
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

    def _arm(self, entry: Entry, fault: str) -> None:
        armed = self.armed
        if fault == "crash_tool":
            armed.tool = True
        elif fault == "crash_commit":
            armed.commit = True
        elif fault == "crash_after_commit":
            armed.sends_before_crash = 0
        elif fault == "crash_mid_send":
            armed.sends_before_crash = 1
        elif fault == "race":

            def other() -> None:
                others = [e for e in self.queue.heads() if e is not entry]
                if others:
                    self.races += 1
                    self.deliver(others[0], "ok")

            armed.race = other
        elif fault == "concurrent_copy":

            def copy() -> None:
                self.races += 1
                self.service.run_step(entry.message)

            armed.race = copy


def in_order(available: int) -> tuple[int, str]:
    return 0, "ok"


# graphs


@dataclass
class Scenario:
    definition: dict[str, Any]
    state: dict[str, Any]
    join: str
    fails_for_good: bool = False
    joins: int = 1
    """``joined`` records of a run that succeeds (a map over an empty list has none)."""
    expected: dict[str, Any] = field(default_factory=dict)
    """State keys whose values follow from the graph alone (checked besides the reference)."""


def parallel_scenario(
    lengths: list[int],
    fails: list[list[int]],
    *,
    doomed: int | None = None,
    catch: bool = False,
    short_retries: bool = False,
) -> Scenario:
    """``split`` fans out to branches ``b{i}`` of ``lengths[i]`` nodes, joined at ``merge``.

    Node ``j`` of branch ``i`` fails its first ``fails[i][j]`` attempts; its
    retry policy allows them all. With ``doomed`` the first node of that branch
    always fails; with ``catch`` the fan-out node catches it at ``recover``.
    """
    nodes: dict[str, Any] = {"split": "p.tag", "merge": "p.tag"}
    edges: dict[str, Any] = {"merge": "__end__"}
    starts = []
    failing: dict[str, int] = {}
    for i, length in enumerate(lengths):
        names = [f"b{i}" if j == 0 else f"b{i}_{j}" for j in range(length)]
        starts.append(names[0])
        for j, (name, there) in enumerate(zip(names, [*names[1:], "merge"], strict=True)):
            attempts = fails[i][j]
            failing[name] = attempts
            retry = {"max_attempts": attempts + 1, "interval_seconds": 0 if short_retries else 5}
            nodes[name] = {"tool": "p.tag", "retry": retry}
            edges[name] = there
    edges["split"] = {"parallel": starts, "join": "merge"}
    if catch:
        nodes["split"] = {"tool": "p.tag", "catch": "recover"}
        nodes["recover"] = "p.tag"
        edges["recover"] = "__end__"
    state: dict[str, Any] = {"fails": failing}
    if doomed is not None:
        state["doomed"] = starts[doomed]
    definition = {
        "name": "par",
        "start_node": "split",
        "nodes": nodes,
        "edges": edges,
        "reducers": {"path": "extend", "count": "sum"},
    }
    expected: dict[str, Any] = {}
    if doomed is None:
        expected = {"path": ["merge"], "count": 1, "split_attempt": 1}
        for i, length in enumerate(lengths):
            for j in range(length):
                name = f"b{i}" if j == 0 else f"b{i}_{j}"
                expected[f"{name}_attempt"] = fails[i][j] + 1
    return Scenario(definition, state, "merge", fails_for_good=doomed is not None, expected=expected)


def map_scenario(
    n: int,
    length: int,
    max_concurrency: int,
    fails: list[int],
    *,
    doomed_item: int | None = None,
    catch: bool = False,
) -> Scenario:
    """``make`` puts ``n`` items in the state; ``m0 .. m{length-1}`` run per item; ``done`` joins."""
    names = [f"m{j}" for j in range(length)]
    nodes: dict[str, Any] = {
        "make": {"tool": "p.items", "catch": "recover"} if catch else "p.items",
        "done": "p.tag",
    }
    edges: dict[str, Any] = {
        "make": {
            "map": {
                "items": "items",
                "start": names[0],
                "join": "done",
                "max_concurrency": max_concurrency,
                "collect": {"acc": "accs"},
            }
        },
        "done": "__end__",
    }
    for j, (name, there) in enumerate(zip(names, [*names[1:], "done"], strict=True)):
        nodes[name] = {"tool": "p.acc", "retry": {"max_attempts": fails[j] + 1, "interval_seconds": 2}}
        edges[name] = there
    if catch:
        nodes["recover"] = "p.tag"
        edges["recover"] = "__end__"
    state: dict[str, Any] = {"n": n, "fails": dict(zip(names, fails, strict=True))}
    if doomed_item is not None:
        state.update(doomed=names[0], doomed_item=doomed_item)
    definition = {
        "name": "map",
        "start_node": "make",
        "nodes": nodes,
        "edges": edges,
        "reducers": {"total": "sum"},
        "max_steps": 10_000,
    }
    expected: dict[str, Any] = {}
    if doomed_item is None:
        items = [i * 3 + 1 for i in range(n)]
        accs = []
        for item in items:
            value = item
            for _ in range(length):
                value = value * 2 + 1
            accs.append(value)
        expected = {"accs": accs, "path": ["done"]}
        if items:
            expected["total"] = sum(items)
    return Scenario(
        definition,
        state,
        "done",
        fails_for_good=doomed_item is not None,
        joins=1 if n else 0,
        expected=expected,
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    if draw(st.booleans()):
        width = draw(st.integers(1, 4))
        lengths = [draw(st.integers(1, 3)) for _ in range(width)]
        fails = [[draw(st.integers(0, 2)) for _ in range(n)] for n in lengths]
        doomed = draw(st.none() | st.integers(0, width - 1))
        return parallel_scenario(lengths, fails, doomed=doomed, catch=draw(st.booleans()))
    n = draw(st.integers(0, 8))
    length = draw(st.integers(1, 3))
    fails = [draw(st.integers(0, 2)) for _ in range(length)]
    doomed_item = draw(st.none() | st.integers(0, n - 1)) if n else None
    return map_scenario(
        n, length, draw(st.integers(1, 4)), fails, doomed_item=doomed_item, catch=draw(st.booleans())
    )


def schedule_from(data: st.DataObject, faults: int) -> Schedule:
    """Draws, per delivery, which of the receivable messages comes next and its fault (at most ``faults`` of them)."""
    left = [faults]

    def pick(available: int) -> tuple[int, str]:
        index = data.draw(st.integers(0, available - 1), label="message")
        fault = "ok"
        if left[0] > 0:
            fault = data.draw(st.sampled_from(("ok", "ok", *FAULTS)), label="fault")
            if fault != "ok":
                left[0] -= 1
        return index, fault

    return pick


# what must hold


def reference(scenario: Scenario) -> tuple[Run, list[LogRecord]]:
    driver = FaultDriver(tools(Armed()), Armed())
    run = driver.run(scenario.definition, scenario.state, in_order)
    return run, driver.service.runs.list_logs(run.run_id, limit=100_000)


COUNTED = ("step_started", "step_succeeded", "step_failed", "branch_succeeded", "branch_failed", "joined")


def counts(records: list[LogRecord]) -> Counter[tuple[str, str | None, str | None, int | None]]:
    return Counter((str(r.type), r.branch, r.node, r.attempt) for r in records if r.type in COUNTED)


def check(driver: FaultDriver, run: Run, scenario: Scenario, expected: tuple[Run, list[LogRecord]]) -> None:
    ref_run, ref_records = expected
    records = driver.service.runs.list_logs(run.run_id, limit=100_000)
    assert len(driver.queue) == 0
    assert run.status.terminal, f"run left {run.status} with nothing in flight"
    assert run.status is ref_run.status
    assert run.error == ref_run.error
    assert dict(run.state) == dict(ref_run.state)
    for key, value in scenario.expected.items():
        assert run.state[key] == value, key
    assert [r.seq for r in records] == list(range(len(records)))
    assert run.next_seq == len(records)
    assert [str(r.type) for r in records].count(str(records[-1].type)) == 1
    assert records[-1].type in ("run_succeeded", "run_failed")
    seen = counts(records)
    assert max(seen.values()) == 1, [k for k, v in seen.items() if v > 1]
    assert max(counts(ref_records).values()) == 1
    if scenario.fails_for_good:
        assert ref_run.status is RunStatus.FAILED or ref_run.state.get("recover_attempt") == 1
        assert seen[("joined", None, scenario.join, None)] == 0
    else:
        assert run.status is RunStatus.SUCCEEDED
        assert seen == counts(ref_records), "each branch step commits once, the join fires once"
        assert sum(1 for r in records if r.type == "joined") == scenario.joins


# the property, on the in-memory adapters


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios(), data=st.data())
def test_parallel_runs_end_as_without_faults_under_any_fault_schedule(
    scenario: Scenario, data: st.DataObject
) -> None:
    expected = reference(scenario)
    armed = Armed()
    driver = FaultDriver(tools(armed), armed)

    run = driver.run(scenario.definition, scenario.state, schedule_from(data, faults=12))

    check(driver, run, scenario, expected)
    event(f"crashes: {driver.crashes if driver.crashes < 3 else '3 or more'}")
    event(f"races: {'some' if driver.races else 'none'}")


# every crash point at every delivery of a fault-free run, branch steps and the join included

FIXED = {
    "parallel": parallel_scenario([2, 1, 3], [[0, 1], [2], [0, 0, 1]]),
    "parallel-catch": parallel_scenario([1, 2], [[0], [1, 0]], doomed=1, catch=True),
    "map": map_scenario(5, 2, 2, [1, 0]),
    "map-doomed": map_scenario(4, 1, 3, [0], doomed_item=2),
}


def deliveries_of(scenario: Scenario) -> int:
    driver = FaultDriver(tools(Armed()), Armed())
    driver.run(scenario.definition, scenario.state, in_order)
    return driver.deliveries


def fault_at(driver: FaultDriver, fault: str, at: int) -> Schedule:
    """The first receivable message each time; ``fault`` on delivery number ``at``."""

    def schedule(available: int) -> tuple[int, str]:
        return 0, fault if driver.deliveries == at else "ok"

    return schedule


def each_delivery(scenario: Scenario, fault: str, new_driver: Callable[[], FaultDriver]) -> int:
    """Run ``scenario`` once per delivery of its fault-free run, ``fault`` at that delivery; how often it fired."""
    expected = reference(scenario)
    total = deliveries_of(scenario)
    assert total >= 5
    fired = 0
    for at in range(total):
        driver = new_driver()

        run = driver.run(scenario.definition, scenario.state, fault_at(driver, fault, at))

        check(driver, run, scenario, expected)
        fired += driver.crashes + driver.races
        if fault in CRASHES or fault in ("duplicate", "redeliver"):
            assert driver.deliveries >= total
    return fired


@pytest.mark.parametrize("name", sorted(FIXED))
@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_at_each_delivery(name: str, fault: str) -> None:
    def new_driver() -> FaultDriver:
        armed = Armed()
        return FaultDriver(tools(armed), armed)

    fired = each_delivery(FIXED[name], fault, new_driver)

    if fault in CRASHES or fault in ("race", "concurrent_copy"):
        assert fired > 0, "the fault never fired"


def test_a_crash_in_the_join_commit_is_redelivered_and_joins_once() -> None:
    scenario = parallel_scenario([1, 1], [[0], [0]])
    expected = reference(scenario)
    armed = Armed()
    driver = FaultDriver(tools(armed), armed)
    crashed: list[StepMessage] = []

    def schedule(available: int) -> tuple[int, str]:
        heads = driver.queue.heads()
        run = driver.service.runs.get_run(heads[0].message.run_id)
        last = run.fanout is not None and len(run.fanout.running) == 1
        if last and heads[0].message.branch is not None and not crashed:
            crashed.append(heads[0].message)
            return 0, "crash_commit"
        return 0, "ok"

    run = driver.run(scenario.definition, scenario.state, schedule)

    assert crashed, "the join's delivery crashed"
    check(driver, run, scenario, expected)


# the same property on the DynamoDB store (moto)


class CrashingClient:
    """A DynamoDB client whose next ``UpdateItem`` dies once armed: the values and log items are written, the run item is not."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.crash_next_update = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **kwargs: Any) -> Any:
        if self.crash_next_update:
            self.crash_next_update = False
            raise Crash("died before the run item's update")
        return self._client.update_item(**kwargs)


@pytest.fixture(scope="module")
def dynamo() -> Iterator[tuple[DynamoStore, CrashingClient]]:
    with pytest.MonkeyPatch.context() as monkeypatch, moto_account(monkeypatch) as env:
        client = CrashingClient(env.dynamodb)
        store = DynamoStore(
            client,  # type: ignore[arg-type]
            env.resources.table_name,
            blobs=S3BlobStore(boto3.client("s3", region_name=REGION), env.resources.bucket),
        )
        yield store, client


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios(), data=st.data())
def test_parallel_runs_on_dynamodb_end_as_without_faults(
    dynamo: tuple[DynamoStore, CrashingClient], scenario: Scenario, data: st.DataObject
) -> None:
    store, client = dynamo
    expected = reference(scenario)
    armed = Armed()

    def crash_in_update() -> None:
        client.crash_next_update = True

    armed.inner_commit = crash_in_update
    driver = FaultDriver(tools(armed), armed, runs=store, graphs=store)

    run = driver.run(scenario.definition, scenario.state, schedule_from(data, faults=8))

    client.crash_next_update = False
    check(driver, run, scenario, expected)


@pytest.mark.parametrize("fault", ["crash_commit", "race", "concurrent_copy", "crash_after_commit"])
def test_each_fault_at_each_delivery_on_dynamodb(
    dynamo: tuple[DynamoStore, CrashingClient], fault: str
) -> None:
    store, client = dynamo

    def new_driver() -> FaultDriver:
        client.crash_next_update = False
        armed = Armed()
        armed.inner_commit = lambda: setattr(client, "crash_next_update", True)
        return FaultDriver(tools(armed), armed, runs=store, graphs=store)

    assert each_delivery(FIXED["parallel"], fault, new_driver) > 0
