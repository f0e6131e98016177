"""Waits, callbacks and redrive, as pure functions of values (what :mod:`engine.step` is for a tool's node).

A wait node and a callback node run no tool. When the run reaches one (its
message at the node's position arrives), :func:`start_wait` or
:func:`start_callback` commits what the run now waits for (``Run.waiting``: a
time, or a callback token's digest and the time it expires) at the same
position, and asks for a *timer* message at that time (``StepMessage.timer``,
in a message group of its own, sent through the service's timers when it is
far off). Nothing runs while the run waits. When the timer message arrives,
:func:`woken` ends the wait (the run moves along the node's edges) or expires
the callback (its ``catch``, else the run fails with ``CallbackTimedOut``).
:func:`resolved` is the callback's use: approved (its ``data`` merged into the
state, the run moving on) or rejected (the node fails: its retry, then its
``catch``, apply). Each of these is one conditional commit from the run as
read, so of a timer, an approval and a rejection racing for one wait exactly
one takes effect; a closed token's digest stays in ``Run.callbacks``, which is
how a second use is told from an unknown token.

A graph's ``timeout_seconds`` bounds waits too: a wait or callback never
outlasts the run's deadline (its ``until`` is the earlier of the two), and a
run woken at or past its deadline ends TIMED_OUT, its callback expired.

:func:`redrive` takes a FAILED or TIMED_OUT run back to the node that failed
(for a node inside a branch: the fan-out node, whose branches all run again),
with its last committed state, its id and its log.

Nothing here reads a clock, draws a random number or does I/O: the service
passes ``now`` and the token.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from engine.graph import CallbackSpec, WaitSpec
from engine.limits import MAX_WAIT_SECONDS
from engine.model import (
    CALLBACK_HISTORY,
    LogType,
    Run,
    RunChanges,
    RunError,
    RunStatus,
    StepMessage,
    Waiting,
)
from engine.step import (
    CompiledGraph,
    Raised,
    Returned,
    StepOutcome,
    _fail,
    _Log,
    decide,
    run_timed_out,
    take_catch,
)

__all__ = [
    "closed_callbacks",
    "digest_of",
    "redrive",
    "resolved",
    "start_callback",
    "start_wait",
    "wake_message",
    "woken",
]


def digest_of(secret: str) -> str:
    """The digest a run keeps of a callback token's secret part: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def wake_message(run_id: str, waiting: Waiting) -> StepMessage:
    """The timer message that ends ``waiting``."""
    return StepMessage(
        run_id=run_id, step=waiting.step, attempt=waiting.attempt, not_before=waiting.until, timer=True
    )


def _due(spec: WaitSpec, state: Any, now: float) -> float:
    """When the wait ends, in epoch seconds; ``ValueError`` if ``until_key`` holds no time."""
    if spec.seconds is not None:
        return now + spec.seconds
    if spec.until is not None:
        return spec.until.timestamp()
    value = state.get(spec.until_key)
    if isinstance(value, bool) or value is None:
        raise ValueError(f"state key {spec.until_key!r} holds no time (found {value!r})")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"state key {spec.until_key!r} holds {value!r}, not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise ValueError(f"state key {spec.until_key!r} holds {value!r}, a time without a time zone")
        return parsed.timestamp()
    raise ValueError(f"state key {spec.until_key!r} holds a {type(value).__name__}, not a time")


def _deadline(compiled: CompiledGraph, run: Run) -> float | None:
    """When the run times out (its graph's ``timeout_seconds`` from its start or last redrive); ``None``: never."""
    timeout = compiled.graph.timeout_seconds
    if timeout is None:
        return None
    return (run.redriven_at if run.redriven_at is not None else run.created_at) + timeout


def _bounded(compiled: CompiledGraph, run: Run, until: float) -> float:
    deadline = _deadline(compiled, run)
    return until if deadline is None else min(until, deadline)


def _started(log: _Log, run: Run, node: str, what: str) -> None:
    log.add(LogType.STEP_STARTED, f"{node} ({what}) attempt {run.attempt}", node=node, attempt=run.attempt)


def start_wait(compiled: CompiledGraph, run: Run, now: float) -> StepOutcome:
    """The run reached wait node ``run.current_node``: it waits until the time the node names.

    A time already past ends the wait at once; a time that is not one, or more
    than :data:`~engine.limits.MAX_WAIT_SECONDS` ahead, fails the run. A run past
    its deadline ends TIMED_OUT; one whose deadline comes first wakes then.
    """
    node_name = run.current_node or compiled.graph.start_node
    spec = compiled.graph.nodes[node_name].wait
    assert spec is not None
    timed_out = run_timed_out(compiled, run, now)
    if timed_out is not None:
        return timed_out
    log = _Log(run, now)
    try:
        due = _due(spec, run.state, now)
    except ValueError as exc:
        _started(log, run, node_name, "wait")
        return _fail(run, log, RunError(type="InvalidWaitTime", message=str(exc), node=node_name))
    if due - now > MAX_WAIT_SECONDS:
        _started(log, run, node_name, "wait")
        error = RunError(
            type="InvalidWaitTime",
            message=f"the wait ends {due - now:.0f}s from now; the limit is {MAX_WAIT_SECONDS}s",
            node=node_name,
        )
        return _fail(run, log, error)
    if due <= now:
        return decide(compiled, run, Returned(None), started=now, now=now, duration_ms=0.0)
    _started(log, run, node_name, "wait")
    waiting = Waiting(
        kind="timer",
        node=node_name,
        step=run.step,
        attempt=run.attempt,
        since=now,
        until=_bounded(compiled, run, due),
    )
    cut = f" (the run times out first, at {_iso(waiting.until)})" if waiting.until < due else ""
    log.add(
        LogType.WAIT_STARTED,
        f"{node_name} waits {due - now:.0f}s, until {_iso(due)}{cut}",
        node=node_name,
        attempt=run.attempt,
        data={"until": due, "seconds": due - now, "wakes_at": waiting.until},
    )
    changes = RunChanges.wait(run, waiting=waiting, next_seq=log.next_seq, now=now)
    return StepOutcome(changes, log.records, wake_message(run.run_id, waiting))


def start_callback(compiled: CompiledGraph, run: Run, now: float, token: str, secret: str) -> StepOutcome:
    """The run reached callback node ``run.current_node``: it waits for ``token`` until the node's timeout.

    The token goes into the ``callback_waiting`` record; the run keeps only the
    digest of its ``secret`` part. The token expires at the run's deadline if
    that comes first; a run past it ends TIMED_OUT and issues no token.
    """
    node_name = run.current_node or compiled.graph.start_node
    spec = compiled.graph.nodes[node_name].callback
    assert spec is not None
    timed_out = run_timed_out(compiled, run, now)
    if timed_out is not None:
        return timed_out
    log = _Log(run, now)
    _started(log, run, node_name, "callback")
    until = _bounded(compiled, run, now + spec.timeout_seconds)
    waiting = Waiting(
        kind="callback",
        node=node_name,
        step=run.step,
        attempt=run.attempt,
        since=now,
        until=until,
        digest=digest_of(secret),
    )
    log.add(
        LogType.CALLBACK_WAITING,
        f"{node_name} waits for a callback until {_iso(until)}",
        node=node_name,
        attempt=run.attempt,
        data={"token": token, "node": node_name, "expires_at": until},
    )
    changes = RunChanges.wait(run, waiting=waiting, next_seq=log.next_seq, now=now)
    return StepOutcome(changes, log.records, wake_message(run.run_id, waiting))


def closed_callbacks(run: Run, digest: str, how: str) -> dict[str, str]:
    """The run's closed callback tokens with ``digest`` closed as ``how``, the oldest dropped past :data:`CALLBACK_HISTORY`."""
    kept = dict(list(run.callbacks.items())[-(CALLBACK_HISTORY - 1) :])
    kept[digest] = how
    return kept


def woken(compiled: CompiledGraph, run: Run, now: float) -> StepOutcome:
    """The timer of ``run.waiting`` fired: a wait ends, a callback expires; at the run's deadline it times out."""
    waiting = run.waiting
    assert waiting is not None
    deadline = _deadline(compiled, run)
    if deadline is not None and now >= deadline:
        error = RunError(
            type="RunTimedOut", message=f"run exceeded {compiled.graph.timeout_seconds:g}s", node=waiting.node
        )
        outcome = _fail(run, _Log(run, now), error, RunStatus.TIMED_OUT)
        if waiting.digest is not None:
            outcome.changes.callbacks = closed_callbacks(run, waiting.digest, "expired")
        return outcome
    if waiting.kind == "timer":
        return decide(
            compiled, run, Returned(None), started=waiting.since, now=now, duration_ms=0.0, announce=False
        )
    spec = compiled.graph.nodes[waiting.node].callback
    assert isinstance(spec, CallbackSpec)
    log = _Log(run, now)
    error = RunError(
        type="CallbackTimedOut",
        message=f"no callback came within {spec.timeout_seconds:g}s",
        node=waiting.node,
    )
    closed = closed_callbacks(run, waiting.digest or "", "expired")
    log.add(
        LogType.STEP_FAILED,
        f"{waiting.node} failed: {error.type}: {error.message}",
        node=waiting.node,
        attempt=run.attempt,
        data={"error": error.model_dump()},
    )
    if spec.catch is None:
        outcome = _fail(run, log, error)
    else:
        why = f"{waiting.node} -> {spec.catch} (the callback timed out)"
        outcome = take_catch(compiled, run, log, waiting.node, spec.catch, error, why)
    outcome.changes.callbacks = closed
    return outcome


def resolved(
    compiled: CompiledGraph,
    run: Run,
    now: float,
    *,
    approved: bool,
    data: dict[str, Any] | None = None,
    decision: Any = None,
    reason: str = "",
) -> StepOutcome:
    """The callback ``run`` waits for was used: approved with ``data`` (and ``decision``), or rejected for ``reason``.

    Approved, ``data`` is the node's update (``decision``, if given, is also
    written at state key ``decision``) and the run moves along the node's edges;
    rejected, the node fails with ``CallbackRejected`` under its retry and ``catch``.
    """
    waiting = run.waiting
    assert waiting is not None and waiting.kind == "callback"
    received = _Log(run, now)
    received.add(
        LogType.CALLBACK_RECEIVED,
        f"{waiting.node}: callback {'approved' if approved else 'rejected'}"
        + (f" ({reason})" if reason and not approved else ""),
        node=waiting.node,
        attempt=waiting.attempt,
        data={"approved": approved, "decision": decision, "keys": sorted(data or {})},
    )
    if approved:
        updates = dict(data or {})
        if decision is not None:
            updates["decision"] = decision
        result: Returned | Raised = Returned(updates)
    else:
        result = Raised("CallbackRejected", reason or "the callback was rejected")
    outcome = decide(
        compiled,
        run.model_copy(update={"next_seq": received.next_seq}),
        result,
        started=waiting.since,
        now=now,
        duration_ms=(now - waiting.since) * 1000,
        announce=False,
    )
    outcome.changes.callbacks = closed_callbacks(
        run, waiting.digest or "", "approved" if approved else "rejected"
    )
    return StepOutcome(
        outcome.changes, received.records + outcome.records, outcome.next_message, outcome.more
    )


def redrive(compiled: CompiledGraph, run: Run, now: float) -> StepOutcome:
    """``run`` (FAILED or TIMED_OUT) goes back to the node that failed, its next attempt, with its state.

    A node inside a branch is redriven from its fan-out node. Its timeout counts from now.
    """
    graph = compiled.graph
    failed = run.error.node if run.error is not None else None
    node = failed if failed in graph.nodes else (run.current_node or graph.start_node)
    assert node is not None
    region = graph.branch_region(node)
    if region is not None:
        node = region[0]
    log = _Log(run, now)
    why = f"{run.error.type}: {run.error.message}" if run.error is not None else run.status.value
    log.add(
        LogType.RUN_REDRIVEN,
        f"run redriven at {node} (it had {run.status.value.lower().replace('_', ' ')}: {why})",
        node=node,
        data={"from_status": run.status.value, "error": run.error.model_dump() if run.error else None},
    )
    changes = RunChanges(
        status=RunStatus.RUNNING,
        current_node=node,
        step=run.step,
        attempt=run.attempt + 1,
        next_seq=log.next_seq,
        updated_at=now,
        reopens=True,
        redriven_at=now,
    )
    return StepOutcome(
        changes, log.records, StepMessage(run_id=run.run_id, step=run.step, attempt=run.attempt + 1)
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
