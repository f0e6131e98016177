"""What happens after one attempt of a node, as a pure function of values.

:func:`decide` takes the compiled graph, the run at its position ``(step,
attempt)``, what the node's tool did (a :data:`ToolResult`: it returned a value,
raised an error, or ran out of time), the times and the random draw, and returns
the :class:`StepOutcome`: the changes to commit, the log records of the step and
the message for the next position. :func:`run_timed_out` is the decision taken
before the tool runs, when the run's own deadline has passed. Neither runs a
tool, reads a clock, draws a random number or does I/O: :mod:`engine.attempt`
runs the tool and hands its result here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.conditions import Verdict, compile_condition
from engine.errors import ConditionError, StateTooLargeError
from engine.graph import END, Graph
from engine.limits import MAX_STATE_DEPTH, json_depth, truncate_data, truncate_message, updated_state_bytes
from engine.model import LogRecord, LogType, Run, RunChanges, RunError, RunStatus, StepMessage

__all__ = [
    "CompiledGraph",
    "Raised",
    "Returned",
    "StepOutcome",
    "TimedOut",
    "ToolResult",
    "decide",
    "json_problem",
    "needs_draw",
    "run_timed_out",
]

Clock = Callable[[], float]
ERROR_MESSAGE_LIMIT = 2000
_JSON_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Returned:
    """The tool returned ``value`` (``None`` counts as no updates)."""

    value: Any


@dataclass(frozen=True)
class Raised:
    """The tool raised an error of type name ``type`` with ``message``."""

    type: str
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> Raised:
        return cls(type(exc).__name__, str(exc))


@dataclass(frozen=True)
class TimedOut:
    """The tool was stopped at its time limit; ``message`` says which limit."""

    message: str


ToolResult = Returned | Raised | TimedOut


class _Rejected(Exception):
    """A returned value the step cannot store: its attempt fails as an error of type ``type_name``."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name


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
    """The changes to commit, the step's records and the messages to send once committed.

    ``next_message`` is the first message (``None``: none); a fan-out starts
    several branches, the others are in ``more``.
    """

    changes: RunChanges
    records: list[LogRecord]
    next_message: StepMessage | None
    more: tuple[StepMessage, ...] = ()

    @property
    def messages(self) -> list[StepMessage]:
        return [self.next_message, *self.more] if self.next_message is not None else list(self.more)


class _Log:
    def __init__(self, run: Run, now: float) -> None:
        self.run = run
        self.now = now
        self.records: list[LogRecord] = []

    def add(
        self,
        type_: LogType,
        message: str,
        *,
        node: str | None = None,
        data: dict[str, Any] | None = None,
        ts: float | None = None,
        **extra: Any,
    ) -> None:
        self.records.append(
            LogRecord(
                run_id=self.run.run_id,
                seq=self.run.next_seq + len(self.records),
                ts=self.now if ts is None else ts,
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
        if not isinstance(edge, list):
            raise ValueError(
                f"{node!r} fans out ({type(edge).__name__}): its branches are not an edge to choose"
            )
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
    error: RunError,
    status: RunStatus = RunStatus.FAILED,
    updates: dict[str, Any] | None = None,
) -> StepOutcome:
    type_ = LogType.RUN_TIMED_OUT if status is RunStatus.TIMED_OUT else LogType.RUN_FAILED
    log.add(type_, f"{error.type}: {error.message}", node=error.node, data={"error": error.model_dump()})
    changes = RunChanges.fail(
        run, error=error, next_seq=log.next_seq, now=log.now, status=status, updates=updates
    )
    return StepOutcome(changes, log.records, None)


def run_timed_out(compiled: CompiledGraph, run: Run, now: float) -> StepOutcome | None:
    """The run ends TIMED_OUT if, at ``now``, it is past the graph's ``timeout_seconds``; else ``None`` (run the tool).

    The time counts from the run's start, or its last redrive.
    """
    graph = compiled.graph
    since = run.redriven_at if run.redriven_at is not None else run.created_at
    if graph.timeout_seconds is None or now - since <= graph.timeout_seconds:
        return None
    node_name = run.current_node or graph.start_node
    error = RunError(type="RunTimedOut", message=f"run exceeded {graph.timeout_seconds:g}s", node=node_name)
    return _fail(run, _Log(run, now), error, RunStatus.TIMED_OUT)


def needs_draw(compiled: CompiledGraph, run: Run) -> bool:
    """Whether a failure at ``run``'s position would use the random draw (a full-jitter retry still to come)."""
    policy = compiled.graph.nodes[run.current_node or compiled.graph.start_node].retry
    return policy.jitter == "full" and run.attempt < policy.max_attempts


def decide(
    compiled: CompiledGraph,
    run: Run,
    result: ToolResult,
    *,
    started: float,
    now: float,
    duration_ms: float,
    draw: float = 1.0,
    announce: bool = True,
) -> StepOutcome:
    """What follows the attempt at ``run``'s position whose tool gave ``result``.

    ``announce`` begins the records with ``step_started``; a wait or callback
    node logged its start when it began to wait.

    ``started`` (the ``step_started`` record's time) and ``now`` (every other
    record's, and the commit's) are epoch seconds; ``duration_ms`` is how long
    the tool ran; ``draw`` in [0, 1) scales a full-jitter retry delay.

    A returned dict of string keys whose values are JSON, not too deep, and
    whose merge keeps the state within its limits is the step's update, and the
    run advances along the first edge that holds (or ends, or fails when no edge
    holds, a condition raises or ``max_steps`` is reached). Anything else fails
    the attempt, which is retried under the node's policy, caught by its
    ``catch`` node, or fails the run.
    """
    node_name = run.current_node or compiled.graph.start_node
    node = compiled.graph.nodes[node_name]
    log = _Log(run, now)
    if announce:
        log.add(
            LogType.STEP_STARTED,
            f"{node_name} ({node.label}) attempt {run.attempt}",
            node=node_name,
            attempt=run.attempt,
            ts=started,
        )
    if isinstance(result, Raised):
        return _after_failure(compiled, run, log, node_name, result.type, result.message, duration_ms, draw)
    if isinstance(result, TimedOut):
        return _after_failure(
            compiled, run, log, node_name, "ToolTimeoutError", result.message, duration_ms, draw
        )
    try:
        updates, size = _checked_updates(node.label, node_name, run, result.value)
    except _Rejected as exc:
        return _after_failure(compiled, run, log, node_name, exc.type_name, str(exc), duration_ms, draw)
    keys = ", ".join(sorted(updates)) or "nothing"
    log.add(
        LogType.STEP_SUCCEEDED,
        f"{node_name} updated {keys}",
        node=node_name,
        attempt=run.attempt,
        duration_ms=round(duration_ms, 3),
    )
    outcome = _advance(compiled, run, log, node_name, run.state | updates, updates)
    outcome.changes.state_bytes = size
    return outcome


def _checked_updates(tool: str, node_name: str, run: Run, value: Any) -> tuple[dict[str, Any], int]:
    """``value`` as the step's state updates and the state's size after them.

    :class:`_Rejected` (the error the attempt fails with) if it cannot be.
    """
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise _Rejected(
            "TypeError", f"tool {tool!r} returned {type(value).__name__}, expected a dict of state updates"
        )
    bad_keys = [key for key in value if not isinstance(key, str)]
    if bad_keys:
        raise _Rejected(
            "TypeError", f"tool {tool!r} returned the keys {bad_keys!r}: state update keys must be strings"
        )
    depth = json_depth(value)
    if depth > MAX_STATE_DEPTH:
        raise _Rejected(
            "ValueError",
            f"tool {tool!r} returned state nested {depth} levels deep; the limit is {MAX_STATE_DEPTH}",
        )
    problem = json_problem(value)
    if problem is not None:
        raise _Rejected("TypeError", f"tool {tool!r} returned state that is not JSON: {problem}")
    try:
        size = updated_state_bytes(run.state, value, run.state_bytes, f"the state after {node_name!r}")
    except StateTooLargeError as exc:
        raise _Rejected("StateTooLargeError", str(exc)) from None
    except ValueError as exc:
        raise _Rejected("ValueError", str(exc)) from None
    return value, size


def _advance(
    compiled: CompiledGraph,
    run: Run,
    log: _Log,
    node_name: str,
    state: dict[str, Any],
    updates: dict[str, Any],
) -> StepOutcome:
    graph = compiled.graph
    if graph.fan_out(node_name) is not None:
        from engine.fanout import fan_out

        return fan_out(compiled, run, log, node_name, state, updates)
    try:
        target, why, keys = compiled.choose_edge(node_name, state)
    except ConditionError as exc:
        return _fail(
            run,
            log,
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
        return _fail(run, log, error, updates=updates)
    if target is None:
        log.add(
            LogType.RUN_SUCCEEDED,
            f"run succeeded at {node_name} after {run.step + 1} steps",
            node=node_name,
        )
        changes = RunChanges.finish(run, node=node_name, next_seq=log.next_seq, now=log.now, updates=updates)
        return StepOutcome(changes, log.records, None)
    log.add(LogType.EDGE_TAKEN, why, node=node_name, data={"to": target, "keys": keys})
    if run.step + 1 >= graph.max_steps:
        error = RunError(
            type="MaxStepsExceeded",
            message=f"run reached max_steps={graph.max_steps} before {target!r}; the graph may loop without end",
            node=node_name,
        )
        return _fail(run, log, error, updates=updates)
    changes = RunChanges.advance(run, to=target, next_seq=log.next_seq, now=log.now, updates=updates)
    return StepOutcome(changes, log.records, StepMessage(run_id=run.run_id, step=run.step + 1))


def _after_failure(
    compiled: CompiledGraph,
    run: Run,
    log: _Log,
    node_name: str,
    error_type: str,
    message: str,
    duration_ms: float,
    draw: float,
) -> StepOutcome:
    node = compiled.graph.nodes[node_name]
    now = log.now
    text = message or error_type
    if len(text) > ERROR_MESSAGE_LIMIT:
        text = text[:ERROR_MESSAGE_LIMIT] + f"... ({len(text) - ERROR_MESSAGE_LIMIT} more characters)"
    error = RunError(type=error_type, message=text, node=node_name)
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
        delay = policy.delay(run.attempt, draw)
        log.add(
            LogType.RETRY_SCHEDULED,
            f"{node_name} attempt {run.attempt + 1} of {policy.max_attempts} in {delay:.3g}s",
            node=node_name,
            attempt=run.attempt + 1,
            data={"delay_seconds": delay},
        )
        not_before = now + delay
        changes = RunChanges.retry(run, node=node_name, next_seq=log.next_seq, now=now, not_before=not_before)
        message_ = StepMessage(
            run_id=run.run_id, step=run.step, attempt=run.attempt + 1, not_before=not_before
        )
        return StepOutcome(changes, log.records, message_)
    if node.catch is not None:
        why = f"{node_name} -> {node.catch} (catch after {run.attempt} attempt(s))"
        return take_catch(compiled, run, log, node_name, node.catch, error, why)
    return _fail(run, log, error)


def take_catch(
    compiled: CompiledGraph,
    run: Run,
    log: _Log,
    node_name: str,
    catch: str,
    error: RunError,
    why: str,
    **data: Any,
) -> StepOutcome:
    """The run leaves ``node_name`` for its ``catch`` node with ``error`` in the state (``max_steps`` permitting)."""
    updates = {"error": error.model_dump()}
    log.add(LogType.EDGE_TAKEN, why, node=node_name, data={"to": catch, "catch": True, **data})
    if run.step + 1 >= compiled.graph.max_steps:
        limit = RunError(
            type="MaxStepsExceeded",
            message=f"run reached max_steps={compiled.graph.max_steps}",
            node=node_name,
        )
        return _fail(run, log, limit, updates=updates)
    changes = RunChanges.advance(run, to=catch, next_seq=log.next_seq, now=log.now, updates=updates)
    return StepOutcome(changes, log.records, StepMessage(run_id=run.run_id, step=run.step + 1))
