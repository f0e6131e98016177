"""The use cases: create and delete graphs, start runs, execute one step, read runs and logs, cancel, delete.

Ownership. Every use case a caller drives takes the caller's ``owner`` (the
principal the API authenticated). Graphs and runs record their owner; reading,
listing, versioning, cancelling, subscribing and idempotency keys are scoped to
it, and another owner's graph or run is reported as absent
(:class:`GraphNotFoundError`, :class:`RunNotFoundError`), so its existence is not
disclosed. Records without an owner (written before owners existed) belong to
nobody. Graph ids are global: creating a graph under an id another owner holds
is a :class:`ConflictError`. Tools are global. Executing steps (``run_step``,
``fail_run``) is internal and needs no owner. ``owner`` defaults to
:data:`LOCAL_OWNER` for in-process use (the driver, benchmarks, tests); the
handlers always pass the caller.

The service holds no AWS code. The handlers wire it to ``engine.aws`` adapters;
tests, benchmarks and the in-process driver wire it to ``engine.memory``.
"""

from __future__ import annotations

import hmac
import json
import random
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from engine.attempt import execute_step, run_tool
from engine.errors import (
    BadRequestError,
    CallbackExpiredError,
    CallbackNotFoundError,
    CallbackUsedError,
    GraphNotFoundError,
    PayloadTooLargeError,
    RunActiveError,
    RunFinishedError,
    RunNotFoundError,
    RunNotRedrivableError,
    StaleStepError,
    TooDeepError,
)
from engine.fanout import branch_message, branch_view, decide_branch, running_messages
from engine.graph import Graph
from engine.limits import MAX_STATE_DEPTH, check_state, json_depth, state_bytes, updated_state_bytes
from engine.model import (
    DeliveryNote,
    DeliveryProblem,
    GraphRecord,
    LogRecord,
    LogType,
    Run,
    RunChanges,
    RunError,
    RunStatus,
    StepMessage,
)
from engine.ports import GraphStore, GraphTriggers, LogSink, RunStore, StepQueue, StepTimers
from engine.registry import ToolRegistry
from engine.runner import IN_PROCESS, ForkRunner, ToolRunner
from engine.step import Clock, CompiledGraph, StepOutcome, json_problem, needs_draw, run_timed_out
from engine.triggers import TriggerEvent
from engine.validation import validate_graph
from engine.waits import (
    closed_callbacks,
    digest_of,
    redrive,
    resolved,
    start_callback,
    start_wait,
    wake_message,
)
from engine.waits import woken as woken_outcome

PublishErrorHook = Callable[[Run, Exception], None]

LOCAL_OWNER = "local"
"""The owner of what in-process callers create when they name none."""
COMMIT_RETRIES = 5
MAX_CALLBACK_DATA_BYTES = 256 * 1024
"""The most JSON a callback's ``data`` may hold."""
LONG_DELAY_SECONDS = 900.0
"""A message due further ahead than this goes to the timers (SQS delays a message at most 15 minutes)."""
BRANCH_COMMIT_RETRIES = 50
"""How often a branch step decides again after losing its commit to a sibling's before it gives the message back."""
WATCHDOG_GRACE_SECONDS = 5.0
"""How long after an inline run's budget its watchdog message is due.

Past the API function's timeout (the budget is at most its time left minus
2 s), so a live request never races its own watchdog.
"""
STEP_MARGIN_SECONDS = 2.0
"""Time a step keeps, beyond its tool's limit, to commit and enqueue before the invocation ends."""
STEP_START_SECONDS = 1.0
"""Time an invocation may spend before its first record (reading it, the batch processor)."""


def max_node_timeout(function_timeout_seconds: float) -> float:
    """The longest ``timeout_seconds`` a node may have under a step function of this timeout."""
    return function_timeout_seconds - STEP_MARGIN_SECONDS - STEP_START_SECONDS


class StepDisposition(StrEnum):
    COMMITTED = "committed"
    WAITING = "waiting"  # the run waits at this position for a timer or a callback; its wake-up is scheduled
    SCHEDULED = "scheduled"  # a message due far ahead was handed to the timers instead of being held
    LOST_RACE = "lost_race"  # another worker committed this position first
    STALE = "stale"  # the message is behind the run; the current position was re-sent
    FINISHED = "finished"  # the run is terminal
    DEFERRED = "deferred"  # a retry whose delay has not passed yet
    HANDED_BACK = "handed_back"  # too little of the invocation's time left for the node; not run


class DeadLetterDisposition(StrEnum):
    FAILED = "failed"  # the message was the run's current position: the run is FAILED
    STALE = "stale"  # the run is elsewhere: the message is a stale duplicate
    FINISHED = "finished"  # the run already ended
    MISSING = "missing"  # no such run (its start never completed)


@dataclass(frozen=True)
class DeadLetterResult:
    disposition: DeadLetterDisposition
    run: Run | None = None
    error: RunError | None = None


@dataclass(frozen=True)
class StepResult:
    disposition: StepDisposition
    run: Run
    records: tuple[LogRecord, ...] = ()
    next_message: StepMessage | None = None
    defer_seconds: float = 0.0
    reason: str = ""
    more: tuple[StepMessage, ...] = ()
    """Messages sent besides ``next_message`` (the branches a fan-out started, re-sent branch messages)."""

    @property
    def messages(self) -> list[StepMessage]:
        return [self.next_message, *self.more] if self.next_message is not None else list(self.more)


def new_id() -> str:
    return uuid.uuid4().hex


class WorkflowService:
    def __init__(
        self,
        *,
        graphs: GraphStore,
        runs: RunStore,
        queue: StepQueue,
        registry: ToolRegistry,
        sink: LogSink | None = None,
        clock: Clock = time.time,
        rng: Callable[[], float] = random.random,
        ids: Callable[[], str] = new_id,
        isolated_runner: ToolRunner | None = None,
        max_node_timeout_seconds: float | None = None,
        on_publish_error: PublishErrorHook | None = None,
        timers: StepTimers | None = None,
        triggers: GraphTriggers | None = None,
    ) -> None:
        """``isolated_runner`` runs the tools of isolated steps (default :class:`ForkRunner`).

        ``max_node_timeout_seconds`` bounds the nodes' ``timeout_seconds`` at graph
        creation (the step function's budget); ``None`` leaves the graph model's
        own bound. ``on_publish_error`` hears of a failed publish to subscribers,
        which never fails a committed step. ``timers`` hold the messages due more
        than :data:`LONG_DELAY_SECONDS` ahead (waits, callback time-outs, long
        retry delays); without them such messages go to the queue, whose
        consumer holds them back itself. ``triggers`` hold the schedules of the
        graphs' ``triggers``; without them a graph's triggers are stored and
        nothing fires them.
        """
        self.graphs = graphs
        self.runs = runs
        self.queue = queue
        self.registry = registry
        self.sink = sink
        self.clock = clock
        self.rng = rng
        self.ids = ids
        self.isolated_runner = isolated_runner if isolated_runner is not None else ForkRunner()
        self.max_node_timeout_seconds = max_node_timeout_seconds
        self.on_publish_error = on_publish_error
        self.timers = timers
        self.triggers = triggers
        self._compiled: dict[tuple[str, int], CompiledGraph] = {}

    # graphs

    def validate(self, raw: Any) -> Graph:
        return validate_graph(raw, self.registry, max_node_timeout=self.max_node_timeout_seconds)

    def create_graph(self, raw: Any, graph_id: str | None = None, *, owner: str = LOCAL_OWNER) -> GraphRecord:
        """Validate and store a new graph of ``owner`` at version 1."""
        record = GraphRecord(
            graph_id=graph_id or self.ids(),
            version=1,
            definition=self.validate(raw),
            created_at=self.clock(),
            owner=owner,
        )
        self.graphs.put_graph(record)
        self._sync_triggers(record.graph_id, None, record.definition)
        return record

    def add_graph_version(self, graph_id: str, raw: Any, *, owner: str = LOCAL_OWNER) -> GraphRecord:
        """Store a new version of an existing graph of ``owner``; runs already started keep theirs."""
        latest = self.get_graph(graph_id, owner=owner)
        record = GraphRecord(
            graph_id=graph_id,
            version=latest.version + 1,
            definition=self.validate(raw),
            created_at=self.clock(),
            owner=owner,
        )
        self.graphs.put_graph(record)
        self._sync_triggers(graph_id, latest.definition, record.definition)
        return record

    def get_graph(
        self, graph_id: str, version: int | None = None, *, owner: str = LOCAL_OWNER
    ) -> GraphRecord:
        """The graph version if ``owner`` owns the graph; :class:`GraphNotFoundError` otherwise."""
        return self._owned_graph(graph_id, version, owner)

    def _owned_graph(self, graph_id: str, version: int | None, owner: str) -> GraphRecord:
        record = self.graphs.get_graph(graph_id, version)
        if record.owner != owner:
            raise GraphNotFoundError(f"no graph {graph_id!r}", graph_id=graph_id)
        return record

    def list_graphs(self, limit: int = 100, *, owner: str = LOCAL_OWNER) -> list[GraphRecord]:
        return self.graphs.list_graphs(owner, limit)

    def list_runs(
        self,
        limit: int = 50,
        *,
        status: RunStatus | None = None,
        graph_id: str | None = None,
        owner: str = LOCAL_OWNER,
    ) -> list[Run]:
        """``owner``'s runs, newest first, without their states."""
        return self.runs.list_runs(
            owner, limit=limit, status=status.value if status is not None else None, graph_id=graph_id
        )

    def delete_graph(self, graph_id: str, *, owner: str = LOCAL_OWNER) -> int:
        """Delete every version of a graph; return how many there were.

        Runs that ended stay readable. A run still going fails at its next step
        with ``GraphDeleted``, unless the service that runs the step compiled the
        graph before the delete (:meth:`compiled` caches per process).
        """
        latest = self._owned_graph(graph_id, None, owner)
        deleted = self.graphs.delete_graph(graph_id)
        for key in [k for k in self._compiled if k[0] == graph_id]:
            del self._compiled[key]
        self._sync_triggers(graph_id, latest.definition, None)
        return deleted

    # triggers

    def _sync_triggers(self, graph_id: str, before: Graph | None, after: Graph | None) -> None:
        """Make the trigger schedules those of ``after`` (``None``: the graph is gone), replacing those of ``before``.

        A trigger the same in both is left alone (its ``rate()`` keeps its rhythm);
        the indices ``after`` no longer has are removed.
        """
        if self.triggers is None:
            return
        old = before.triggers if before is not None else []
        new = after.triggers if after is not None else []
        for index, spec in enumerate(new):
            if index < len(old) and old[index] == spec:
                continue
            event = TriggerEvent(graph_id=graph_id, trigger=index, initial_state=spec.initial_state)
            self.triggers.put(event, spec.schedule)
        for index in range(len(new), len(old)):
            self.triggers.remove(graph_id, index)

    def start_triggered_run(self, event: TriggerEvent) -> Run | None:
        """Start a run of ``event.graph_id``'s latest version for its owner, as a trigger asks.

        A firing of a trigger the latest version no longer has starts nothing
        (``None``). A repeated delivery (the same :meth:`TriggerEvent.key`)
        returns the run the first one started. A graph without an owner, or no
        graph, is :class:`GraphNotFoundError`.
        """
        record = self.graphs.get_graph(event.graph_id)
        if record.owner is None:
            raise GraphNotFoundError(
                f"graph {event.graph_id!r} has no owner to run it", graph_id=event.graph_id
            )
        if event.trigger is not None and event.trigger >= len(record.definition.triggers):
            return None
        return self.start_run(
            record.graph_id,
            event.initial_state,
            idempotency_key=event.key(),
            version=record.version,
            owner=record.owner,
        )

    def compiled(self, graph_id: str, version: int) -> CompiledGraph:
        """The compiled graph of a version, cached: versions never change."""
        key = (graph_id, version)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = CompiledGraph(self.graphs.get_graph(graph_id, version).definition)
            self._compiled[key] = compiled
        return compiled

    # runs

    def start_run(
        self,
        graph_id: str,
        initial_state: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        version: int | None = None,
        enqueue: bool = True,
        watchdog_at: float | None = None,
        owner: str = LOCAL_OWNER,
    ) -> Run:
        """Create a run at its start node and enqueue its first step.

        The first message is sent before the run is stored: if the process dies in
        between, the message finds no run and ends in the DLQ, and nothing is
        left half started. With ``watchdog_at`` that message is an inline run's
        watchdog, due then. An ``idempotency_key`` ``owner`` used before returns
        that run; the same key from another owner starts a run of its own.
        Everything is checked before the message is sent, ``initial_state``
        against :mod:`engine.limits` included: a start refused sends nothing.
        """
        if initial_state is not None and not isinstance(initial_state, dict):
            raise BadRequestError("initial_state must be a JSON object")
        check_state(initial_state or {})
        if idempotency_key:
            existing = self.runs.find_run_by_idempotency_key(owner, idempotency_key)
            if existing is not None:
                return existing
        record = self._owned_graph(graph_id, version, owner)
        if (record.graph_id, record.version) not in self._compiled:
            self._compiled[(record.graph_id, record.version)] = CompiledGraph(record.definition)
        now = self.clock()
        run = Run(
            run_id=self.ids(),
            graph_id=record.graph_id,
            graph_version=record.version,
            state=dict(initial_state or {}),
            state_bytes=state_bytes(initial_state or {}),
            current_node=record.definition.start_node,
            next_seq=1,
            created_at=now,
            updated_at=now,
            idempotency_key=idempotency_key,
            owner=owner,
        )
        started = LogRecord(
            run_id=run.run_id,
            seq=0,
            ts=now,
            type=LogType.RUN_STARTED,
            step=0,
            node=run.current_node,
            message=f"run of {record.definition.name} v{record.version} started at {run.current_node}",
            data={"graph_id": record.graph_id, "graph_version": record.version},
        )
        if watchdog_at is not None:
            self.queue.send(StepMessage(run_id=run.run_id, step=0, not_before=watchdog_at, watchdog=True))
        elif enqueue:
            self.queue.send(StepMessage(run_id=run.run_id, step=0))
        return self.runs.create_run(run, [started])

    def get_run(self, run_id: str, *, owner: str = LOCAL_OWNER) -> Run:
        """The run if ``owner`` started it; :class:`RunNotFoundError` otherwise."""
        run = self.runs.get_run(run_id)
        if run.owner != owner:
            raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id)
        return run

    def delete_run(self, run_id: str, *, owner: str = LOCAL_OWNER) -> None:
        """Delete a run that ended, with its log; :class:`RunActiveError` if it has not."""
        run = self.get_run(run_id, owner=owner)
        if not run.status.terminal:
            raise RunActiveError(f"run {run_id} is {run.status}; cancel it first", run_id=run_id)
        self.runs.delete_run(run_id)

    def require_run_owner(self, run_id: str, owner: str) -> None:
        """:class:`RunNotFoundError` unless the run exists and ``owner`` started it (reads no state)."""
        if self.runs.get_run_owner(run_id) != owner:
            raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id)

    def list_logs(
        self, run_id: str, after: int = -1, limit: int = 1000, *, owner: str = LOCAL_OWNER
    ) -> list[LogRecord]:
        self.require_run_owner(run_id, owner)
        return self.runs.list_logs(run_id, after, limit)

    def run_step(
        self,
        message: StepMessage,
        *,
        isolate: bool = False,
        time_left: float | None = None,
        receives: int | None = None,
        send_next: bool = True,
    ) -> StepResult:
        """Execute the step a message names, if it is still the run's current one.

        ``send_next`` sends the messages a commit asks for (``False``: the caller
        handles :attr:`StepResult.messages` itself, as an inline run does).

        ``isolate`` runs the tool with :attr:`isolated_runner` and first notes on
        the run that the attempt started (``receives`` is the message's delivery
        count), so the DLQ can tell what happened if the invocation dies.
        ``time_left`` is what remains of the invocation (seconds): a node whose
        ``timeout_seconds`` plus :data:`STEP_MARGIN_SECONDS` does not fit is not
        run but HANDED_BACK (and noted on the run); an isolated tool's limit is
        also bounded by it.

        Duplicates and stale messages do no work. A message behind the run
        re-sends the run's current message: if the worker that committed it died
        before enqueueing, or an inline run's process died (its watchdog message
        arrives), the run goes on. The FIFO queue drops the copy if the original
        was sent, and a copy that gets through is itself stale once processed. A message or run whose ``not_before`` lies ahead
        is deferred: the consumer hands it back for later.
        """
        run = self.runs.get_run(message.run_id)
        if run.status.terminal:
            return StepResult(StepDisposition.FINISHED, run)
        now = self.clock()
        if message.not_before is not None and message.not_before > now:
            if self.timers is not None and message.not_before - now > LONG_DELAY_SECONDS:
                self.timers.schedule(message)
                return StepResult(StepDisposition.SCHEDULED, run, defer_seconds=message.not_before - now)
            return StepResult(StepDisposition.DEFERRED, run, defer_seconds=message.not_before - now)
        if message.branch is not None:
            return self._run_branch(
                run, message, isolate=isolate, time_left=time_left, receives=receives, send_next=send_next
            )
        if run.fanout is not None:
            return self._stale(run, running_messages(run))
        if message.position != run.position:
            resend = []
            if message.position < run.position:
                resend = [self._current_message(run)]
            return self._stale(run, resend)
        return self._execute(
            run,
            send_next=send_next,
            isolate=isolate,
            time_left=time_left,
            receives=receives,
            woken=message.timer,
        )

    def _send(self, message: StepMessage) -> None:
        """Queue ``message``, or hand it to the timers if it is due more than :data:`LONG_DELAY_SECONDS` ahead."""
        if (
            self.timers is not None
            and message.not_before is not None
            and message.not_before - self.clock() > LONG_DELAY_SECONDS
        ):
            self.timers.schedule(message)
        else:
            self.queue.send(message)

    @staticmethod
    def _current_message(run: Run) -> StepMessage:
        return StepMessage(run_id=run.run_id, step=run.step, attempt=run.attempt, not_before=run.not_before)

    def _stale(self, run: Run, resend: list[StepMessage]) -> StepResult:
        """A message behind the run: re-send ``resend`` (the run's current messages it may have lost)."""
        for message in resend:
            self._send(message)
        first = resend[0] if resend else None
        return StepResult(StepDisposition.STALE, run, next_message=first, more=tuple(resend[1:]))

    def _run_branch(
        self,
        run: Run,
        message: StepMessage,
        *,
        isolate: bool,
        time_left: float | None,
        receives: int | None,
        send_next: bool = True,
    ) -> StepResult:
        """A branch's message: execute it if the run's fan-out holds that branch at that position.

        A message of a fan-out that has joined re-sends the run's current
        message (the join's may be the one lost); of a branch that arrived, the
        messages of branches not yet begun (the arrival may have started one);
        of a branch that moved on, that branch's current message.
        """
        fanout = run.fanout
        if fanout is None:
            return self._stale(run, [self._current_message(run)])
        if fanout.step != message.fanout:
            return self._stale(run, [])
        assert message.branch is not None
        branch = fanout.running.get(str(message.branch))
        if branch is None:
            return self._stale(run, [m for m in running_messages(run) if m.position == (0, 1)])
        if message.position != branch.position:
            behind = message.position < branch.position
            return self._stale(run, [branch_message(run.run_id, fanout, branch)] if behind else [])
        return self._execute_branch(
            run, message.branch, isolate=isolate, time_left=time_left, receives=receives, send_next=send_next
        )

    def _execute_branch(
        self,
        run: Run,
        index: int,
        *,
        isolate: bool,
        time_left: float | None,
        receives: int | None,
        send_next: bool = True,
    ) -> StepResult:
        """Run branch ``index``'s node and commit what follows, deciding again after a sibling's commit."""
        assert run.fanout is not None
        branch = run.fanout.running[str(index)]
        now = self.clock()
        if branch.not_before is not None and branch.not_before > now:
            return StepResult(StepDisposition.DEFERRED, run, defer_seconds=branch.not_before - now)
        try:
            compiled = self.compiled(run.graph_id, run.graph_version)
        except GraphNotFoundError:
            return self._graph_gone(run)
        view = branch_view(compiled, run, index)
        budget = self._tool_budget(
            compiled, view, isolate=isolate, time_left=time_left, receives=receives, note=False
        )
        if isinstance(budget, StepResult):
            return budget
        tool_time, runner = budget
        started = self.clock()
        timed_out = run_timed_out(compiled, view, started)
        if timed_out is not None:
            return self._commit(run, timed_out, send_next=send_next)
        key = f"{run.run_id}:{run.fanout.step}:{index}:{branch.step}"
        done = run_tool(
            compiled, view, self.registry, runner=runner, time_left=tool_time, idempotency_key=key
        )
        finished = self.clock()
        draw = self.rng() if needs_draw(compiled, view) else 1.0
        for _ in range(BRANCH_COMMIT_RETRIES):
            outcome = decide_branch(
                compiled,
                run,
                index,
                done.result,
                started=started,
                now=finished,
                duration_ms=done.duration_ms,
                draw=draw,
            )
            try:
                committed = self.runs.commit(run, outcome.changes, outcome.records)
            except StaleStepError:
                run = self.runs.get_run(run.run_id)
                fanout = run.fanout
                current = fanout.running.get(str(index)) if fanout is not None else None
                if run.status.terminal or current is None or current.position != branch.position:
                    return StepResult(StepDisposition.LOST_RACE, run)
                continue
            return self._sent(committed, outcome, send_next=send_next)
        raise StaleStepError(
            f"branch {index} of run {run.run_id} lost {BRANCH_COMMIT_RETRIES} commits in a row to its siblings",
            run_id=run.run_id,
        )

    def _tool_budget(
        self,
        compiled: CompiledGraph,
        run: Run,
        *,
        isolate: bool,
        time_left: float | None,
        receives: int | None,
        note: bool = True,
    ) -> tuple[float | None, ToolRunner] | StepResult:
        """The tool's time limit and runner for the node at ``run``'s position, or the HANDED_BACK result.

        ``note`` writes the delivery notes of the run's main position (a branch's position has none).
        """
        tool_time: float | None = None
        if time_left is not None:
            node_name = run.current_node or compiled.graph.start_node
            node_timeout = compiled.graph.nodes[node_name].timeout_seconds
            usable = time_left - STEP_MARGIN_SECONDS
            if usable <= 0 or (node_timeout is not None and node_timeout > usable):
                needs = (
                    f"node {node_name!r} needs {node_timeout:g}s" if node_timeout else f"node {node_name!r}"
                )
                reason = (
                    f"{needs} + {STEP_MARGIN_SECONDS:g}s to commit and only {max(time_left, 0):.3g}s "
                    "of the invocation were left"
                )
                if note:
                    self._note(run, DeliveryProblem.HANDED_BACK, reason, receives)
                return StepResult(StepDisposition.HANDED_BACK, run, reason=reason)
            tool_time = usable if isolate else None
        if not isolate:
            return tool_time, IN_PROCESS
        if note:
            started = (
                f"isolated attempt started with {time_left:.3g}s of the invocation left"
                if time_left
                else "isolated attempt started"
            )
            self._note(run, DeliveryProblem.STARTED, started, receives)
        return tool_time, self.isolated_runner

    def _execute(
        self,
        run: Run,
        *,
        send_next: bool,
        isolate: bool = False,
        time_left: float | None = None,
        receives: int | None = None,
        woken: bool = False,
    ) -> StepResult:
        now = self.clock()
        if run.not_before is not None and run.not_before > now:
            return StepResult(StepDisposition.DEFERRED, run, defer_seconds=run.not_before - now)
        try:
            compiled = self.compiled(run.graph_id, run.graph_version)
        except GraphNotFoundError:
            return self._graph_gone(run)
        waiting = run.waiting
        if waiting is not None and waiting.position == run.position:
            if not woken:
                self._send(wake_message(run.run_id, waiting))
                return StepResult(StepDisposition.WAITING, run)
            if waiting.until > now:
                return StepResult(StepDisposition.DEFERRED, run, defer_seconds=waiting.until - now)
            return self._commit(run, woken_outcome(compiled, run, now), send_next=send_next)
        node = compiled.graph.nodes[run.current_node or compiled.graph.start_node]
        if node.wait is not None:
            return self._commit(run, start_wait(compiled, run, now), send_next=send_next)
        if node.callback is not None:
            secret = secrets.token_urlsafe(32)
            token = f"{run.run_id}.{run.step}.{run.attempt}.{secret}"
            return self._commit(run, start_callback(compiled, run, now, token, secret), send_next=send_next)
        budget = self._tool_budget(compiled, run, isolate=isolate, time_left=time_left, receives=receives)
        if isinstance(budget, StepResult):
            return budget
        tool_time, runner = budget
        outcome = execute_step(
            compiled,
            run,
            self.registry,
            clock=self.clock,
            random=self.rng,
            runner=runner,
            time_left=tool_time,
        )
        return self._commit(run, outcome, send_next=send_next)

    def _commit(self, run: Run, outcome: StepOutcome, *, send_next: bool) -> StepResult:
        """Commit ``outcome`` from ``run`` as read; LOST_RACE if another commit came first."""
        try:
            committed = self.runs.commit(run, outcome.changes, outcome.records)
        except StaleStepError:
            return StepResult(StepDisposition.LOST_RACE, self.runs.get_run(run.run_id))
        return self._sent(committed, outcome, send_next=send_next)

    def _sent(self, committed: Run, outcome: StepOutcome, *, send_next: bool) -> StepResult:
        """After a commit: send its messages (if ``send_next``), publish its records, and say so."""
        if send_next:
            for message in outcome.messages:
                self._send(message)
        self._publish(committed, outcome.records)
        return StepResult(
            StepDisposition.COMMITTED,
            committed,
            tuple(outcome.records),
            outcome.next_message,
            more=outcome.more,
        )

    def _note(self, run: Run, problem: DeliveryProblem, detail: str, receives: int | None) -> None:
        self._note_at(run.run_id, run.position, problem, detail, receives)

    def _note_at(
        self,
        run_id: str,
        position: tuple[int, int],
        problem: DeliveryProblem,
        detail: str,
        receives: int | None,
    ) -> bool:
        """Note ``problem`` for ``position`` on the run; whether it was written (the run was still there)."""
        note = DeliveryNote(
            step=position[0],
            attempt=position[1],
            problem=problem,
            detail=detail[:2000],
            at=self.clock(),
            receives=receives,
        )
        return self.runs.note_delivery(run_id, note)

    def note_failed_delivery(self, message: StepMessage, exc: Exception, receives: int | None = None) -> bool:
        """Note on the run that handling ``message`` raised ``exc``, for the DLQ's reason; whether it was noted.

        Notes are kept for the run's main position only: a branch message's is not noted.
        """
        if message.branch is not None:
            return False
        problem = (
            DeliveryProblem.TOO_LARGE if isinstance(exc, PayloadTooLargeError) else DeliveryProblem.FAILED
        )
        return self._note_at(
            message.run_id, message.position, problem, f"{type(exc).__name__}: {exc}", receives
        )

    def dead_letter(self, message: StepMessage, receives: int | None = None) -> DeadLetterResult:
        """Fail the run of a message that reached the DLQ, if the message is the run's current position.

        A message for a position the run has left (a stale duplicate) changes
        nothing. The reason comes from the run's delivery note for that
        position (:func:`dead_letter_reason`).
        """
        for _ in range(COMMIT_RETRIES):
            try:
                run = self.runs.get_run(message.run_id)
            except RunNotFoundError:
                return DeadLetterResult(DeadLetterDisposition.MISSING)
            if run.status.terminal:
                return DeadLetterResult(DeadLetterDisposition.FINISHED, run)
            if message.branch is not None:
                error = dead_branch_reason(run, message, receives)
                if error is None:
                    return DeadLetterResult(DeadLetterDisposition.STALE, run)
            elif run.position != message.position or run.fanout is not None:
                return DeadLetterResult(DeadLetterDisposition.STALE, run)
            else:
                error = dead_letter_reason(run, message, receives)
            try:
                failed = self._finish_at(run, RunStatus.FAILED, LogType.RUN_FAILED, error)
            except StaleStepError:
                continue
            return DeadLetterResult(DeadLetterDisposition.FAILED, failed, error)
        raise StaleStepError(f"run {message.run_id} kept moving; try again", run_id=message.run_id)

    def _graph_gone(self, run: Run) -> StepResult:
        """Fail a run whose graph version was deleted; nothing would ever run its step."""
        error = RunError(
            type="GraphDeleted",
            message=f"graph {run.graph_id!r} version {run.graph_version} was deleted",
            node=run.current_node,
        )
        try:
            failed = self._finish(run.run_id, RunStatus.FAILED, LogType.RUN_FAILED, error)
        except RunFinishedError:
            return StepResult(StepDisposition.FINISHED, self.runs.get_run(run.run_id))
        return StepResult(StepDisposition.COMMITTED, failed)

    def run_inline(
        self,
        graph_id: str,
        initial_state: dict[str, Any] | None = None,
        *,
        budget_seconds: float = 25.0,
        idempotency_key: str | None = None,
        version: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        owner: str = LOCAL_OWNER,
    ) -> Run:
        """Start a run and execute its steps in this process for up to ``budget_seconds``.

        Each step commits exactly as a queued step does. Before the run is
        stored a watchdog message is queued with ``not_before`` past the budget:
        if this process dies, the queue takes the run over from where it
        committed; if the send fails, no run is stored. A run still going when
        the budget is spent is handed to the queue at once. A repeated
        ``idempotency_key`` returns the first run, its current position
        re-enqueued if it has not finished. A run that fans out runs its branches
        here too, one message at a time in queue order (:meth:`_branches_inline`);
        a run that begins to wait is handed to the queue when it does.
        """
        deadline = self.clock() + budget_seconds
        if idempotency_key:
            existing = self.runs.find_run_by_idempotency_key(owner, idempotency_key)
            if existing is not None:
                return self._resume(existing)
        run = self.start_run(
            graph_id,
            initial_state,
            idempotency_key=idempotency_key,
            version=version,
            watchdog_at=deadline + WATCHDOG_GRACE_SECONDS,
            owner=owner,
        )
        if run.status.terminal or run.position != (0, 1):
            return run
        while not run.status.terminal:
            if run.fanout is not None:
                run = self._branches_inline(run, deadline, sleep)
                if run.fanout is not None:
                    return run
                continue
            result = self._execute(run, send_next=False)
            run = result.run
            if run.waiting is not None:
                for message in result.messages:
                    self._send(message)
                return run
            if result.disposition is StepDisposition.LOST_RACE:
                continue
            if result.disposition is StepDisposition.DEFERRED:
                if self.clock() + result.defer_seconds >= deadline:
                    break
                sleep(result.defer_seconds)
            if self.clock() >= deadline:
                break
        if not run.status.terminal:
            self.queue.send(self._current_message(run))
        return run

    def _branches_inline(self, run: Run, deadline: float, sleep: Callable[[float], None]) -> Run:
        """Run ``run``'s branch messages in this process until the join, or hand them to the queue at ``deadline``.

        Returns the run as the last commit left it: joined (no fan-out) or ended,
        or still fanned out once its branches' messages were queued.
        """
        pending = deque(running_messages(run))
        while pending:
            message = pending.popleft()
            result = self.run_step(message, send_next=False)
            run = result.run
            if run.status.terminal or run.fanout is None:
                return run
            if result.disposition is StepDisposition.DEFERRED:
                if self.clock() + result.defer_seconds >= deadline:
                    pending.appendleft(message)
                    break
                sleep(result.defer_seconds)
                pending.appendleft(message)
                continue
            if result.disposition is StepDisposition.LOST_RACE:
                pending = deque(running_messages(run))
                continue
            pending.extend(m for m in result.messages if m.branch is not None)
            if self.clock() >= deadline:
                break
        for message in pending:
            self._send(message)
        return run

    def _resume(self, run: Run) -> Run:
        if not run.status.terminal:
            self.queue.send(self._current_message(run))
        return run

    def cancel(self, run_id: str, reason: str = "cancelled by request", *, owner: str = LOCAL_OWNER) -> Run:
        """Move a run of ``owner`` to CANCELLED; :class:`RunFinishedError` if it already ended."""
        self.require_run_owner(run_id, owner)
        return self._finish(
            run_id,
            RunStatus.CANCELLED,
            LogType.RUN_CANCELLED,
            RunError(type="Cancelled", message=reason),
        )

    def fail_run(self, run_id: str, error: RunError) -> Run | None:
        """Mark a run FAILED from outside a step (its message reached the DLQ). ``None`` if it already ended."""
        try:
            return self._finish(run_id, RunStatus.FAILED, LogType.RUN_FAILED, error)
        except (RunFinishedError, RunNotFoundError):
            return None

    def _finish(self, run_id: str, status: RunStatus, type_: LogType, error: RunError) -> Run:
        for _ in range(COMMIT_RETRIES):
            run = self.runs.get_run(run_id)
            if run.status.terminal:
                raise RunFinishedError(f"run {run_id} already ended as {run.status}", run_id=run_id)
            try:
                return self._finish_at(run, status, type_, error)
            except StaleStepError:
                continue
        raise StaleStepError(f"run {run_id} kept moving; try again", run_id=run_id)

    def _finish_at(self, run: Run, status: RunStatus, type_: LogType, error: RunError) -> Run:
        """End ``run`` from the position it was read at; :class:`StaleStepError` if it moved."""
        run_id = run.run_id
        now = self.clock()
        record = LogRecord(
            run_id=run_id,
            seq=run.next_seq,
            ts=now,
            type=type_,
            step=run.step,
            node=run.current_node,
            message=f"{error.type}: {error.message}",
            data={"error": error.model_dump()},
        )
        changes = RunChanges.fail(run, error=error, next_seq=run.next_seq + 1, now=now, status=status)
        waiting = run.waiting
        if waiting is not None and waiting.digest is not None:
            how = "cancelled" if status is RunStatus.CANCELLED else "expired"
            changes.callbacks = closed_callbacks(run, waiting.digest, how)
        committed = self.runs.commit(run, changes, [record])
        if waiting is not None:
            self._cancel_timer(wake_message(run_id, waiting))
        self._publish(committed, [record])
        return committed

    def _cancel_timer(self, message: StepMessage) -> None:
        """Drop a scheduled wake-up that nothing needs any more; best effort (a late one finds the run moved on)."""
        if self.timers is None:
            return
        try:
            self.timers.cancel(message)
        except Exception as exc:
            if self.on_publish_error is not None:
                self.on_publish_error(self.runs.get_run(message.run_id), exc)

    # callbacks and redrive

    def resolve_callback(
        self,
        token: str,
        *,
        approved: bool = True,
        data: dict[str, Any] | None = None,
        decision: Any = None,
        reason: str = "",
    ) -> Run:
        """Use a callback token: approve the node it waits at (``data`` merged into the state) or reject it.

        Tokens are capabilities: whoever holds one (and may call the API) may use
        it, once. :class:`CallbackNotFoundError` for a token no run issued,
        :class:`CallbackUsedError` for one used already or whose run ended,
        :class:`CallbackExpiredError` for one whose time-out passed. A used token
        of a run still going also re-sends the run's current messages (a copy
        of a step message does no work), so a caller that repeats a call whose
        answer it lost resumes the run if the first call died before it sent
        them; and the time-out is cancelled only after they were sent, so
        until then it stays as the run's wake-up. ``data`` must be a JSON
        object and ``decision`` JSON, together within
        :data:`MAX_CALLBACK_DATA_BYTES` and :data:`~engine.limits.MAX_STATE_DEPTH`;
        a body refused leaves the token unused, as does an approval whose data
        the run's state cannot take (a bad key, too many keys, too large).
        """
        run_id, position, secret = _parse_token(token)
        digest = digest_of(secret)
        if data is not None or decision is not None:
            _check_callback_body(data, decision)
        for _ in range(COMMIT_RETRIES):
            try:
                run = self.runs.get_run(run_id)
            except RunNotFoundError:
                raise CallbackNotFoundError("no run waits for this callback token") from None
            closed = run.callbacks.get(digest)
            if closed == "expired":
                raise CallbackExpiredError("this callback timed out before it was used")
            if closed is not None:
                if not run.status.terminal:
                    self._resend_current(run)
                raise CallbackUsedError(f"this callback was {closed} already")
            waiting = run.waiting
            if (
                waiting is None
                or waiting.kind != "callback"
                or waiting.digest is None
                or waiting.position != position
                or not hmac.compare_digest(waiting.digest, digest)
            ):
                raise CallbackNotFoundError("no run waits for this callback token")
            now = self.clock()
            if now >= waiting.until:
                raise CallbackExpiredError("this callback timed out before it was used")
            if approved:
                _check_callback_state(run, data, decision)
            compiled = self.compiled(run.graph_id, run.graph_version)
            outcome = resolved(
                compiled, run, now, approved=approved, data=data, decision=decision, reason=reason
            )
            try:
                committed = self.runs.commit(run, outcome.changes, outcome.records)
            except StaleStepError:
                continue
            result = self._sent(committed, outcome, send_next=True)
            self._cancel_timer(wake_message(run_id, waiting))
            return result.run
        raise StaleStepError(f"run {run_id} kept moving; try again", run_id=run_id)

    def redrive(self, run_id: str, *, owner: str = LOCAL_OWNER) -> Run:
        """Take a FAILED or TIMED_OUT run of ``owner`` back to the node that failed (:func:`engine.waits.redrive`).

        :class:`RunNotRedrivableError` for a run in any other state. Asked again
        of a run that has not moved since its redrive, it re-sends the run's
        message before it answers so (the first call may have died before
        sending it; a copy does no work).
        """
        self.require_run_owner(run_id, owner)
        for _ in range(COMMIT_RETRIES):
            run = self.runs.get_run(run_id)
            if run.status not in (RunStatus.FAILED, RunStatus.TIMED_OUT):
                if run.status is RunStatus.RUNNING and self._last_record_is(run, LogType.RUN_REDRIVEN):
                    self._resend_current(run)
                raise RunNotRedrivableError(
                    f"run {run_id} is {run.status.value}: only a FAILED or TIMED_OUT run can be redriven",
                    run_id=run_id,
                )
            try:
                compiled = self.compiled(run.graph_id, run.graph_version)
            except GraphNotFoundError:
                raise RunNotRedrivableError(
                    f"run {run_id}'s graph version was deleted", run_id=run_id
                ) from None
            outcome = redrive(compiled, run, self.clock())
            try:
                committed = self.runs.commit(run, outcome.changes, outcome.records)
            except StaleStepError:
                continue
            return self._sent(committed, outcome, send_next=True).run
        raise StaleStepError(f"run {run_id} kept moving; try again", run_id=run_id)

    def _last_record_is(self, run: Run, type_: LogType) -> bool:
        last = self.runs.list_logs(run.run_id, run.next_seq - 2, 1)
        return bool(last) and last[0].type is type_

    def _resend_current(self, run: Run) -> None:
        """Send the run's current messages again: the main position's, or its branches' while it fans out."""
        for message in running_messages(run) if run.fanout is not None else [self._current_message(run)]:
            self._send(message)

    def _publish(self, run: Run, records: list[LogRecord]) -> None:
        """Best effort: a failure is handed to :attr:`on_publish_error`, never raised."""
        if self.sink is None or not run.subscribers or not records:
            return
        try:
            self.sink.publish(run, records)
        except Exception as exc:
            if self.on_publish_error is not None:
                self.on_publish_error(run, exc)


_DEAD_LETTER_REASONS = {
    DeliveryProblem.STARTED: (
        "StepProcessDied",
        "the step's invocation died or ran out of the function's time while running the tool ({detail})",
    ),
    DeliveryProblem.HANDED_BACK: ("StepOutOfTime", "the step ran out of the function's time: {detail}"),
    DeliveryProblem.TOO_LARGE: ("StateTooLarge", "the state is too large: {detail}"),
    DeliveryProblem.FAILED: ("StepDeliveryFailed", "the message kept failing: {detail}"),
}


NOTHING_RECORDED = (
    "no error was recorded (no redelivery started the tool or failed in the step handler: the "
    "invocations ended before reaching this record, or were still running when it was moved)"
)
"""The reason's end when the run has no delivery note for the dead message's position."""


def _check_callback_body(data: Any, decision: Any) -> None:
    """:class:`BadRequestError` unless ``data`` is a JSON object (or ``None``) and ``decision`` JSON; too big: 413."""
    if data is not None and not isinstance(data, dict):
        raise BadRequestError(f"callback data must be a JSON object, not {type(data).__name__}")
    updates = dict(data or {})
    if decision is not None:
        updates["decision"] = decision
    problem = json_problem(updates)
    if problem is not None:
        raise BadRequestError(f"callback data and decision must be JSON: {problem}")
    depth = json_depth(updates)
    if depth > MAX_STATE_DEPTH:
        raise TooDeepError(f"callback data nests {depth} levels deep; the limit is {MAX_STATE_DEPTH}")
    size = len(json.dumps(updates, separators=(",", ":")).encode())
    if size > MAX_CALLBACK_DATA_BYTES:
        raise PayloadTooLargeError(
            f"callback data and decision take {size} bytes as JSON; the limit is {MAX_CALLBACK_DATA_BYTES}"
        )


def _check_callback_state(run: Run, data: dict[str, Any] | None, decision: Any) -> None:
    """:class:`BadRequestError` (a bad or empty key, too many keys) or :class:`StateTooLargeError`
    unless ``run``'s state can take the approval's updates."""
    updates = dict(data or {})
    if decision is not None:
        updates["decision"] = decision
    try:
        updated_state_bytes(run.state, updates, run.state_bytes, "the state after this callback")
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None


def _parse_token(token: str) -> tuple[str, tuple[int, int], str]:
    """``(run_id, (step, attempt), secret)`` of a callback token; :class:`CallbackNotFoundError` if malformed."""
    parts = token.split(".")
    if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit() or len(parts[3]) < 32:
        raise CallbackNotFoundError("no run waits for this callback token")
    return parts[0], (int(parts[1]), int(parts[2])), parts[3]


def dead_branch_reason(run: Run, message: StepMessage, receives: int | None) -> RunError | None:
    """Why a run fails whose branch message reached the DLQ; ``None`` if the branch is no longer there."""
    fanout = run.fanout
    if fanout is None or fanout.step != message.fanout or message.branch is None:
        return None
    branch = fanout.running.get(str(message.branch))
    if branch is None or branch.position != message.position:
        return None
    where = (
        f"branch {fanout.name(branch.index)} step {message.step} attempt {message.attempt} "
        "was moved to the dead-letter queue"
    )
    if receives:
        where += f" after {receives} deliveries"
    return RunError(
        type="StepDeliveryFailed",
        message=f"{where} (the step handler failed on it or its invocations died)",
        node=branch.node,
    )


def dead_letter_reason(run: Run, message: StepMessage, receives: int | None) -> RunError:
    """Why a run whose current message reached the DLQ failed: its delivery note, if it has one for that position."""
    where = f"step {message.step} attempt {message.attempt} was moved to the dead-letter queue"
    if receives:
        where += f" after {receives} deliveries"
    note = run.delivery
    if note is None or note.position != message.position:
        return RunError(
            type="StepDeliveryFailed", message=f"{where}; {NOTHING_RECORDED}", node=run.current_node
        )
    type_, template = _DEAD_LETTER_REASONS[note.problem]
    return RunError(
        type=type_, message=f"{where}: " + template.format(detail=note.detail), node=run.current_node
    )
