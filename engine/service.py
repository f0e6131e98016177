"""The use cases: create and delete graphs, start runs, execute one step, read runs and logs, cancel, delete.

The service holds no AWS code. The handlers wire it to ``engine.aws`` adapters;
tests, benchmarks and the in-process driver wire it to ``engine.memory``.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from engine.errors import (
    BadRequestError,
    GraphNotFoundError,
    RunActiveError,
    RunFinishedError,
    RunNotFoundError,
    StaleStepError,
)
from engine.graph import Graph
from engine.limits import check_state
from engine.model import (
    GraphRecord,
    LogRecord,
    LogType,
    Run,
    RunChanges,
    RunError,
    RunStatus,
    StepMessage,
)
from engine.ports import GraphStore, LogSink, RunStore, StepQueue
from engine.registry import ToolRegistry
from engine.step import Clock, CompiledGraph, execute_step
from engine.validation import validate_graph

COMMIT_RETRIES = 5
WATCHDOG_GRACE_SECONDS = 5.0
"""How long after an inline run's budget its watchdog message is due.

Past the API function's timeout (the budget is at most its time left minus
2 s), so a live request never races its own watchdog.
"""


class StepDisposition(StrEnum):
    COMMITTED = "committed"
    LOST_RACE = "lost_race"  # another worker committed this position first
    STALE = "stale"  # the message is behind the run; the current position was re-sent
    FINISHED = "finished"  # the run is terminal
    DEFERRED = "deferred"  # a retry whose delay has not passed yet


@dataclass(frozen=True)
class StepResult:
    disposition: StepDisposition
    run: Run
    records: tuple[LogRecord, ...] = ()
    next_message: StepMessage | None = None
    defer_seconds: float = 0.0


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
    ) -> None:
        self.graphs = graphs
        self.runs = runs
        self.queue = queue
        self.registry = registry
        self.sink = sink
        self.clock = clock
        self.rng = rng
        self.ids = ids
        self._compiled: dict[tuple[str, int], CompiledGraph] = {}

    # graphs

    def validate(self, raw: Any) -> Graph:
        return validate_graph(raw, self.registry)

    def create_graph(self, raw: Any, graph_id: str | None = None) -> GraphRecord:
        """Validate and store a new graph at version 1."""
        record = GraphRecord(
            graph_id=graph_id or self.ids(),
            version=1,
            definition=self.validate(raw),
            created_at=self.clock(),
        )
        self.graphs.put_graph(record)
        return record

    def add_graph_version(self, graph_id: str, raw: Any) -> GraphRecord:
        """Store a new version of an existing graph; runs already started keep theirs."""
        latest = self.graphs.get_graph(graph_id)
        record = GraphRecord(
            graph_id=graph_id,
            version=latest.version + 1,
            definition=self.validate(raw),
            created_at=self.clock(),
        )
        self.graphs.put_graph(record)
        return record

    def get_graph(self, graph_id: str, version: int | None = None) -> GraphRecord:
        return self.graphs.get_graph(graph_id, version)

    def delete_graph(self, graph_id: str) -> int:
        """Delete every version of a graph; return how many there were.

        Runs that ended stay readable. A run still going fails at its next step
        with ``GraphDeleted``, unless the service that runs the step compiled the
        graph before the delete (:meth:`compiled` caches per process).
        """
        self.get_graph(graph_id)
        deleted = self.graphs.delete_graph(graph_id)
        for key in [k for k in self._compiled if k[0] == graph_id]:
            del self._compiled[key]
        return deleted

    def list_graphs(self, limit: int = 100) -> list[GraphRecord]:
        return self.graphs.list_graphs(limit)

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
    ) -> Run:
        """Create a run at its start node and enqueue its first step.

        The first message is sent before the run is stored: if the process dies in
        between, the message finds no run and ends in the DLQ, and nothing is
        left half started. A repeated ``idempotency_key`` returns the first run.
        Everything is checked before the message is sent, ``initial_state``
        against :mod:`engine.limits` included: a start refused sends nothing.
        """
        if initial_state is not None and not isinstance(initial_state, dict):
            raise BadRequestError("initial_state must be a JSON object")
        check_state(initial_state or {})
        if idempotency_key:
            existing = self.runs.find_run_by_idempotency_key(idempotency_key)
            if existing is not None:
                return existing
        record = self.graphs.get_graph(graph_id, version)
        if (record.graph_id, record.version) not in self._compiled:
            self._compiled[(record.graph_id, record.version)] = CompiledGraph(record.definition)
        now = self.clock()
        run = Run(
            run_id=self.ids(),
            graph_id=record.graph_id,
            graph_version=record.version,
            state=dict(initial_state or {}),
            current_node=record.definition.start_node,
            next_seq=1,
            created_at=now,
            updated_at=now,
            idempotency_key=idempotency_key,
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
        if enqueue:
            self.queue.send(StepMessage(run_id=run.run_id, step=0))
        return self.runs.create_run(run, [started])

    def get_run(self, run_id: str) -> Run:
        return self.runs.get_run(run_id)

    def delete_run(self, run_id: str) -> None:
        """Delete a run that ended, with its log; :class:`RunActiveError` if it has not."""
        run = self.get_run(run_id)
        if not run.status.terminal:
            raise RunActiveError(f"run {run_id} is {run.status}; cancel it first", run_id=run_id)
        self.runs.delete_run(run_id)

    def list_logs(self, run_id: str, after: int = -1, limit: int = 1000) -> list[LogRecord]:
        return self.runs.list_logs(run_id, after, limit)

    def run_step(self, message: StepMessage) -> StepResult:
        """Execute the step a message names, if it is still the run's current one.

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
            return StepResult(StepDisposition.DEFERRED, run, defer_seconds=message.not_before - now)
        if message.position != run.position:
            resend = None
            if message.position < run.position:
                resend = StepMessage(
                    run_id=run.run_id, step=run.step, attempt=run.attempt, not_before=run.not_before
                )
                self.queue.send(resend)
            return StepResult(StepDisposition.STALE, run, next_message=resend)
        return self._execute(run, send_next=True)

    def _execute(self, run: Run, *, send_next: bool) -> StepResult:
        now = self.clock()
        if run.not_before is not None and run.not_before > now:
            return StepResult(StepDisposition.DEFERRED, run, defer_seconds=run.not_before - now)
        try:
            compiled = self.compiled(run.graph_id, run.graph_version)
        except GraphNotFoundError:
            return self._graph_gone(run)
        outcome = execute_step(compiled, run, self.registry, clock=self.clock, random=self.rng)
        try:
            committed = self.runs.commit(run.run_id, run.position, outcome.changes, outcome.records)
        except StaleStepError:
            return StepResult(StepDisposition.LOST_RACE, self.runs.get_run(run.run_id))
        self._publish(committed, outcome.records)
        if send_next and outcome.next_message is not None:
            self.queue.send(outcome.next_message)
        return StepResult(StepDisposition.COMMITTED, committed, tuple(outcome.records), outcome.next_message)

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
    ) -> Run:
        """Start a run and execute its steps in this process for up to ``budget_seconds``.

        Each step commits exactly as a queued step does. Before the first step a
        watchdog message is queued with ``not_before`` past the budget: if this
        process dies, the queue takes the run over from where it committed. A run
        still going when the budget is spent is handed to the queue at once.
        """
        deadline = self.clock() + budget_seconds
        if idempotency_key:
            existing = self.runs.find_run_by_idempotency_key(idempotency_key)
            if existing is not None:
                return existing
        run = self.start_run(
            graph_id, initial_state, idempotency_key=idempotency_key, version=version, enqueue=False
        )
        if run.status.terminal or run.position != (0, 1):
            return run
        self.queue.send(
            StepMessage(
                run_id=run.run_id, step=0, not_before=deadline + WATCHDOG_GRACE_SECONDS, watchdog=True
            )
        )
        while not run.status.terminal:
            result = self._execute(run, send_next=False)
            run = result.run
            if result.disposition is StepDisposition.LOST_RACE:
                continue
            if result.disposition is StepDisposition.DEFERRED:
                if self.clock() + result.defer_seconds >= deadline:
                    break
                sleep(result.defer_seconds)
            if self.clock() >= deadline:
                break
        if not run.status.terminal:
            self.queue.send(
                StepMessage(run_id=run.run_id, step=run.step, attempt=run.attempt, not_before=run.not_before)
            )
        return run

    def cancel(self, run_id: str, reason: str = "cancelled by request") -> Run:
        """Move a run to CANCELLED; :class:`RunFinishedError` if it already ended."""
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
            changes = RunChanges(
                status=status,
                current_node=run.current_node,
                step=run.step,
                attempt=run.attempt,
                next_seq=run.next_seq + 1,
                updated_at=now,
                error=error,
                finished_at=now,
            )
            try:
                committed = self.runs.commit(run_id, run.position, changes, [record])
            except StaleStepError:
                continue
            self._publish(committed, [record])
            return committed
        raise StaleStepError(f"run {run_id} kept moving; try again", run_id=run_id)

    def _publish(self, run: Run, records: list[LogRecord]) -> None:
        if self.sink is not None and run.subscribers and records:
            self.sink.publish(run, records)
