"""The step semantics as a pure function: one node of one run, and what happens next.

:func:`execute_step` reads nothing and writes nothing. Given a graph and a run at
a position ``(step, attempt)``, it runs the node's tool and returns the changes
to commit, the log records of the step and the message for the next position.
The service commits them atomically from the position it read.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.conditions import Verdict, compile_condition
from engine.errors import ConditionError, StateTooLargeError, ToolTimeoutError
from engine.graph import END, Graph
from engine.limits import MAX_STATE_DEPTH, json_depth, state_problem_after, truncate_data, truncate_message
from engine.model import LogRecord, LogType, Run, RunChanges, RunError, RunStatus, StepMessage
from engine.registry import ToolContext, ToolRegistry
from engine.runner import IN_PROCESS, ToolRunner, invoke_tool

__all__ = ["CompiledGraph", "StepOutcome", "execute_step", "invoke_tool", "json_problem"]

Clock = Callable[[], float]
ERROR_MESSAGE_LIMIT = 2000
_JSON_SCALARS = (str, int, float, bool, type(None))


def json_problem(value: Any, path: str = "") -> str | None:
    """Where ``value`` stops being JSON (dicts with string keys, lists, scalars), or ``None``.

    State is stored as JSON; a tool that returns a set or a datetime fails its
    attempt here, under the node's retry policy, rather than at the commit.
    """
    if isinstance(value, _JSON_SCALARS):
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path or 'the update'} has a {type(key).__name__} key {key!r}"
            found = json_problem(item, f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = json_problem(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return f"{path} is a {type(value).__name__}"


@dataclass(frozen=True)
class StepOutcome:
    changes: RunChanges
    records: list[LogRecord]
    next_message: StepMessage | None


class _Log:
    def __init__(self, run: Run, clock: Clock) -> None:
        self.run = run
        self.clock = clock
        self.records: list[LogRecord] = []

    def add(
        self,
        type_: LogType,
        message: str,
        *,
        node: str | None = None,
        data: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        self.records.append(
            LogRecord(
                run_id=self.run.run_id,
                seq=self.run.next_seq + len(self.records),
                ts=self.clock(),
                type=type_,
                step=self.run.step,
                node=node,
                message=truncate_message(message),
                data=truncate_data(data),
                **extra,
            )
        )

    @property
    def next_seq(self) -> int:
        return self.run.next_seq + len(self.records)


class CompiledGraph:
    """A graph with its edge conditions compiled once, for repeated steps."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._conditions: dict[tuple[str, int], Callable[[Any], Verdict]] = {}
        for source, edge in graph.edges.items():
            if isinstance(edge, list):
                for i, rule in enumerate(edge):
                    if rule.when is not None:
                        self._conditions[(source, i)] = compile_condition(rule.when)

    def choose_edge(self, node: str, state: dict[str, Any]) -> tuple[str | None, str, list[str]]:
        """Return ``(next node or None at an end, why, keys read)``; raise ``LookupError`` if no rule holds.

        A condition that raises while evaluated is :class:`ConditionError` naming the node and rule.
        """
        edge = self.graph.edges.get(node)
        if edge is None:
            return None, f"{node} has no outgoing edges", []
        if isinstance(edge, str):
            return (None if edge == END else edge), f"{node} -> {edge}", []
        reasons: list[str] = []
        keys: list[str] = []
        for i, rule in enumerate(edge):
            target = None if rule.to == END else rule.to
            if rule.when is None:
                why = "default" if not reasons else "default, as " + "; ".join(reasons)
                return target, f"{node} -> {rule.to} ({why})", keys
            try:
                verdict = self._conditions[(node, i)](state)
            except Exception as exc:
                raise ConditionError(
                    f"the condition of rule {i} (to {rule.to!r}) from {node!r} failed: "
                    f"{type(exc).__name__}: {str(exc)[:200]}",
                    node=node,
                    rule=i,
                ) from exc
            keys.extend(k for k in verdict.keys if k not in keys)
            if verdict.holds:
                return target, f"{node} -> {rule.to} ({verdict.reason})", keys
            reasons.append(f"not {rule.to}: {verdict.reason}")
        raise LookupError("; ".join(reasons), keys)


def _fail(
    run: Run,
    log: _Log,
    now: float,
    error: RunError,
    status: RunStatus = RunStatus.FAILED,
    updates: dict[str, Any] | None = None,
) -> StepOutcome:
    type_ = LogType.RUN_TIMED_OUT if status is RunStatus.TIMED_OUT else LogType.RUN_FAILED
    log.add(type_, f"{error.type}: {error.message}", node=error.node, data={"error": error.model_dump()})
    changes = RunChanges(
        status=status,
        current_node=run.current_node,
        step=run.step,
        attempt=run.attempt,
        next_seq=log.next_seq,
        updated_at=now,
        error=error,
        finished_at=now,
        state_updates=updates or {},
    )
    return StepOutcome(changes, log.records, None)


def execute_step(
    compiled: CompiledGraph,
    run: Run,
    registry: ToolRegistry,
    *,
    clock: Clock = time.time,
    random: Callable[[], float] = _random.random,
    runner: ToolRunner = IN_PROCESS,
    time_left: float | None = None,
) -> StepOutcome:
    """Run the node at ``run``'s position and decide what comes next.

    ``runner`` runs the tool (:mod:`engine.runner`). ``time_left`` (seconds)
    bounds the tool's time limit when it is shorter than the node's
    ``timeout_seconds``; a tool stopped there fails its attempt with a
    :class:`ToolTimeoutError` that says it ran out of the step's time.
    """
    graph = compiled.graph
    log = _Log(run, clock)
    started = clock()
    node_name = run.current_node or graph.start_node
    if graph.timeout_seconds is not None and started - run.created_at > graph.timeout_seconds:
        error = RunError(
            type="RunTimedOut", message=f"run exceeded {graph.timeout_seconds:g}s", node=node_name
        )
        return _fail(run, log, started, error, RunStatus.TIMED_OUT)
    node = graph.nodes[node_name]
    ctx = ToolContext(run.run_id, run.graph_id, node_name, run.step, run.attempt)
    log.add(
        LogType.STEP_STARTED,
        f"{node_name} ({node.tool}) attempt {run.attempt}",
        node=node_name,
        attempt=run.attempt,
    )
    tick = time.perf_counter()
    try:
        tool = registry.get(node.tool)
        limit = node.timeout_seconds
        if time_left is not None and (limit is None or time_left < limit):
            try:
                result = runner.run(tool, run.state.copy(), ctx, max(time_left, 0.001))
            except ToolTimeoutError:
                raise ToolTimeoutError(
                    f"tool {node.tool!r} ran out of the step's time ({time_left:.3g}s left in the invocation)"
                ) from None
        else:
            result = runner.run(tool, run.state.copy(), ctx, limit)
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise TypeError(
                f"tool {node.tool!r} returned {type(result).__name__}, expected a dict of state updates"
            )
        bad_keys = [key for key in result if not isinstance(key, str)]
        if bad_keys:
            raise TypeError(
                f"tool {node.tool!r} returned the keys {bad_keys!r}: state update keys must be strings"
            )
        depth = json_depth(result)
        if depth > MAX_STATE_DEPTH:
            raise ValueError(
                f"tool {node.tool!r} returned state nested {depth} levels deep; the limit is {MAX_STATE_DEPTH}"
            )
        problem = json_problem(result)
        if problem is not None:
            raise TypeError(f"tool {node.tool!r} returned state that is not JSON: {problem}")
        limit_problem = state_problem_after(run.state, result, f"the state after {node_name!r}")
        if limit_problem is not None:
            message, size = limit_problem
            if size:
                raise StateTooLargeError(message, size=size)
            raise ValueError(message)
    except Exception as exc:
        return _after_failure(compiled, run, log, node_name, exc, (time.perf_counter() - tick) * 1000, random)
    duration_ms = (time.perf_counter() - tick) * 1000
    keys = ", ".join(sorted(result)) or "nothing"
    log.add(
        LogType.STEP_SUCCEEDED,
        f"{node_name} updated {keys}",
        node=node_name,
        attempt=run.attempt,
        duration_ms=round(duration_ms, 3),
    )
    state = run.state | result
    return _advance(compiled, run, log, node_name, state, result)


def _advance(
    compiled: CompiledGraph,
    run: Run,
    log: _Log,
    node_name: str,
    state: dict[str, Any],
    updates: dict[str, Any],
) -> StepOutcome:
    graph = compiled.graph
    now = log.clock()
    try:
        target, why, keys = compiled.choose_edge(node_name, state)
    except ConditionError as exc:
        return _fail(
            run,
            log,
            now,
            RunError(type="ConditionFailed", message=exc.message, node=node_name),
            updates=updates,
        )
    except LookupError as exc:
        reasons, keys = exc.args
        error = RunError(
            type="NoMatchingEdge",
            message=f"no edge from {node_name!r} matched and it has no default (looked at {', '.join(keys) or 'no keys'}): {reasons}",
            node=node_name,
        )
        return _fail(run, log, now, error, updates=updates)
    if target is None:
        log.add(
            LogType.RUN_SUCCEEDED,
            f"run succeeded at {node_name} after {run.step + 1} steps",
            node=node_name,
        )
        changes = RunChanges(
            status=RunStatus.SUCCEEDED,
            current_node=node_name,
            step=run.step + 1,
            attempt=1,
            next_seq=log.next_seq,
            updated_at=now,
            state_updates=updates,
            finished_at=now,
        )
        return StepOutcome(changes, log.records, None)
    log.add(LogType.EDGE_TAKEN, why, node=node_name, data={"to": target, "keys": keys})
    if run.step + 1 >= graph.max_steps:
        error = RunError(
            type="MaxStepsExceeded",
            message=f"run reached max_steps={graph.max_steps} before {target!r}; the graph may loop without end",
            node=node_name,
        )
        return _fail(run, log, now, error, updates=updates)
    changes = RunChanges(
        status=RunStatus.RUNNING,
        current_node=target,
        step=run.step + 1,
        attempt=1,
        next_seq=log.next_seq,
        updated_at=now,
        state_updates=updates,
    )
    return StepOutcome(changes, log.records, StepMessage(run_id=run.run_id, step=run.step + 1))


def _after_failure(
    compiled: CompiledGraph,
    run: Run,
    log: _Log,
    node_name: str,
    exc: Exception,
    duration_ms: float,
    random: Callable[[], float],
) -> StepOutcome:
    node = compiled.graph.nodes[node_name]
    now = log.clock()
    text = str(exc) or type(exc).__name__
    if len(text) > ERROR_MESSAGE_LIMIT:
        text = text[:ERROR_MESSAGE_LIMIT] + f"... ({len(text) - ERROR_MESSAGE_LIMIT} more characters)"
    error = RunError(type=type(exc).__name__, message=text, node=node_name)
    log.add(
        LogType.STEP_FAILED,
        f"{node_name} attempt {run.attempt} failed: {error.type}: {error.message}",
        node=node_name,
        attempt=run.attempt,
        duration_ms=round(duration_ms, 3),
        data={"error": error.model_dump()},
    )
    policy = node.retry
    if run.attempt < policy.max_attempts:
        delay = policy.delay(run.attempt, random())
        log.add(
            LogType.RETRY_SCHEDULED,
            f"{node_name} attempt {run.attempt + 1} of {policy.max_attempts} in {delay:.3g}s",
            node=node_name,
            attempt=run.attempt + 1,
            data={"delay_seconds": delay},
        )
        not_before = now + delay
        changes = RunChanges(
            status=RunStatus.RUNNING,
            current_node=node_name,
            step=run.step,
            attempt=run.attempt + 1,
            next_seq=log.next_seq,
            updated_at=now,
            not_before=not_before,
        )
        message = StepMessage(
            run_id=run.run_id, step=run.step, attempt=run.attempt + 1, not_before=not_before
        )
        return StepOutcome(changes, log.records, message)
    if node.catch is not None:
        updates = {"error": error.model_dump()}
        log.add(
            LogType.EDGE_TAKEN,
            f"{node_name} -> {node.catch} (catch after {run.attempt} attempt(s))",
            node=node_name,
            data={"to": node.catch, "catch": True},
        )
        if run.step + 1 >= compiled.graph.max_steps:
            limit = RunError(
                type="MaxStepsExceeded",
                message=f"run reached max_steps={compiled.graph.max_steps}",
                node=node_name,
            )
            return _fail(run, log, now, limit, updates=updates)
        changes = RunChanges(
            status=RunStatus.RUNNING,
            current_node=node.catch,
            step=run.step + 1,
            attempt=1,
            next_seq=log.next_seq,
            updated_at=now,
            state_updates=updates,
        )
        return StepOutcome(changes, log.records, StepMessage(run_id=run.run_id, step=run.step + 1))
    return _fail(run, log, now, error)
